"""physics: MTF kernels, filtering, 23-tap interpolation, imresize, Wald degradation and the torch twins.

Expected values come from ``tests/data/vectors.json`` (toolbox under Octave, METRICS.md §4) or from properties that a
wrong implementation would break (interpolation keeps the samples, filters reproduce constants, tiles agree).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from trapan_cloud import physics as ph
from trapan_cloud.errors import InputError
from trapan_cloud.sensors import get_sensor

VECTORS = json.loads((Path(__file__).parent / "data" / "vectors.json").read_text())["cases"]


def case(case_id: str) -> dict:
    return next(c for c in VECTORS if c["id"] == case_id)


# ------------------------------------------------------------------------------------------------ reference vectors


@pytest.mark.parametrize("case_id", ["mtf_kernel_WV3", "mtf_kernel_QB"])
def test_kernel_vectors(case_id: str) -> None:
    c = case(case_id)
    k = ph.mtf_kernels(c["sensor"], len(c["gnyq"]), c["ratio"])
    assert k.shape == (len(c["gnyq"]), c["N"], c["N"])
    assert get_sensor(c["sensor"]).ms_gnyq(len(c["gnyq"])) == tuple(c["gnyq"])
    ci = c["centre_index"][0] - 1
    e, tol = c["expected"], c["abs_tol"]
    np.testing.assert_allclose(k[:, ci, ci], e["centre_per_band"], rtol=0, atol=tol)
    if "sum_per_band" in e:
        np.testing.assert_allclose(k.sum(axis=(1, 2)), e["sum_per_band"], rtol=0, atol=tol)
        assert k[0, 20, 21] == pytest.approx(e["band1_h(21,22)"], abs=tol)
        assert k[0, 20, 24] == pytest.approx(e["band1_h(21,25)"], abs=tol)


def test_kernel_spatial_sigma() -> None:
    """Second moment of the kernel vs the σ_spatial table (3 decimals).

    The table matches the moment of the frequency-sampled Gaussian *before* the Kaiser window (to 6e-4); the
    window trims the tails, so the toolbox kernel's own moment is 0.8–3.1e-3 px smaller: tolerance 4e-3, and the
    moment must not exceed the table.
    """
    c = case("mtf_sigma_spatial")
    t = np.arange(c["N"]) - (c["N"] - 1) / 2
    for g, sigma in zip(c["expected"]["gnyq"], c["expected"]["sigma_spatial_pan_px"]):
        k = ph.mtf_kernel(g, c["ratio"], c["N"])
        moment = np.sqrt((k * t[:, None] ** 2).sum() / k.sum())
        assert sigma - 4e-3 < moment < sigma


def test_interp23tap_vector() -> None:
    c = case("interp23tap_4x4")
    x = np.arange(1, 17, dtype=np.float64).reshape(4, 4, order="F")
    assert x.sum() == c["input_checksums"]["sum(input)"]
    y = ph.interp23tap(x, c["ratio"])
    assert y.shape == tuple(c["shapes"]["output"])
    e, tol = c["expected"], c["abs_tol"]
    assert y.sum() == pytest.approx(e["sum"], abs=tol)
    for key in ("y(1,1)", "y(2,2)", "y(3,3)", "y(8,8)"):
        r = int(key[2:].split(",")[0]) - 1
        assert y[r, r] == pytest.approx(e[key], abs=tol), key
    half = np.array(c["coefficients"]["CDF23_before_scaling"]) * c["coefficients"]["scale"]
    np.testing.assert_array_equal(ph.TAPS23, np.concatenate([half[:0:-1], half]))
    assert ph.TAPS23.sum() == pytest.approx(2.0, abs=1e-9)


# ------------------------------------------------------------------------------------------------ kernels & filtering


def test_normalised_variant() -> None:
    tb, nm = ph.mtf_kernel(0.3), ph.mtf_kernel(0.3, variant="normalised")
    assert nm.min() >= 0 and nm.sum() == pytest.approx(1.0, abs=1e-12)
    assert tb.min() < 0 and tb.sum() < 0.9995
    assert np.abs(nm - tb).max() < 1e-4
    pan = ph.mtf_kernels("WV3", 8, band="pan")
    np.testing.assert_array_equal(pan[0], ph.mtf_kernel(0.14, 4))
    np.testing.assert_array_equal(ph.mtf_kernels("Landsat8", 4)[0], ph.mtf_kernel(0.3, 2))  # sensor ratio 2


@pytest.mark.parametrize("mode, nd_mode", [("replicate", "nearest"), ("reflect", "reflect"), ("wrap", "wrap"),
                                           ("constant", "constant")])
def test_mtf_filter_matches_direct_correlation(mode: str, nd_mode: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 2047, (3, 45, 38))
    k = np.stack([ph.mtf_kernel(g) for g in (0.2, 0.3, 0.36)])
    got = ph.mtf_filter(x, k, mode)
    want = np.stack([ndimage.correlate(x[b], k[b], mode=nd_mode) for b in range(3)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())
    # one kernel for every band, and 2-D input
    np.testing.assert_allclose(ph.mtf_filter(x, k[1], mode)[2], ph.mtf_filter(x[2], k[1], mode), rtol=0, atol=1e-9)


def test_mtf_filter_is_correlation_not_convolution() -> None:
    k = np.zeros((3, 3))
    k[1, 2] = 1.0  # correlation picks the right neighbour: out[y, x] = img[y, x + 1]
    img = np.arange(25.0).reshape(5, 5)
    np.testing.assert_allclose(ph.mtf_filter(img, k, "constant")[:, :-1], img[:, 1:], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ interpolation


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_interp23tap_keeps_samples_at_decimation_phase(ratio: int) -> None:
    x = np.random.default_rng(ratio).uniform(0, 2047, (2, 9, 7))
    y = ph.interp23tap(x, ratio)
    assert y.shape == (2, 9 * ratio, 7 * ratio)  # ratio 8: three x2 passes, not the toolbox loop's x16
    np.testing.assert_allclose(ph.decimate(y, ratio), x, rtol=0, atol=1e-8)


@pytest.mark.parametrize("ratio", [3, 6])
def test_interp_general_ratio(ratio: int) -> None:
    passes = ph.interp_passes(ratio)
    assert len(passes) == 1 and passes[0][0] == ratio
    taps = passes[0][1]
    assert len(taps) == 45 and np.allclose(taps, taps[::-1]) and taps.sum() == pytest.approx(ratio)
    y = ph.interp23tap(np.full((1, 12, 10), 500.0), ratio)
    assert y.shape == (1, 12 * ratio, 10 * ratio)
    np.testing.assert_allclose(y, 500.0, rtol=1.1e-2)  # fir1 passband ripple, as in interp23tapGeneral


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_interp_tile_safe_modes(mode: str) -> None:
    """Away from the edges every mode is the same filter; a tile with a halo reproduces the scene's interior."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 2047, (3, 60, 60))
    full = ph.interp23tap(x, 4, mode)
    wrap = ph.interp23tap(x, 4, "wrap")
    inner = np.s_[:, 4 * 12:-4 * 12, 4 * 12:-4 * 12]
    np.testing.assert_allclose(full[inner], wrap[inner], rtol=0, atol=1e-9)
    tile = ph.interp23tap(x[:, 10:50, 10:50], 4, mode)
    np.testing.assert_allclose(tile[:, 48:-48, 48:-48], full[:, 88:-88, 88:-88], rtol=0, atol=1e-9)
    assert np.abs(tile[:, :4] - full[:, 40:44, 40:200]).max() > 1e-3  # the edge does differ (no hidden wrap)


