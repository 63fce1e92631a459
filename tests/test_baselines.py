"""Classical baselines: the toolbox numbers of reference/ANCHORS.md on the same real crops, GDAL's Brovey, GSA per pixel
against the toolbox definitions, input errors.

The anchors were measured with an independent NumPy implementation of the 2021 toolbox that agrees with the toolbox's
MATLAB code run under Octave; SN6-t1 and SN6-t2 of `bench_crops` are exactly the ANCHORS.md crops. A value passes when,
rounded to the printed decimals, it is within one unit of the last printed digit.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from trapan_cloud import baselines, metrics
from trapan_cloud.errors import InputError
from trapan_cloud.fusion import CLASSICAL, pansharpen
from trapan_cloud.physics import interp23tap, mtf_filter
from trapan_cloud.samples import bench_crops

# ANCHORS.md, "Full resolution (HQNR / D_λ^K / D_s)"
FR_ANCHORS = {
    "SN6-t1": {
        "exp": (0.8743, 0.0453, 0.0843),
        "bt-h": (0.8280, 0.1516, 0.0240),
        "mtf-glp-fs": (0.9190, 0.0415, 0.0412),
        "mtf-glp-hpm": (0.5096, 0.3276, 0.2421),
        "gsa": (0.7369, 0.2073, 0.0704),
    },
    "SN6-t2": {
        "exp": (0.7668, 0.0643, 0.1805),
        "bt-h": (0.6758, 0.2802, 0.0612),
        "mtf-glp-fs": (0.8435, 0.1370, 0.0226),
        "mtf-glp-hpm": (0.6523, 0.2479, 0.1328),
        "gsa": (0.6821, 0.2567, 0.0823),
    },
}
# ANCHORS.md, "Reduced resolution, SN6-t1 (Q2n / SAM° / ERGAS / SCC)"
RR_ANCHORS = {
    "exp": (0.6478, 7.353, 13.323, 0.7642),
    "bt-h": (0.8758, 7.115, 8.164, 0.9264),
    "mtf-glp-fs": (0.8645, 9.074, 8.513, 0.8777),
    "mtf-glp-hpm": (0.3715, 15.698, 265.226, 0.1182),
    "gsa": (0.8634, 9.390, 8.627, 0.8740),
}
RR_DECIMALS = (4, 3, 3, 4)
TOOLBOX_METHODS = ("exp", "bt-h", "mtf-glp-fs", "mtf-glp-hpm", "gsa")


def _agrees(value: float, anchor: float, decimals: int) -> bool:
    """Rounded to the printed decimals, within one unit of the last printed digit."""
    return abs(round(value, decimals) - anchor) <= 10.0**-decimals + 1e-12


@pytest.fixture(scope="module")
def crops():
    return {c.name: c for c in bench_crops()}


@pytest.fixture(scope="module")
def rr_t1(crops):
    """Reduced-resolution indices of the toolbox methods on SN6-t1 (computed once, used by two tests)."""
    c = crops["SN6-t1"]
    return {m: metrics.reduced_resolution(lambda p, s, m=m: baselines.METHODS[m](p, s, c.sensor, c.ratio),
                                          c.pan, c.ms, c.sensor, ratio=c.ratio)
            for m in TOOLBOX_METHODS}


def test_methods_table_matches_dispatch():
    assert tuple(baselines.METHODS) == CLASSICAL


@pytest.mark.parametrize("crop_name", ["SN6-t1", "SN6-t2"])
@pytest.mark.parametrize("method", TOOLBOX_METHODS)
def test_full_resolution_anchors(crops, crop_name, method):
    c = crops[crop_name]
    fused = baselines.METHODS[method](c.pan, c.ms, c.sensor, c.ratio)
    assert fused.shape == (c.ms.shape[0], *c.pan.shape) and fused.dtype == np.float64
    fr = metrics.full_resolution(fused, c.pan, c.ms, c.sensor, ratio=c.ratio)
    got = (fr["HQNR"], fr["D_lambda_K"], fr["D_s"])
    want = FR_ANCHORS[crop_name][method]
    assert all(_agrees(g, w, 4) for g, w in zip(got, want)), f"{method} on {crop_name}: {got} vs anchors {want}"


@pytest.mark.parametrize("method", TOOLBOX_METHODS)
def test_reduced_resolution_anchors_sn6_t1(rr_t1, method):
    got = tuple(rr_t1[method][k] for k in ("Q2n", "SAM", "ERGAS", "SCC"))
    want = RR_ANCHORS[method]
    assert all(_agrees(g, w, d) for g, w, d in zip(got, want, RR_DECIMALS)), f"{method}: {got} vs anchors {want}"


def test_detail_injection_beats_plain_interpolation(rr_t1):
    """On the WorldView-2 crop, MTF-GLP-FS and BT-H add PAN detail: better Q2n and ERGAS than EXP."""
    for method in ("mtf-glp-fs", "bt-h"):
        assert rr_t1[method]["Q2n"] > rr_t1["exp"]["Q2n"]
        assert rr_t1[method]["ERGAS"] < rr_t1["exp"]["ERGAS"]


def _catmull_rom_upsample(x: np.ndarray, ratio: int, axis: int) -> np.ndarray:
    """Corner-aligned cubic convolution (Keys, a = −0.5) upsampling along one axis, edge samples clamped."""
    n = x.shape[axis]
    pos = (np.arange(n * ratio) + 0.5) / ratio - 0.5
    left = np.floor(pos).astype(int)
    shape = [-1 if a == axis else 1 for a in range(x.ndim)]
    out = np.zeros_like(np.take(x, left, axis=axis), dtype=np.float64)
    for k in range(-1, 3):
        t = np.abs(pos - (left + k))
        w = np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))
        out += np.take(x, np.clip(left + k, 0, n - 1), axis=axis) * w.reshape(shape)
    return out


@pytest.mark.parametrize("weights", [None, (0.1, 0.2, 0.3, 0.4)])
def test_gdal_brovey_is_weighted_brovey_on_cubic_upsampling(crops, weights):
    """Away from the borders, GDAL's output is MS_up·PAN/Σ w_b MS_up_b with MS_up a corner-aligned cubic upsampling."""
    c = crops["SN6-t2"]
    fused = baselines.gdal_brovey(c.pan, c.ms, c.sensor, c.ratio, weights=weights)
    up = _catmull_rom_upsample(_catmull_rom_upsample(c.ms.astype(np.float64), c.ratio, 1), c.ratio, 2)
    w = np.full(c.ms.shape[0], 1 / c.ms.shape[0]) if weights is None else np.asarray(weights)
    expected = up * c.pan / np.tensordot(w, up, axes=1)
    m = 4 * c.ratio
    np.testing.assert_allclose(fused[:, m:-m, m:-m], expected[:, m:-m, m:-m], rtol=1e-9, atol=1e-6)


