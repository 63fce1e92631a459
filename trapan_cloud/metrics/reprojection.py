"""Full-resolution assessment by reprojection (Scarpa & Ciotola 2022; reference/FR_PROTOCOL.md): the reprojected
spectral indices, the spatial consistency D_ρ and its reduced-resolution reference, and the coregistration phases."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..physics import mtf_filter, mtf_kernels, wald_degrade
from ..sensors import Sensor, get_sensor
from ..validate import as_pan, check_pair
from .inputs import BLOCK, _as_fused, _fr_inputs
from .reference import _q2n, _q_map_mean, ergas, sam


FLAT_REL = 1e-9
"""A window is *flat* (zero variance) for `d_rho` when the RMS of its residuals from the local means is at most
``FLAT_REL`` times the window's mean absolute value: that is constant data up to rounding (~1e-15 relative here), and
judged locally, so outliers elsewhere in the image (an exploding HPM band) do not make real detail count as flat."""


def _window_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over every k×k window ('valid') of the last two axes, as k shifted adds per axis (box sums).

    The same sums as integral-image differences, but the rounding error of a window sum stays at a few ulps of the
    window's own values instead of the running total's, so `FLAT_REL` can tell flat windows apart.
    """
    for axis in (-2, -1):
        n = a.shape[axis] - k + 1
        moved = np.moveaxis(a, axis, 0)
        out = moved[:n].copy()
        for t in range(1, k):
            out += moved[t:t + n]
        a = np.moveaxis(out, 0, axis)
    return a


def _field_sums(a: np.ndarray, w: int) -> np.ndarray:
    """Per pixel p, the sum over the 2w×2w window ``p + {−w+1, …, w}²``, pixels outside the image counted as 0."""
    pad = [(0, 0)] * (a.ndim - 2) + [(w - 1, w), (w - 1, w)]
    return _window_sums(np.pad(a, pad), 2 * w)