# ------------------------------------------------------------------------------------------------ imresize, wald


def test_imresize_reproduces_linear_ramps_at_matlab_coordinates() -> None:
    """Normalised symmetric kernels reproduce linear functions: the interior must equal the ramp at MATLAB's u."""
    h, w, scale = 64, 48, 0.25
    rows = np.arange(1, h + 1, dtype=float)
    img = np.broadcast_to(3.0 * rows[:, None], (h, w)) + np.arange(w)[None, :] * 0.5
    out = ph.imresize(img, scale)
    assert out.shape == (16, 12)
    u = np.arange(1, 17) / scale + 0.5 * (1 - 1 / scale)  # MATLAB's input coordinate of output pixel x
    v = np.arange(1, 13) / scale + 0.5 * (1 - 1 / scale)
    expect = 3.0 * u[:, None] + (v[None, :] - 1) * 0.5
    np.testing.assert_allclose(out[3:-3, 3:-3], expect[3:-3, 3:-3], rtol=0, atol=1e-9)
    assert ph.imresize(np.ones((3, 10, 7)), 0.5).shape == (3, 5, 4)  # ceil(scale * n), band-first
    np.testing.assert_allclose(ph.imresize(np.full((2, 9, 9), 5.0), 0.3), 5.0, rtol=0, atol=1e-12)


