"""Full-resolution assessment by reprojection (Scarpa & Ciotola 2022; reference/FR_PROTOCOL.md): R-Q2n, R-Q, R-SAM,
R-ERGAS, D_ρ and the reduced-resolution D_ρ of the truth.

Expected values come from properties of the definitions (an image from which the MS was simulated reprojects onto it
exactly; the PAN copied into every band has D_ρ = 0, its negative 2) and from a hand-worked 2×2 case.
"""

from __future__ import annotations

import numpy as np
import pytest

from trapan_cloud import metrics as mt
from trapan_cloud.errors import InputError
from trapan_cloud.physics import imresize, mtf_filter, mtf_kernels

PERFECT = {"R-Q2n": 1.0, "R-Q": 1.0, "R-SAM": 0.0, "R-ERGAS": 0.0}


def scene(size: int, seed: int = 0) -> np.ndarray:
    """A positive, non-periodic PAN-scale pattern (sum of random plane waves), DN ~ 200-1800."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0:size, 0:size].astype(float)
    out = np.full((size, size), 1000.0)
    for _ in range(12):
        f = rng.uniform(0.02, 0.45, 2)
        out += rng.uniform(20, 70) * np.cos(f[0] * i + f[1] * j + rng.uniform(0, 2 * np.pi))
    return out


def simulate(pan: np.ndarray, gains: np.ndarray, sensor: str, ratio: int, phases: list[tuple[int, int]]
             ) -> tuple[np.ndarray, np.ndarray]:
    """High-resolution image ``gains_b·PAN`` and the MS simulated from it: sensor MTF, decimation at each band's phase."""
    hr = gains[:, None, None] * pan
    low = mtf_filter(hr, mtf_kernels(sensor, len(gains), ratio), "replicate")
    ms = np.stack([low[b, i::ratio, j::ratio] for b, (i, j) in enumerate(phases)])
    return hr, ms


@pytest.mark.parametrize("sensor, ratio, size, phases", [
    ("QB", 4, 128, [(0, 0)] * 4),                       # zero phase, 32×32 MS
    ("QB", 4, 64, [(1, 2), (3, 0), (2, 2), (0, 3)]),    # a different phase per band, 16×16 MS (Q on 16×16)
    ("Landsat8", 2, 80, [(1, 0), (1, 1), (0, 1), (0, 0)]),
])
def test_simulated_ms_reprojects_exactly(sensor: str, ratio: int, size: int, phases: list) -> None:
    pan = scene(size)
    hr, ms = simulate(pan, np.array([0.6, 0.8, 1.1, 1.3]), sensor, ratio, phases)
    assert mt.coregistration_phases(ms, pan, sensor) == phases  # the search finds each band's phase
    assert mt.reprojected(hr, ms, pan, sensor) == pytest.approx(PERFECT, abs=1e-9)
    assert mt.reprojected(hr, ms, pan, sensor, ratio=ratio) == pytest.approx(PERFECT, abs=1e-9)


def test_reprojection_sees_spectral_errors() -> None:
    pan = scene(128, seed=1)
    hr, ms = simulate(pan, np.array([0.6, 0.8, 1.1, 1.3]), "QB", 4, [(0, 0)] * 4)
    scaled = hr * np.array([1.0, 1.0, 1.0, 1.2])[:, None, None]  # NIR 20 % too bright: spectral angle and ERGAS grow
    r = mt.reprojected(scaled, ms, pan, "QB")
    assert r["R-Q2n"] < 1 - 1e-4 and r["R-SAM"] > 1.0 and r["R-ERGAS"] > 1.0
    # a pure 20 % gain on band 4 of four: MSE_4 = 0.2²·mean(MS_4²), so ERGAS = (100/4)·sqrt(MSE_4/mean(MS_4)²/4)
    nir = ms[3]
    assert r["R-ERGAS"] == pytest.approx(25 * np.sqrt(0.04 * (nir**2).mean() / nir.mean() ** 2 / 4), rel=1e-9)


# ------------------------------------------------------------------------------------------------ D_ρ


def test_pan_copied_into_every_band_has_zero_d_rho() -> None:
    pan = scene(64, seed=2)
    fused = np.stack([pan, pan, pan])
    assert mt.d_rho(fused, pan, ratio=4) == pytest.approx(0.0, abs=1e-12)
    assert mt.d_rho(2.5 * fused, pan, ratio=2) == pytest.approx(0.0, abs=1e-12)  # gain-invariant
    assert mt.d_rho(-fused, pan, ratio=4) == pytest.approx(2.0, abs=1e-12)  # anti-correlated everywhere
    flat = pan.copy()
    flat[10:30, 20:50] = 700.0  # a flat patch: both flat there, ρ = 1
    assert mt.d_rho(np.stack([flat] * 2), flat, ratio=4) == pytest.approx(0.0, abs=1e-12)


def test_d_rho_hand_worked_2x2() -> None:
    """Ratio 2: w = 1, the window of p is p + {0, 1}², pixels outside count as 0.

    band X = [[1, 2], [3, 4]]: local means [[10/4, 6/4], [7/4, 4/4]], residuals [[-1.5, 0.5], [1.25, 3]].
    PAN  Y = [[1, 0], [0, 0]]: local means [[1/4, 0], [0, 0]], residuals [[0.75, 0], [0, 0]].
    ρ(0,0) = (-1.5·0.75) / sqrt((1.5² + 0.5² + 1.25² + 3²)·0.75²); at the three other pixels the PAN's window is
    flat (all residuals 0) while the band's is not, so ρ = 0 there.
    """
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    y = np.array([[1.0, 0.0], [0.0, 0.0]])
    rho00 = -1.125 / np.sqrt(13.0625 * 0.5625)
    assert mt.d_rho(x, y, ratio=2) == pytest.approx(((1 - rho00) + 3 * 1.0) / 4, abs=1e-14)
    assert mt.d_rho(x[0], y, ratio=2) == pytest.approx(((1 - rho00) + 3 * 1.0) / 4, abs=1e-14)  # (H, W) band


