"""Classical pansharpening baselines, computed the way the 2021 pansharpening toolbox computes them.

Every method has the signature ``f(pan, ms, sensor, ratio=None, **boundary) -> fused``: PAN ``(H, W)`` DN, MS
``(B, h, w)`` DN, ``H = ratio*h``; the result is ``(B, H, W)`` float64 DN. As in the toolbox (Vivone et al. 2021,
``reference/METRICS.md`` §5) the MS is first expanded to the PAN grid with the 23-tap interpolator
(`physics.interp23tap`, which puts MS pixel ``u`` on PAN pixel ``ratio*u + ratio//2``), so the toolbox methods inherit
its phase; `gdal_brovey` resamples with GDAL's own corner-aligned geometry instead.

Boundary keywords. ``interp_mode`` is the boundary of the 23-tap interpolator (toolbox: ``"wrap"``, i.e. circular) and
``filter_mode`` that of the MTF / Gaussian low-pass filters (toolbox: ``"replicate"``; GSA's wavelet low-pass:
``"reflect"``); both are passed to `physics`
unchanged, so a tiled pipeline can choose a tile-safe mode (no wrap-around between opposite tile edges).

Global statistics. Besides local filtering, these methods use statistics of the whole array they are given, so a tile
gives a different result from the same window of a whole-scene run unless the statistics are estimated on the scene
first: BT-H (1st percentile haze, LS weights, mean/std of PAN, PAN_LP and intensity), MTF-GLP-FS (per-band regression
gains), MTF-GLP-HPM (per-band mean/std equalisation of PAN), GSA (LS weights, gains, band means). EXP is purely local;
GDAL Brovey is pixel-wise after the cubic resampling.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import physics
from .errors import InputError
from .sensors import Sensor, get_sensor
from .validate import check_pair

EPS = float(np.finfo(np.float64).eps)
"""MATLAB ``eps``: the toolbox adds it to every denominator of a ratio."""

HAZE_WEIGHTS_4 = (0.95, 0.45, 0.40, 0.05)
"""BT-H haze multipliers of the 1st percentile for 4-band (B, G, R, NIR) images (toolbox ``BroveyRegHazeMin``)."""

LP_GNYQ = 0.3
"""Nyquist gain of the toolbox's generic Gaussian low-pass ``LPfilterGauss`` (used by BT-H and MTF-GLP-HPM)."""

B3_SPLINE = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
"""Cubic B-spline (B3) taps of the Starck–Murtagh wavelet low-pass that GSA uses to bring the PAN to MS scale."""