def test_wald_degrade_shapes_and_gain() -> None:
    ms, pan = np.full((4, 32, 40), 1000.0), np.full((128, 160), 700.0)
    ms_lr, pan_lr = ph.wald_degrade(ms, pan, "QB", 4)
    assert ms_lr.shape == (4, 8, 10) and pan_lr.shape == (32, 40)
    sums = ph.mtf_kernels("QB", 4).sum(axis=(1, 2))  # replicate boundary: a constant is scaled by the kernel sum
    np.testing.assert_allclose(ms_lr, np.broadcast_to(1000.0 * sums[:, None, None], ms_lr.shape), rtol=0, atol=1e-9)
    np.testing.assert_allclose(pan_lr, 700.0, rtol=0, atol=1e-9)
    x = np.random.default_rng(3).uniform(0, 2047, (4, 32, 40))
    ms_lr = ph.wald_degrade(x, pan, "QB", 4)[0]
    np.testing.assert_allclose(ms_lr, ph.mtf_filter(x, ph.mtf_kernels("QB", 4))[:, 2::4, 2::4], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------ torch twins


TWIN_SHAPES = [(2, 3, 20, 24), (1, 4, 16, 16), (1, 5, 12, 20), (1, 8, 16, 12)]


def _rel_err(t: torch.Tensor, a: np.ndarray) -> float:
    return float(np.abs(t.detach().cpu().double().numpy() - a).max() / np.abs(a).max())


@pytest.mark.parametrize("shape", TWIN_SHAPES)
@pytest.mark.parametrize("mode", ph.MODES)
def test_mtf_filter_twin(shape: tuple[int, ...], mode: str) -> None:
    x = np.random.default_rng(sum(shape)).uniform(0, 2047, shape)
    k = np.stack([ph.mtf_kernel(g) for g in np.linspace(0.2, 0.4, shape[1])])
    want = np.stack([ph.mtf_filter(xi, k, mode) for xi in x])
    assert _rel_err(ph.mtf_filter_torch(torch.tensor(x, dtype=torch.float32), k, mode), want) < 1e-5
    assert _rel_err(ph.mtf_filter_torch(torch.tensor(x), torch.tensor(k), mode), want) < 1e-12


@pytest.mark.parametrize("shape", TWIN_SHAPES)
@pytest.mark.parametrize("ratio", [2, 3, 4, 8])
@pytest.mark.parametrize("mode", ph.MODES)
def test_interp23tap_twin(shape: tuple[int, ...], ratio: int, mode: str) -> None:
    x = np.random.default_rng(ratio).uniform(0, 2047, shape)
    want = np.stack([ph.interp23tap(xi, ratio, mode) for xi in x])
    got = ph.interp23tap_torch(torch.tensor(x, dtype=torch.float32), ratio, mode)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _rel_err(got, want) < 1e-5


def test_twins_are_differentiable_and_decimate_matches() -> None:
    x = torch.rand(1, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    y = ph.mtf_filter_torch(ph.interp23tap_torch(x, 4), ph.mtf_kernels("QB", 4), "reflect")
    d = ph.decimate_torch(y, 4)
    assert d.shape == (1, 4, 8, 8)
    np.testing.assert_array_equal(d.detach().numpy()[0], ph.decimate(y.detach().numpy()[0], 4))
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on the GPU machine)")
def test_twins_on_cuda() -> None:
    x = np.random.default_rng(0).uniform(0, 2047, (1, 4, 16, 16))
    k = ph.mtf_kernels("QB", 4)
    xt = torch.tensor(x, dtype=torch.float32, device="cuda")
    assert _rel_err(ph.mtf_filter_torch(xt, k), ph.mtf_filter(x[0], k)) < 1e-5
    assert _rel_err(ph.interp23tap_torch(xt, 4), ph.interp23tap(x[0], 4)) < 1e-5


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("call, name", [
    (lambda: ph.mtf_kernel(1.2), "gnyq"),
    (lambda: ph.mtf_kernel(0.3, ratio=1), "ratio"),
    (lambda: ph.mtf_kernel(0.3, variant="gauss"), "variant"),
    (lambda: ph.mtf_kernels("QB", 4, band="nir"), "band"),
    (lambda: ph.mtf_kernels("QB", 3), "ms"),
    (lambda: ph.mtf_kernels("SPOT", 4), "sensor"),
    (lambda: ph.mtf_filter(np.ones((2, 8, 8)), np.ones((3, 5, 5))), "kernels"),
    (lambda: ph.mtf_filter(np.ones((2, 2, 8, 8)), np.ones((5, 5))), "img"),
    (lambda: ph.mtf_filter(np.ones((8, 8)), np.ones((5, 5)), "mirror"), "mode"),
    (lambda: ph.interp23tap(np.ones((2, 4, 4)), 2.5), "ratio"),
    (lambda: ph.interp23tap(np.ones(4), 4), "ms"),
    (lambda: ph.decimate(np.ones((8, 8)), 4, phase=4), "phase"),
    (lambda: ph.imresize(np.ones((8, 8)), 0), "scale"),
    (lambda: ph.wald_degrade(np.ones((4, 32, 32)), np.ones((64, 64)), "QB", 4), "ratio"),
    (lambda: ph.wald_degrade(np.ones((4, 30, 30)), np.ones((120, 120)), "QB", 4), "ms"),
    (lambda: ph.wald_degrade(np.full((4, 32, 32), np.nan), np.ones((128, 128)), "QB", 4), "ms"),
    (lambda: ph.mtf_filter_torch(torch.ones(4, 8, 8), np.ones((5, 5))), "x"),
    (lambda: ph.interp23tap_torch(torch.ones(1, 2, 4, 4), 4, "mirror"), "mode"),
])
def test_bad_input_raises_input_error(call, name: str) -> None:
    with pytest.raises(InputError, match=rf"^{name}\b"):
        call()