def test_d_rho_flat_windows() -> None:
    ramp = np.add.outer(np.arange(32.0), 2 * np.arange(32.0))
    # a band that is flat everywhere (all 0) against a PAN that never is: ρ = 0 everywhere
    assert mt.d_rho(np.zeros((2, 32, 32)), ramp, ratio=4) == 1.0
    # both flat: ρ = 1; constant images stay proportional even where the window meets the zero padding
    assert mt.d_rho(np.zeros((1, 32, 32)), np.zeros((32, 32)), ratio=4) == 0.0
    assert mt.d_rho(np.full((1, 32, 32), 5.0), np.full((32, 32), 7.0), ratio=4) == pytest.approx(0.0, abs=1e-12)


def test_d_rho_reference_is_zero_when_the_ms_is_the_degraded_pan() -> None:
    pan = scene(128, seed=3)
    ms = np.stack([imresize(pan, 0.25)] * 4)
    assert mt.d_rho_reference(pan, ms, "QB") == pytest.approx(0.0, abs=1e-12)
    assert mt.d_rho_reference(pan, 2 * ms, "QB", ratio=4) == pytest.approx(0.0, abs=1e-12)
    # MS sides that are not multiples of the ratio: the top-left multiple is used
    pan2, ms2 = pan[:120, :120], ms[:, :30, :30]
    assert mt.d_rho_reference(pan2, ms2, "QB") == pytest.approx(
        mt.d_rho_reference(pan2[:112, :112], ms2[:, :28, :28], "QB"), abs=1e-15)


def test_full_resolution_adds_the_reprojection_indices() -> None:
    pan = scene(128, seed=4)
    hr, ms = simulate(pan, np.array([0.6, 0.8, 1.1, 1.3]), "QB", 4, [(2, 2)] * 4)
    fused = hr + 0.1 * pan
    fr = mt.full_resolution(fused, pan, ms, "QB")
    assert set(fr) == {"HQNR", "D_lambda_K", "D_s", "QNR", "D_lambda",
                       "R-Q2n", "R-Q", "R-SAM", "R-ERGAS", "D_rho", "D_rho_ref"}
    assert (fr["HQNR"], fr["D_lambda_K"], fr["D_s"]) == mt.hqnr(fused, ms, pan, "QB")
    assert (fr["QNR"], fr["D_lambda"], fr["D_s"]) == mt.qnr(fused, ms, pan)
    assert {k: fr[k] for k in PERFECT} == mt.reprojected(fused, ms, pan, "QB")
    assert fr["D_rho"] == mt.d_rho(fused, pan, 4) and fr["D_rho_ref"] == mt.d_rho_reference(pan, ms, "QB")
    assert 0 <= fr["D_rho"] < 1e-12  # every band is a positive multiple of the PAN, but...
    assert fr["R-ERGAS"] > 0  # ...the added PAN detail is not consistent with the MS


def test_tiny_images_are_scored_and_d_rho_ref_needs_an_ms_larger_than_the_ratio() -> None:
    """Zero-padded windows define every index at any size; only the reduced-resolution D_ρ needs MS sides >= ratio."""
    pan = scene(32, seed=5)
    hr, ms = simulate(pan, np.array([0.6, 0.8, 1.1, 1.3]), "QB", 8, [(4, 4)] * 4)  # 4×4 MS, ratio 8
    assert mt.d_rho(hr[:, :3, :3], pan[:3, :3], ratio=4) == pytest.approx(0.0, abs=1e-12)
    fr = mt.full_resolution(hr, pan, ms, "QB")
    assert np.isnan(fr["D_rho_ref"]) and fr["D_rho"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="^ms: the reduced-resolution D_ρ"):
        mt.d_rho_reference(pan, ms, "QB")


# ------------------------------------------------------------------------------------------------ bad input


_P = scene(64)
_F = np.stack([_P] * 4)
_M = np.full((4, 16, 16), 500.0)


@pytest.mark.parametrize("call, name", [
    (lambda: mt.d_rho(_F, _P), "ratio"),
    (lambda: mt.d_rho(_F, _P, ratio=1), "ratio"),
    (lambda: mt.d_rho(_F, _P[:32], ratio=4), "pan"),
    (lambda: mt.d_rho(_F, -_P, ratio=4), "pan"),
    (lambda: mt.d_rho(np.where(_F > 1000, np.nan, _F), _P, ratio=4), "fused"),
    (lambda: mt.d_rho(_F[None], _P, ratio=4), "fused"),
    (lambda: mt.reprojected(_F[:3], _M, _P, "QB"), "fused"),
    (lambda: mt.reprojected(_F, _M, _P, "QB", ratio=2), "ratio"),
    (lambda: mt.reprojected(_F, _M, _P[:, :60], "QB"), "pan"),
    (lambda: mt.reprojected(_F, -_M, _P, "QB"), "ms"),
    (lambda: mt.reprojected(_F, _M, _P, "SPOT"), "sensor"),
    (lambda: mt.coregistration_phases(_M, _P, "WV3"), "ms"),
    (lambda: mt.d_rho_reference(_P, _M[:3], "QB"), "ms"),
    (lambda: mt.d_rho_reference(_P[:8, :8], _M[:, :2, :2], "QB"), "ms"),
])
def test_bad_input_raises_input_error(call, name: str) -> None:
    with pytest.raises(InputError, match=rf"^{name}"):
        call()