def _prepare(pan: Any, ms: Any, sensor: str | Sensor, ratio: int | None) -> tuple[np.ndarray, np.ndarray, Sensor, int]:
    """Validated float64 (pan (H, W), ms (B, h, w)), the sensor and the ratio."""
    p, m, r = check_pair(pan, ms, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    return p, m, sen, r


def _lp_gauss(img: np.ndarray, ratio: int, mode: str) -> np.ndarray:
    """Toolbox ``LPfilterGauss`` on (H, W): the `physics.mtf_kernel` construction with the ``N·fcut/2`` width.

    ``LPfilterGauss`` sets the Gaussian's frequency std to ``α = sqrt((N·fcut/2)² / (−2 ln G))`` instead of genMTF's
    ``(N−1)·fcut/2``; the same α follows from the genMTF formula with the gain ``G**((N−1)²/N²)``, so the toolbox
    kernel of that gain is exactly the LPfilterGauss kernel (N = 41, G = 0.3).
    """
    n = 41
    kernel = physics.mtf_kernel(LP_GNYQ ** ((n - 1) ** 2 / n**2), ratio=ratio, size=n, variant="toolbox")
    return physics.mtf_filter(img[None], kernel[None], mode=mode)[0]


def _mtf_lowpass(img: np.ndarray, sensor: Sensor, ratio: int, filter_mode: str, interp_mode: str) -> np.ndarray:
    """GLP low-resolution version of (B, H, W) PAN copies: per-band MTF filter, decimate, 23-tap expand back."""
    kernels = physics.mtf_kernels(sensor, img.shape[0], ratio=ratio, band="ms")
    low = physics.decimate(physics.mtf_filter(img, kernels, mode=filter_mode), ratio)
    return physics.interp23tap(low, ratio=ratio, mode=interp_mode)


def _std(x: np.ndarray) -> float:
    """MATLAB ``std2`` (N-1 normalisation)."""
    return float(np.std(x, ddof=1))


def _cov(a: np.ndarray, b: np.ndarray) -> float:
    """Sample covariance of two same-shape arrays (MATLAB ``cov(a(:), b(:))(1, 2)``)."""
    return float(np.cov(a.ravel(), b.ravel())[0, 1])


def exp(pan: Any, ms: Any, sensor: str | Sensor = "generic", ratio: int | None = None, *,
        interp_mode: str = "wrap") -> np.ndarray:
    """EXP: the MS expanded to the PAN grid with the 23-tap interpolator (no PAN information; the reference floor).

    Parameters
    ----------
    pan : (H, W) DN, used only for the output grid and the checks.
    ms : (B, h, w) DN.
    sensor, ratio : sensor name or `Sensor`; PAN/MS ratio (default: from the shapes).
    interp_mode : boundary of the interpolator, toolbox ``"wrap"``.

    Returns
    -------
    (B, H, W) float64 DN.
    """
    _, m, _, r = _prepare(pan, ms, sensor, ratio)
    return physics.interp23tap(m, ratio=r, mode=interp_mode)


def bt_h(pan: Any, ms: Any, sensor: str | Sensor = "generic", ratio: int | None = None, *,
         interp_mode: str = "wrap", filter_mode: str = "replicate") -> np.ndarray:
    """BT-H: Brovey transform with haze correction and regression-based intensity (toolbox ``BroveyRegHazeMin``).

    With ``MS`` the 23-tap expanded MS (B, H, W):

    * haze ``L_b`` = 1st percentile of ``MS_b`` × (0.95, 0.45, 0.40, 0.05) for 4-band (B, G, R, NIR) images, the band
      minimum otherwise (percentile as MATLAB ``prctile``: linear between sorted values at (i − 0.5)/n);
    * ``PAN_LP`` = ``LPfilterGauss(PAN)`` (GNyq 0.3, Gaussian width from ``N·fcut/2``);
    * ``α`` = least squares ``PAN_LP ≈ Σ α_b MS_b`` (no intercept), intensity ``I = Σ α_b (MS_b − L_b)``;
    * ``P = (PAN − mean(PAN_LP))·std(I)/std(PAN_LP) + mean(I)``;
    * ``F_b = max(MS_b − L_b, 0)·P/(I + eps) + L_b``.

    Global statistics: percentile, α, means and standard deviations (see the module docstring).

    Parameters
    ----------
    pan : (H, W) DN.
    ms : (B, h, w) DN.
    sensor, ratio : sensor (unused by the algorithm, checked for the band count); PAN/MS ratio.
    interp_mode, filter_mode : boundaries of the interpolator (toolbox ``"wrap"``) and low-pass (``"replicate"``).

    Returns
    -------
    (B, H, W) float64 DN.
    """
    p, m, _, r = _prepare(pan, ms, sensor, ratio)
    up = physics.interp23tap(m, ratio=r, mode=interp_mode)
    nb = up.shape[0]
    if nb == 4:
        haze = np.array(HAZE_WEIGHTS_4) * np.percentile(up.reshape(nb, -1), 1.0, axis=1, method="hazen")
    else:
        haze = up.reshape(nb, -1).min(axis=1)
    pan_lp = _lp_gauss(p, r, filter_mode)
    alpha, *_ = np.linalg.lstsq(up.reshape(nb, -1).T, pan_lp.ravel(), rcond=None)
    dehazed = up - haze[:, None, None]
    intensity = np.tensordot(alpha, dehazed, axes=1)
    matched = (p - pan_lp.mean()) * (_std(intensity) / _std(pan_lp)) + intensity.mean()
    return np.maximum(dehazed, 0.0) * (matched / (intensity + EPS)) + haze[:, None, None]


def mtf_glp_fs(pan: Any, ms: Any, sensor: str | Sensor = "generic", ratio: int | None = None, *,
               interp_mode: str = "wrap", filter_mode: str = "replicate") -> np.ndarray:
    """MTF-GLP-FS: MTF-matched generalised Laplacian pyramid with full-scale regression gains (toolbox ``MTF_GLP_FS``).

    ``PAN_LP_b`` = 23-tap expansion of the ``[ratio//2::ratio]`` decimation of the PAN filtered with the sensor's MTF
    for band b; ``g_b = cov(MS_b, PAN)/cov(PAN_LP_b, PAN)``; ``F_b = MS_b + g_b (PAN − PAN_LP_b)``.

    Global statistics: the per-band gains ``g_b``.

    Parameters
    ----------
    pan : (H, W) DN.
    ms : (B, h, w) DN.
    sensor, ratio : sensor whose MS MTF gains shape the low-pass; PAN/MS ratio.
    interp_mode, filter_mode : boundaries of the interpolator (toolbox ``"wrap"``) and MTF filter (``"replicate"``).

    Returns
    -------
    (B, H, W) float64 DN.
    """
    p, m, sen, r = _prepare(pan, ms, sensor, ratio)
    up = physics.interp23tap(m, ratio=r, mode=interp_mode)
    pan_lp = _mtf_lowpass(np.broadcast_to(p, up.shape), sen, r, filter_mode, interp_mode)
    gains = np.array([_cov(up[b], p) / _cov(pan_lp[b], p) for b in range(up.shape[0])])
    return up + gains[:, None, None] * (p[None] - pan_lp)


def mtf_glp_hpm(pan: Any, ms: Any, sensor: str | Sensor = "generic", ratio: int | None = None, *,
                interp_mode: str = "wrap", filter_mode: str = "replicate") -> np.ndarray:
    """MTF-GLP-HPM: MTF-matched GLP with high-pass modulation (toolbox ``MTF_GLP_HPM``).

    Per band, the PAN is equalised to the expanded MS band,
    ``P_b = (PAN − mean(PAN))·std(MS_b)/std(LPfilterGauss(PAN)) + mean(MS_b)``; ``P_LP_b`` is its MTF low-pass
    (filter, ``[ratio//2::ratio]`` decimation, 23-tap expansion) and ``F_b = MS_b·P_b/(P_LP_b + eps)``. The ratio is
    unbounded: where ``P_LP_b`` nears 0 (dark scenes, large PAN contrast) the output explodes, as in the toolbox.

    Global statistics: the mean/std equalisation.

    Parameters
    ----------
    pan : (H, W) DN.
    ms : (B, h, w) DN.
    sensor, ratio : sensor whose MS MTF gains shape the low-pass; PAN/MS ratio.
    interp_mode, filter_mode : boundaries of the interpolator (toolbox ``"wrap"``) and filters (``"replicate"``).

    Returns
    -------
    (B, H, W) float64 DN.
    """
    p, m, sen, r = _prepare(pan, ms, sensor, ratio)
    up = physics.interp23tap(m, ratio=r, mode=interp_mode)
    lp_std = _std(_lp_gauss(p, r, filter_mode))
    scale = np.array([_std(band) for band in up]) / lp_std
    matched = (p[None] - p.mean()) * scale[:, None, None] + up.mean(axis=(1, 2))[:, None, None]
    matched_lp = _mtf_lowpass(matched, sen, r, filter_mode, interp_mode)
    return up * (matched / (matched_lp + EPS))


_NP_PAD = {"replicate": "edge", "reflect": "symmetric", "wrap": "wrap", "constant": "constant"}
"""numpy ``np.pad`` mode of each `physics.MODES` boundary (``"reflect"`` is MATLAB's ``'sym'``, half-point)."""


def _b3_valid(x: np.ndarray, axis: int) -> np.ndarray:
    """'Valid' correlation of ``x`` with the 5-tap `B3_SPLINE` along ``axis`` (4 samples shorter)."""
    n = x.shape[axis] - 4
    moved = np.moveaxis(x, axis, 0)
    out = B3_SPLINE[0] * moved[:n]
    for t in range(1, 5):
        out = out + B3_SPLINE[t] * moved[t:t + n]
    return np.moveaxis(out, 0, axis)


def _starck_murtagh_approx(x: np.ndarray, levels: int, axis: int, mode: str) -> np.ndarray:
    """Along one axis: the toolbox's undecimated Starck–Murtagh transform reconstructed from its approximation alone.

    The toolbox (``ndwt2_working`` / ``indwt2_working``, filters ``h = h̃ = B3`` without holes) works on *growing*
    arrays. Each analysis level extends its input by ``lf − 1 = 4`` samples per side with the boundary mode (MATLAB
    ``'sym'``) and keeps the full convolution's central part, so the approximation grows by 4 samples (2 per side)
    per level; the next level extends **that grown array** again (mirroring about its own edges, not the image's).
    Each synthesis level fully convolves with ``h̃`` and keeps the central part of the previous level's size, i.e.
    a 'valid' correlation with no extension at all. With the details zeroed, the 2-D result is this 1-D operator
    along each axis (the √2 gains of the four filters cancel with the toolbox's /4 per level).
    """
    pad = [(0, 0)] * x.ndim
    pad[axis] = (4, 4)
    for _ in range(levels):
        x = _b3_valid(np.pad(x, pad, mode=_NP_PAD[mode]), axis)
    for _ in range(levels):
        x = _b3_valid(x, axis)
    return x


def _b3_lowpass_decimate(img: np.ndarray, ratio: int, mode: str) -> np.ndarray:
    """(H, W) → (h, w): the toolbox's ``LPfilterPlusDec`` (Starck–Murtagh undecimated wavelet low-pass + decimation).

    The toolbox decomposes the PAN over ``ceil(log2(ratio))`` undecimated levels with the Starck–Murtagh pair
    (analysis and synthesis low-pass both the B3 spline, applied without holes), zeroes every detail, reconstructs
    (`_starck_murtagh_approx` along each axis) and takes the ``imresize(·, 1/ratio, 'nearest')`` samples
    ``[ratio//2::ratio]``. The B3 spline is thus applied ``2·levels`` times; an à-trous cascade with holes does not
    reproduce the ANCHORS.md GSA numbers. The boundary matters too: the toolbox mirrors the growing approximation at
    every analysis level, which differs from one 17-tap kernel applied with a single mirror of the image in the 8
    border rows and columns (ratio 4) and, through the global regression weights, moves every fused pixel (figures in
    bench/RESULTS.md, decision log).
    """
    levels = int(np.ceil(np.log2(ratio)))
    if mode not in physics.MODES:
        raise InputError(f"filter_mode: expected one of {', '.join(physics.MODES)}, found {mode!r}")
    low = _starck_murtagh_approx(_starck_murtagh_approx(img, levels, 0, mode), levels, 1, mode)
    return physics.decimate(low, ratio)


def gsa(pan: Any, ms: Any, sensor: str | Sensor = "generic", ratio: int | None = None, *,
        interp_mode: str = "wrap", filter_mode: str = "reflect") -> np.ndarray:
    """GSA: adaptive Gram–Schmidt component substitution (toolbox ``GSA``).

    Weights ``w`` (with intercept) from least squares, at MS scale, of the zero-mean PAN brought to MS scale
    (``LPfilterPlusDec``: B3-spline wavelet low-pass + ``[ratio//2::ratio]`` decimation) on the zero-mean original MS; intensity
    ``I = Σ w_b MS0_b + w_0`` on the zero-mean expanded MS, ``I0 = I − mean(I)``; gains ``g_b = cov(I0, MS0_b)/var(I0)``;
    ``F_b = MS0_b + g_b (PAN0 − I0)`` and finally each band's mean is reset to that of the expanded MS band.

    Global statistics: weights, gains and all means.

    Parameters
    ----------
    pan : (H, W) DN.
    ms : (B, h, w) DN.
    sensor, ratio : sensor (unused by the algorithm, checked for the band count); PAN/MS ratio.
    interp_mode, filter_mode : boundaries of the interpolator (toolbox ``"wrap"``) and the B3 low-pass (toolbox
        ``"reflect"``, MATLAB ``'sym'``).

    Returns
    -------
    (B, H, W) float64 DN.
    """
    p, m, _, r = _prepare(pan, ms, sensor, ratio)
    up = physics.interp23tap(m, ratio=r, mode=interp_mode)
    nb = up.shape[0]
    up0 = up - up.mean(axis=(1, 2))[:, None, None]
    lr0 = m - m.mean(axis=(1, 2))[:, None, None]
    pan0 = p - p.mean()
    pan_lr0 = _b3_lowpass_decimate(pan0, r, filter_mode)
    design = np.concatenate([lr0.reshape(nb, -1), np.ones((1, lr0[0].size))]).T
    weights, *_ = np.linalg.lstsq(design, pan_lr0.ravel(), rcond=None)
    intensity = np.tensordot(weights[:nb], up0, axes=1) + weights[nb]
    i0 = intensity - intensity.mean()
    var_i = float(np.var(i0, ddof=1))
    gains = np.array([_cov(i0, band) / var_i for band in up0])
    fused = up0 + gains[:, None, None] * (pan0 - i0)[None]
    return fused - fused.mean(axis=(1, 2))[:, None, None] + up.mean(axis=(1, 2))[:, None, None]


def _vrt_document(pan_path: Path, ms_path: Path, nbands: int, weights: Sequence[float], resampling: str) -> str:
    """GDAL pansharpened-VRT XML over a 1-band PAN and a ``nbands`` MS GeoTIFF (weighted Brovey)."""
    spectral = "".join(
        f'<SpectralBand dstBand="{b + 1}"><SourceFilename relativeToVRT="0">{ms_path}</SourceFilename>'
        f"<SourceBand>{b + 1}</SourceBand></SpectralBand>"
        for b in range(nbands)
    )
    return (
        '<VRTDataset subClass="VRTPansharpenedDataset"><PansharpeningOptions>'
        "<Algorithm>WeightedBrovey</Algorithm>"
        f"<AlgorithmOptions><Weights>{','.join(repr(float(w)) for w in weights)}</Weights></AlgorithmOptions>"
        f"<Resampling>{resampling}</Resampling><NumThreads>1</NumThreads>"
        f'<PanchroBand><SourceFilename relativeToVRT="0">{pan_path}</SourceFilename><SourceBand>1</SourceBand>'
        f"</PanchroBand>{spectral}</PansharpeningOptions></VRTDataset>"
    )


GDAL_RESAMPLING = ("nearest", "bilinear", "cubic", "cubicspline", "lanczos", "average")
"""Resampling names GDAL's pansharpening accepts for the MS → PAN grid step."""


def gdal_brovey(pan: Any, ms: Any, sensor: str | Sensor = "generic", ratio: int | None = None, *,
                weights: Sequence[float] | None = None, resampling: str = "cubic") -> np.ndarray:
    """GDAL's weighted Brovey, run by GDAL itself (the rasterio wheel's libgdal) through a pansharpened VRT.

    The arrays are written as float64 GeoTIFFs to a temporary folder, with corner-aligned geotransforms (PAN pixel
    1 × 1, MS pixel ``ratio`` × ``ratio``, same origin — GDAL's geometry, so MS pixel ``u`` is centred on PAN
    coordinate ``ratio*u + (ratio − 1)/2``, not on the toolbox's ``ratio*u + ratio//2``). A VRT document with
    ``subClass="VRTPansharpenedDataset"`` and ``Algorithm`` ``WeightedBrovey`` is then read back: GDAL resamples
    each MS band onto the PAN grid (``resampling``), forms ``pseudo = Σ w_b MS_b`` and returns
    ``MS_b·PAN/pseudo`` (0 where pseudo is 0). Float64 output is not clamped (no ``BitDepth``), no NoData is declared.

    Parameters
    ----------
    pan : (H, W) DN.
    ms : (B, h, w) DN.
    sensor, ratio : sensor (checked for the band count only); PAN/MS ratio.
    weights : pseudo-PAN weights, one per band; GDAL's default ``1/B`` each.
    resampling : GDAL's MS → PAN resampling, default ``"cubic"`` (GDAL's default), one of `GDAL_RESAMPLING`.

    Returns
    -------
    (B, H, W) float64 DN.
    """
    import rasterio
    from affine import Affine

    p, m, _, r = _prepare(pan, ms, sensor, ratio)
    nb = m.shape[0]
    w = np.full(nb, 1.0 / nb) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (nb,) or not np.isfinite(w).all():
        raise InputError(f"weights: expected {nb} finite values (one per MS band), found {np.shape(weights)}")
    if resampling not in GDAL_RESAMPLING:
        raise InputError(f"resampling: expected one of {', '.join(GDAL_RESAMPLING)}, found {resampling!r}")
    with tempfile.TemporaryDirectory(prefix="trapan_gdal_brovey_") as tmp:
        folder = Path(tmp)
        pan_path, ms_path, vrt_path = folder / "pan.tif", folder / "ms.tif", folder / "brovey.vrt"
        top = float(p.shape[0])  # a north-up grid with its origin at (0, H): not the identity GDAL may drop
        for path, arr, scale in ((pan_path, p[None], 1.0), (ms_path, m, float(r))):
            profile = {"driver": "GTiff", "dtype": "float64", "count": arr.shape[0], "height": arr.shape[1],
                       "width": arr.shape[2], "transform": Affine(scale, 0.0, 0.0, 0.0, -scale, top)}
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(arr)
        vrt_path.write_text(_vrt_document(pan_path, ms_path, nb, w, resampling))
        with rasterio.open(vrt_path) as src:
            return src.read().astype(np.float64)


METHODS: dict[str, Callable[..., np.ndarray]] = {
    "exp": exp,
    "bt-h": bt_h,
    "mtf-glp-fs": mtf_glp_fs,
    "mtf-glp-hpm": mtf_glp_hpm,
    "gsa": gsa,
    "gdal-brovey": gdal_brovey,
}
"""Method name (as in `trapan_cloud.fusion.CLASSICAL`) → function ``f(pan, ms, sensor, ratio)``."""