def test_pansharpen_dispatches_to_the_baselines(crops):
    c = crops["SN6-t2"]
    direct = baselines.mtf_glp_fs(c.pan, c.ms, c.sensor, c.ratio)
    np.testing.assert_array_equal(pansharpen(c.pan, c.ms, "WV2", method="mtf-glp-fs", dtype=np.float64), direct)


def test_interp_mode_only_changes_the_border(crops):
    """EXP is local: another interpolator boundary changes only a border of the interpolator's reach (≤ 33 PAN px)."""
    c = crops["SN6-t2"]
    wrap = baselines.exp(c.pan, c.ms, c.sensor, c.ratio)
    other = baselines.exp(c.pan, c.ms, c.sensor, c.ratio, interp_mode="reflect")
    assert not np.allclose(wrap, other)
    np.testing.assert_allclose(wrap[:, 36:-36, 36:-36], other[:, 36:-36, 36:-36], rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", list(CLASSICAL))
def test_shape_band_and_ratio_errors(method):
    f = baselines.METHODS[method]
    rng = np.random.default_rng(0)
    pan, ms = rng.uniform(1, 2047, (64, 64)), rng.uniform(1, 2047, (4, 16, 16))
    with pytest.raises(InputError, match=r"pan/ms: PAN shape \(64, 60\)"):
        f(pan[:, :60], ms, "WV2", 4)
    with pytest.raises(InputError, match="ms: WV2 products have 4 or 8 MS bands, found 3"):
        f(pan, ms[:3], "WV2", 4)
    with pytest.raises(InputError, match="ratio: 2 was given but the shapes imply 4"):
        f(pan, ms, "WV2", 2)
    with pytest.raises(InputError, match="ms: expected band-first"):
        f(pan, ms[0], "WV2", 4)


def test_gdal_brovey_option_errors():
    rng = np.random.default_rng(0)
    pan, ms = rng.uniform(1, 2047, (32, 32)), rng.uniform(1, 2047, (4, 8, 8))
    with pytest.raises(InputError, match="weights: expected 4 finite values"):
        baselines.gdal_brovey(pan, ms, "WV2", 4, weights=(0.5, 0.5))
    with pytest.raises(InputError, match="resampling: expected one of"):
        baselines.gdal_brovey(pan, ms, "WV2", 4, resampling="bicubic")


# ------------------------------------------------------------------------------------------------ GSA, per pixel


def _ndwt_ext_conv(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """One analysis step of the toolbox's ``ndwt2_working`` along the columns of ``x``, written from its definition:
    half-point symmetric extension by ``lf - 1`` samples per side, full convolution, then the central
    ``lx + lf - 1`` samples (the output grows by ``lf - 1``)."""
    lf, lx = len(f), x.shape[1]
    ext = np.concatenate([x[:, lf - 2::-1], x, x[:, :-lf:-1]], axis=1)
    full = signal.convolve2d(ext, f[None, :], mode="full")[:, lf - 1:-(lf - 1)]
    first = (full.shape[1] - (lx + lf - 1)) // 2
    return full[:, first:first + lx + lf - 1]


def _toolbox_lpfilter_plus_dec(pan: np.ndarray, ratio: int) -> np.ndarray:
    """The toolbox's ``LPfilterPlusDec`` from its definition (2-D, no separability shortcut): Starck–Murtagh filters
    h = h~ = sqrt(2)·[1 4 6 4 1]/16 without holes, ``ceil(log2(ratio))`` analysis levels on growing arrays, every
    detail zeroed, synthesis by full 2-D convolutions with h~ ⊗ h~ divided by 4 and cropped to the central part of the
    previous level's size, then ``imresize(·, 1/ratio, 'nearest')`` = 0-based ``[ratio//2::ratio]``."""
    h = np.sqrt(2) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    levels = int(np.ceil(np.log2(ratio)))
    sizes, a = [pan.shape], pan
    for _ in range(levels):  # only the approximation matters once the details are zeroed
        a = _ndwt_ext_conv(_ndwt_ext_conv(a, h).T, h).T
        sizes.append(a.shape)
    for size in reversed(sizes[:-1]):
        full = signal.convolve2d(a, np.outer(h, h), mode="full") / 4
        f0, f1 = (full.shape[0] - size[0]) // 2, (full.shape[1] - size[1]) // 2
        a = full[f0:f0 + size[0], f1:f1 + size[1]]
    return a[ratio // 2::ratio, ratio // 2::ratio]


def _toolbox_gsa(pan: np.ndarray, ms: np.ndarray, ratio: int) -> np.ndarray:
    """GSA (toolbox ``GS/GSA.m``, METRICS.md §5) from its definition, band-first, on the 23-tap expanded MS."""
    up = interp23tap(ms, ratio)
    nb = ms.shape[0]
    up0 = up - up.mean(axis=(1, 2), keepdims=True)
    lr0 = ms - ms.mean(axis=(1, 2), keepdims=True)
    pan_lr0 = _toolbox_lpfilter_plus_dec(pan - pan.mean(), ratio)
    design = np.column_stack([lr0.reshape(nb, -1).T, np.ones(lr0[0].size)])
    alpha = np.linalg.lstsq(design, pan_lr0.ravel(), rcond=None)[0]
    i0 = np.tensordot(alpha[:nb], up0, axes=1) + alpha[nb]
    i0 = i0 - i0.mean()
    g = np.array([np.cov(i0.ravel(), b.ravel())[0, 1] / np.var(i0, ddof=1) for b in up0])
    fused = up0 + g[:, None, None] * (pan - pan.mean() - i0)
    return fused - fused.mean(axis=(1, 2), keepdims=True) + up.mean(axis=(1, 2), keepdims=True)


def _fr_case(nb: int) -> tuple[np.ndarray, np.ndarray]:
    """(PAN (128, 128), MS (nb, 32, 32)) of METRICS.md §6.2 / vectors.json ``fr_*`` (1-based formulas, round half up)."""
    i, j = np.arange(1, 129)[:, None], np.arange(1, 129)[None, :]
    pan = np.floor(500 + 200 * np.sin(2 * np.pi * i / 13) * np.cos(2 * np.pi * j / 19)
                   + 150 * np.sin(2 * np.pi * (i + j) / 31) + 2 * i + j + 0.5)
    u, v = np.arange(1, 33)[None, :, None], np.arange(1, 33)[None, None, :]
    b = np.arange(1, nb + 1)[:, None, None]
    ms = np.floor(400 + 30 * b + 180 * np.sin(2 * np.pi * u / 7 + 0.3 * b) * np.cos(2 * np.pi * v / 9 - 0.2 * b)
                  + 3 * u + 2 * v + 0.5)
    return pan, ms


@pytest.mark.parametrize("shape", [(40, 36), (17, 23)])
@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_gsa_lowpass_is_the_toolbox_lpfilter_plus_dec(shape, ratio):
    img = np.random.default_rng(ratio).uniform(0, 2047, shape)
    want = _toolbox_lpfilter_plus_dec(img, ratio)
    np.testing.assert_allclose(baselines._b3_lowpass_decimate(img, ratio, "reflect"), want, rtol=1e-12, atol=1e-9)


def test_gsa_lowpass_border_is_not_one_mirrored_kernel():
    """What GSA got wrong: one 17-tap kernel (B3 applied 4 times) on a single mirror of the image equals the toolbox
    low-pass only at >= 8 px from the edges (ratio 4); the toolbox mirrors its growing approximation at each level."""
    img = np.random.default_rng(1).uniform(0, 2047, (64, 64))
    taps = np.ones(1)
    for _ in range(4):
        taps = np.convolve(taps, [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16])
    one_kernel = mtf_filter(img, np.outer(taps, taps), mode="reflect")[2::4, 2::4]
    want = _toolbox_lpfilter_plus_dec(img, 4)
    np.testing.assert_allclose(one_kernel[2:-2, 2:-2], want[2:-2, 2:-2], rtol=1e-12)
    assert np.abs(one_kernel - want).max() > 1e-2


@pytest.mark.parametrize("sensor, nb", [("QB", 4), ("WV3", 8)])
def test_gsa_matches_the_toolbox_definition_per_pixel(sensor, nb):
    """On the METRICS.md §6.2 pair (ratio 4, 128² PAN): every pixel within 1e-9 relative of GSA.m's definition (the
    single-kernel low-pass was up to 0.08 DN off here, everywhere, through the regression weights)."""
    pan, ms = _fr_case(nb)
    assert pan.sum() == 11363922 and ms.sum() == {4: 2283127, 8: 5055481}[nb]  # vectors.json input checksums
    got = baselines.gsa(pan, ms, sensor, 4)
    want = _toolbox_gsa(pan, ms, 4)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