def _local_corr(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """Correlation field of Scarpa & Ciotola (2022) between ``x`` and ``y`` (same shape ``(..., H, W)``), same shape.

    With ``W(p) = p + {−w+1, …, w}²`` (a 2w×2w window; pixels outside the image count as 0, as in the authors'
    zero-padded integral images), the local mean ``μ_x(p) = Σ_W(p) x / (4w²)`` is removed from every pixel,
    ``x̃ = x − μ_x``, and ``ρ(p) = Σ_W(p) x̃ỹ / sqrt(Σ_W(p) x̃² · Σ_W(p) ỹ²)``, clipped to [−1, 1]. Flat windows (see
    `FLAT_REL`): ρ = 1 where both images are flat (no structure to disagree on, so the PAN copied into a band keeps
    ρ = 1 on flat ground), ρ = 0 where only one of them is (no linear relation at all).
    """
    n = float(4 * w * w)
    xr = x - _field_sums(x, w) / n
    yr = y - _field_sums(y, w) / n
    sxx, syy, sxy = _field_sums(xr * xr, w), _field_sums(yr * yr, w), _field_sums(xr * yr, w)
    flat_x = sxx <= n * (FLAT_REL * _field_sums(np.abs(x), w) / n) ** 2
    flat_y = syy <= n * (FLAT_REL * _field_sums(np.abs(y), w) / n) ** 2
    live = ~(flat_x | flat_y)
    rho = np.where(flat_x & flat_y, 1.0, 0.0)
    rho[live] = np.clip(sxy[live] / np.sqrt(sxx[live] * syy[live]), -1.0, 1.0)
    return rho


def _d_rho(f: np.ndarray, p: np.ndarray, r: int) -> float:
    half = -(-r // 2)  # ceil(ratio / 2)
    return float((1.0 - _local_corr(f, np.broadcast_to(p, f.shape), half)).mean())


def _d_rho_reference(p: np.ndarray, m: np.ndarray, sen: Sensor, r: int) -> float:
    h, w = m.shape[1] // r * r, m.shape[2] // r * r  # wald_degrade needs MS sides that are multiples of the ratio
    if h == 0 or w == 0:
        raise InputError(f"ms: the reduced-resolution D_ρ degrades the MS by the ratio {r} again, so its sides must be "
                         f"at least {r}; found {m.shape[1:]}")
    m, p = m[:, :h, :w], p[:h * r, :w * r]
    _, pan_lr = wald_degrade(m, p, sen, r)
    return _d_rho(m, pan_lr, r)


def _coregistration(m: np.ndarray, p: np.ndarray, kernels: np.ndarray, r: int) -> list[tuple[int, int]]:
    """Per band, the phase (i, j) at which the MTF-low-passed PAN decimated ``[i::r, j::r]`` best matches the band."""
    half = r // 2
    lp = mtf_filter(np.broadcast_to(p, (m.shape[0],) + p.shape), kernels, "replicate")
    phases = []
    for b in range(m.shape[0]):
        scores = [(float(_local_corr(m[b], lp[b, i::r, j::r], half).mean()), i, j) for i in range(r) for j in range(r)]
        best = max(s for s, _, _ in scores)
        phases.append(next((i, j) for s, i, j in scores if s == best))  # ties: the first in row-major order
    return phases


def _reproject(f: np.ndarray, phases: list[tuple[int, int]], kernels: np.ndarray, r: int) -> np.ndarray:
    low = mtf_filter(f, kernels, "replicate")
    return np.stack([low[b, i::r, j::r] for b, (i, j) in enumerate(phases)])


def _reprojected(f: np.ndarray, m: np.ndarray, p: np.ndarray, sen: Sensor, r: int) -> dict[str, float]:
    kernels = mtf_kernels(sen, m.shape[0], r)
    rep = _reproject(f, _coregistration(m, p, kernels, r), kernels, r)
    q_block = min(BLOCK, *m.shape[1:])
    if q_block < 2:
        raise InputError(f"ms: the reprojected Q needs MS images of at least 2×2 pixels, found {m.shape[1:]}")
    return {"R-Q2n": _q2n(m, rep), "R-Q": float(np.mean([_q_map_mean(a, b, q_block) for a, b in zip(m, rep)])),
            "R-SAM": sam(m, rep), "R-ERGAS": ergas(m, rep, r)}


def coregistration_phases(ms: Any, pan: Any, sensor: str | Sensor, ratio: int | None = None) -> list[tuple[int, int]]:
    """Per MS band, the decimation phase ``(i, j)`` of the PAN grid on which that band sits (reprojection step 1).

    The PAN is low-passed with the band's MTF kernel (``'replicate'``) and decimated at ``[i::ratio, j::ratio]`` for
    every ``0 <= i, j < ratio``; the band takes the phase with the largest mean over pixels of the correlation field
    of `d_rho` between the band and that decimation (half-width ``ratio // 2``: 4×4 windows for ratio 4, 2×2 for
    ratio 2); ties go to the first phase in row-major order.
    """
    p, m, r = check_pair(pan, ms, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    return _coregistration(m, p, mtf_kernels(sen, m.shape[0], r), r)


def reprojected(fused: Any, ms: Any, pan: Any, sensor: str | Sensor, ratio: int | None = None) -> dict[str, float]:
    """Spectral consistency by reprojection (Scarpa & Ciotola 2022): ``{"R-Q2n", "R-Q", "R-SAM", "R-ERGAS"}``.

    1. Coregistration: per band, the phase of `coregistration_phases` (PAN low-passed with the band's MTF kernel).
    2. Reprojection: each fused band is filtered with its band's MTF kernel (``'replicate'``, the kernels of
       `wald_degrade`) and decimated at its band's phase, giving an image at MS scale.
    3. Indices of the reprojection against the original ``ms`` (the reference): `q2n` (32×32 distinct blocks; sides
       that are not multiples of 32 are mirror-padded as in `q2n`, and the uint16 cast clips negative values), Q
       (mean per-band UIQI on sliding 32×32 windows as `q_index`, or on the largest window that fits, ``min(h, w)``,
       when an MS side is shorter than 32), `sam` (degrees) and `ergas` with the ratio.

    An image from which ``ms`` was simulated with the same kernels and decimation reprojects onto it exactly
    (R-Q2n = R-Q = 1, R-SAM = R-ERGAS = 0), whatever the phase, as long as the PAN lets the search find it.
    ``fused`` (B, H, W), ``ms`` (B, h, w), ``pan`` (H, W), DN; ``ratio=None`` takes the shape ratio. No size limit:
    the correlation windows are zero-padded at the edges (see `d_rho`).
    """
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    return _reprojected(f, m, p, sen, r)


def d_rho(fused: Any, pan: Any, ratio: int | None = None) -> float:
    """Spatial consistency D_ρ (Scarpa & Ciotola 2022): mean over pixels and bands of ``1 − ρ``, in [0, 2].

    ρ is the authors' local correlation field between each fused band and the PAN, with half-width
    ``w = ceil(ratio / 2)``: every pixel p has the 2w×2w window ``W(p) = p + {−w+1, …, w}²`` (4×4 for ratio 4, i.e.
    σ×σ with σ = ratio; 2×2 for ratio 2), the local mean over W(p) is removed from every pixel (box sums), and
    ``ρ(p) = Σ_W(p) x̃ỹ / sqrt(Σ_W(p) x̃² Σ_W(p) ỹ²)`` with x̃, ỹ those residuals, clipped to [−1, 1]. Windows reaching
    past the image edge count the missing pixels as 0 (the authors' zero-padded integral images; every pixel has a
    value, at any image size, and an independent implementation's figures depend on it: 'valid'-only windows move a
    coregistration phase on SN6-t3), so ρ is invariant to a positive gain everywhere but to an offset only at ≥ 2w px
    from the edges. Flat windows (RMS residual ≤ `FLAT_REL` × the window's mean |value|): ρ = 1 where the band and the
    PAN are both flat, ρ = 0 where only one of them is. The PAN (or a positive multiple) copied into every band scores
    0, its negative 2. This is the protocol's definition, not the textbook per-window coefficient (each window's own
    means removed): that one gives other values (MTF-GLP-FS on SN6-t1: 0.23 with 5×5 windows instead of 0.14) and
    does not reproduce the protocol's reference figures.

    ``fused`` (B, H, W) (or (H, W) for one band) and ``pan`` (H, W) at the same scale. ``ratio`` (the PAN/MS scale
    factor) sets the window and cannot be read from these shapes, so it is required. D_ρ is never read alone: set it
    beside `d_rho_reference` (the truth's level at reduced resolution) and the reprojected spectral indices.
    """
    f = np.asarray(getattr(fused, "values", fused), dtype=np.float64)
    f = _as_fused(f[None] if f.ndim == 2 else f)
    p = as_pan(pan)
    if ratio is None:
        raise InputError("ratio: d_rho needs the PAN/MS scale factor (its windows have half-width ceil(ratio/2)) and "
                         "the fused and PAN shapes cannot imply it; pass ratio=")
    if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 2:
        raise InputError(f"ratio: expected an integer PAN/MS scale factor >= 2, found {ratio!r}")
    r = int(ratio)
    if p.shape != f.shape[1:]:
        raise InputError(f"pan: expected the shape of the fused bands {f.shape[1:]}, found {p.shape}")
    return _d_rho(f, p, r)


def d_rho_reference(pan: Any, ms: Any, sensor: str | Sensor, ratio: int | None = None) -> float:
    """D_ρ of the reduced-resolution truth: `d_rho` of the original ``ms`` against the Wald-degraded PAN.

    `wald_degrade` brings the PAN to MS scale (MATLAB bicubic ``imresize``; the MS is degraded too, unused) and the MS
    plays the fused image, with the same windows (half-width ``ceil(ratio / 2)``). It is the detail level that the
    truth itself shows at the scale where it is known, the level to read every D_ρ against. MS sides that are not
    multiples of the ratio are cropped to the largest multiple (top-left window) before the degradation.
    """
    p, m, r = check_pair(pan, ms, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    return _d_rho_reference(p, m, sen, r)
