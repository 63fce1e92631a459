"""Pansharpening quality indices, toolbox-exact (Vivone et al. 2021 toolbox; ``reference/METRICS.md`` §3).

All arrays are band-first ``(B, y, x)`` in DN (never normalised to [0, 1]: Q2n casts to uint16); PAN is ``(H, W)``.
Reduced-resolution indices compare a reference ``ref`` with ``fused`` of the same shape; full-resolution indices take
``fused`` at PAN scale, the MS at its own scale ``(B, h, w)`` and the PAN. Reference inputs (``ref``, ``ms``, ``pan``)
must be finite, non-negative DN; ``fused`` must be finite but may dip below zero (methods such as MTF-GLP-FS
overshoot; the toolbox scores them unclipped, ``thvalues = 0``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import ndimage

from .errors import InputError
from .physics import interp23tap, imresize, mtf_filter, mtf_kernels, wald_degrade
from .sensors import Sensor, get_sensor
from .validate import as_ms, as_pan, check_pair, check_ratio

BLOCK = 32
"""Block side of Q, Q2n, D_λ, D_s and D_λ^K (toolbox ``Qblocks_size``)."""

_Q2N_CHUNK_PX = 1 << 23
"""Values (pixels × bands) that `q2n` processes at once."""

DIM_CUT = 21
"""Toolbox border cut before the reduced-resolution indices: MATLAB ``21:end-21`` = numpy ``[20:-21]``."""


# --------------------------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------------------------


def _as_fused(x: Any, name: str = "fused") -> np.ndarray:
    """Band-first float64 ``(B, y, x)``, finite (negative values allowed, see module docstring)."""
    arr = np.asarray(getattr(x, "values", x), dtype=np.float64)
    if arr.ndim != 3 or arr.size == 0:
        raise InputError(f"{name}: expected a band-first (bands, y, x) array, found shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: {int((~np.isfinite(arr)).sum())} NaN/inf values; indices need finite values")
    return arr


def _ref_fused(ref: Any, fused: Any) -> tuple[np.ndarray, np.ndarray]:
    r, f = as_ms(ref, "ref"), _as_fused(fused)
    if r.shape != f.shape:
        raise InputError(f"fused: expected the shape of ref {r.shape}, found {f.shape}")
    return r, f


def _check_block(block: Any) -> int:
    if isinstance(block, bool) or int(block) != block or block < 2:
        raise InputError(f"block: expected an integer block side >= 2, found {block!r}")
    return int(block)


def _fr_inputs(fused: Any, ms: Any, pan: Any | None, ratio: int | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Checked (fused (B,H,W), ms (B,h,w), pan (H,W) or None, ratio) for the full-resolution indices."""
    f, m = _as_fused(fused), as_ms(ms)
    if f.shape[0] != m.shape[0]:
        raise InputError(f"fused: expected {m.shape[0]} bands like ms, found {f.shape[0]}")
    r = check_ratio(f.shape[1:], m.shape[1:], ratio, names=("fused", "ms"))
    p = None
    if pan is not None:
        p = as_pan(pan)
        if p.shape != f.shape[1:]:
            raise InputError(f"pan: expected the PAN-scale shape of fused {f.shape[1:]}, found {p.shape}")
    return f, m, p, r


def _check_blocks_fit(shape: tuple[int, ...], name: str, block: int = BLOCK) -> None:
    if shape[-2] % block or shape[-1] % block:
        raise InputError(f"{name}: D_λ, D_s, QNR and HQNR use distinct {block}×{block} blocks, so the PAN-scale sides "
                         f"must be multiples of {block}; found {shape[-2:]} (crop to "
                         f"{(shape[-2] // block * block, shape[-1] // block * block)})")


# --------------------------------------------------------------------------------------------------------------------
# reduced-resolution indices
# --------------------------------------------------------------------------------------------------------------------


def sam(ref: Any, fused: Any) -> float:
    """Spectral Angle Mapper in **degrees** (toolbox ``SAM.m``).

    Mean over pixels of ``acos(<x, y> / (|x||y|))``; pixels where ``|x||y| = 0`` are left out of the mean.

    >>> x = np.ones((3, 4, 4))
    >>> sam(x, 2 * x)
    0.0
    """
    x, y = _ref_fused(ref, fused)
    num = (x * y).sum(axis=0)
    den = np.sqrt((x * x).sum(axis=0) * (y * y).sum(axis=0))
    keep = den != 0
    if not keep.any():
        raise InputError("ref/fused: every pixel has a zero spectrum, SAM is undefined")
    angles = np.arccos(np.clip(num[keep] / den[keep], -1.0, 1.0))
    return float(np.degrees(angles.mean()))


def ergas(ref: Any, fused: Any, ratio: int = 4) -> float:
    """ERGAS (toolbox ``ERGAS.m``): ``(100/ratio)·sqrt(mean_b(MSE_b / mean(ref_b)²))``; ``ratio`` = PAN/MS factor.

    >>> ergas(np.full((2, 4, 4), 10.0), np.full((2, 4, 4), 11.0))
    2.5
    """
    x, y = _ref_fused(ref, fused)
    if isinstance(ratio, bool) or not ratio > 0:
        raise InputError(f"ratio: expected the positive PAN/MS scale factor, found {ratio!r}")
    mse = ((x - y) ** 2).mean(axis=(1, 2))
    mu = x.mean(axis=(1, 2))
    if (mu == 0).any():
        raise InputError(f"ref: band(s) {np.flatnonzero(mu == 0).tolist()} have zero mean, ERGAS is undefined")
    return float(100.0 / ratio * np.sqrt((mse / mu**2).mean()))


def _box_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sums over every k×k window ('valid') of the last two axes, by separable cumulative sums."""
    for axis in (-2, -1):
        c = np.moveaxis(np.cumsum(a, axis=axis), axis, 0)
        out = c[k - 1:].copy()
        out[1:] -= c[:-k]
        a = np.moveaxis(out, 0, axis)
    return a


def q_index(ref: Any, fused: Any, block: int = BLOCK) -> float:
    """Universal Image Quality Index Q averaged over bands (toolbox ``Q.m`` / ``img_qi.m``).

    Per band, the Wang–Bovik index on every ``block×block`` sliding window ('valid', stride 1), averaged over the
    map; windows where both images are constant score ``2·μx·μy/(μx²+μy²)`` (1 if both are zero), as in ``img_qi``.

    >>> x = np.arange(3 * 40 * 40, dtype=float).reshape(3, 40, 40) % 97
    >>> q_index(x, x)
    1.0
    """
    x, y = _ref_fused(ref, fused)
    s = _check_block(block)
    if min(x.shape[1:]) < s:
        raise InputError(f"ref: Q needs images of at least {s}×{s} pixels, found {x.shape[1:]}")
    return float(np.mean([_q_map_mean(xb, yb, s) for xb, yb in zip(x, y)]))


def _q_map_mean(x: np.ndarray, y: np.ndarray, s: int) -> float:
    """Mean of the sliding-window Q map of one band pair ``(y, x)`` (``img_qi``, 'valid')."""
    n = float(s * s)
    # Window sums from data shifted by an integer near the mean: the variance terms are shift-free and the window
    # means are restored below, so cumulative sums stay exact for integer DN on large images (as filter2's sums).
    cx, cy = np.floor(x.mean()), np.floor(y.mean())
    xc, yc = x - cx, y - cy
    sxc, syc = _box_sums(xc, s), _box_sums(yc, s)
    sxx, syy, sxy = _box_sums(xc * xc, s), _box_sums(yc * yc, s), _box_sums(xc * yc, s)
    sx, sy = sxc + n * cx, syc + n * cy
    cov = n * sxy - sxc * syc
    d1 = n * (sxx + syy) - (sxc**2 + syc**2)
    d2 = sx**2 + sy**2
    den = d1 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(den != 0, 4 * cov * sx * sy / den, np.where(d2 != 0, 2 * sx * sy / d2, 1.0))
    return float(q.mean())


def _to_uint16(a: np.ndarray) -> np.ndarray:
    """MATLAB ``uint16()``: round half away from zero, saturate to [0, 65535]; kept as float64."""
    return np.clip(np.sign(a) * np.floor(np.abs(a) + 0.5), 0, 65535)


def _cd_conj(a: np.ndarray) -> np.ndarray:
    out = -a
    out[..., 0] = a[..., 0]
    return out


def _cd_mult(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cayley–Dickson product over the last axis (length a power of two): ``(p,q)(r,s) = (pr − s*q, sp + qr*)``."""
    n = a.shape[-1]
    if n == 1:
        return a * b
    h = n // 2
    p, q, r, s = a[..., :h], a[..., h:], b[..., :h], b[..., h:]
    return np.concatenate([_cd_mult(p, r) - _cd_mult(_cd_conj(s), q),
                           _cd_mult(s, p) + _cd_mult(q, _cd_conj(r))], axis=-1)


def _cd_table(n: int) -> np.ndarray:
    """Structure constants ``T[i, j] = e_i · e_j`` of the n-dimensional Cayley–Dickson algebra, shape (n, n, n)."""
    eye = np.eye(n)
    return _cd_mult(eye[:, None, :], eye[None, :, :])


def _q2n_blocks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|q| per block for ``(nblocks, M, n)`` hypercomplex pixels (toolbox ``onions_quality.m``), vectorised.

    The block mean of the pixel products ``x̃_n · conj(ỹ_n)`` is bilinear, so it is computed from the band
    cross-moments ``mean_n x̃_i ỹ_j`` contracted with the algebra's structure constants.
    """
    m, n = x.shape[1], x.shape[2]
    mu_x, sd_x = x.mean(axis=1, keepdims=True), x.std(axis=1, ddof=1, keepdims=True)
    sd_x[sd_x == 0] = np.finfo(float).eps
    xn = (x - mu_x) / sd_x + 1
    yn = _cd_conj((y - mu_x) / sd_x + 1)  # conj(ỹ), as the toolbox stores it
    mx, my = xn.mean(axis=1), yn.mean(axis=1)
    mod_mx2, mod_my2 = (mx**2).sum(-1), (my**2).sum(-1)
    c = m / (m - 1)
    var_sum = c * ((xn**2).sum((1, 2)) + (yn**2).sum((1, 2))) / m - c * (mod_mx2 + mod_my2)
    mean_bias = 2 * np.sqrt(mod_mx2 * mod_my2) / (mod_mx2 + mod_my2)
    cross = np.matmul(xn.transpose(0, 2, 1), yn) / m  # (nblocks, n, n)
    prod_mean = cross.reshape(-1, n * n) @ _cd_table(n).reshape(n * n, n)
    cov = c * prod_mean - c * _cd_mult(mx, my)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.sqrt((cov**2).sum(-1)) * mean_bias * 2 / var_sum
    return np.where(var_sum == 0, mean_bias, q)


def q2n(ref: Any, fused: Any, block: int = BLOCK) -> float:
    """Q2n (Q4 for 4 bands, Q8 for 8; toolbox ``q2n.m``), the hypercomplex extension of Q on distinct blocks.

    Sides that are not multiples of ``block`` are padded right then bottom by a mirror that repeats the edge pixel;
    both images are cast to uint16 (round half away from zero, saturate); bands are zero-padded to a power of two;
    each pixel's spectrum is a Cayley–Dickson hypercomplex number, both blocks are normalised with the reference
    block's mean and std, and |q| is averaged over the blocks. Inputs must therefore be on the DN scale.

    >>> x = np.arange(4 * 64 * 64, dtype=float).reshape(4, 64, 64) % 251
    >>> round(q2n(x, x), 12)
    1.0
    """
    x, y = _ref_fused(ref, fused)
    return _q2n(x, y, _check_block(block))


def _q2n(x: np.ndarray, y: np.ndarray, s: int = BLOCK) -> float:
    """`q2n` of checked arrays (any real values: the uint16 cast clips them, e.g. an interpolated MS's overshoot)."""
    b, h, w = x.shape
    e1, e2 = -h % s, -w % s
    if e1 or e2:
        x = np.pad(x, ((0, 0), (0, e1), (0, e2)), mode="symmetric")
        y = np.pad(y, ((0, 0), (0, e1), (0, e2)), mode="symmetric")
    x, y = _to_uint16(x), _to_uint16(y)
    n = 1 << (b - 1).bit_length()
    if n != b:
        zeros = np.zeros((n - b,) + x.shape[1:])
        x, y = np.concatenate([x, zeros]), np.concatenate([y, zeros])
    wb = x.shape[2] // s
    rows = max(1, _Q2N_CHUNK_PX // (x.shape[2] * s * n))  # block rows per chunk, to bound memory on big scenes
    values = []
    for top in range(0, x.shape[1], rows * s):
        xs, ys = x[:, top:top + rows * s], y[:, top:top + rows * s]
        hb = xs.shape[1] // s

        def blocks(a: np.ndarray) -> np.ndarray:
            return a.reshape(n, hb, s, wb, s).transpose(1, 3, 2, 4, 0).reshape(hb * wb, s * s, n)

        values.append(_q2n_blocks(blocks(xs), blocks(ys)))
    return float(np.concatenate(values).mean())


def scc(ref: Any, fused: Any) -> float:
    """Spatial Correlation Coefficient of the 2021 toolbox (``SCC.m``): cosine similarity of Sobel gradient magnitudes.

    Both images lose a 1-pixel border, then ``G = sqrt((I⋆S)² + (I⋆Sᵀ)²)`` per band (Sobel, correlation, zero
    padding) and ``SCC = Σ G_ref·G_fused / (‖G_ref‖‖G_fused‖)`` over all pixels and bands.

    >>> x = np.arange(2 * 9 * 9, dtype=float).reshape(2, 9, 9) ** 1.5
    >>> round(scc(x, 3 * x), 12)
    1.0
    """
    x, y = _ref_fused(ref, fused)
    if min(x.shape[1:]) < 3:
        raise InputError(f"ref: SCC needs images of at least 3×3 pixels, found {x.shape[1:]}")
    sobel = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])

    def grad(a: np.ndarray) -> np.ndarray:
        a = a[:, 1:-1, 1:-1]
        gy = ndimage.correlate(a, sobel[None], mode="constant")
        gx = ndimage.correlate(a, sobel.T[None], mode="constant")
        return np.sqrt(gy**2 + gx**2)

    gr, gf = grad(x), grad(y)
    den = np.sqrt((gr**2).sum()) * np.sqrt((gf**2).sum())
    if den == 0:
        raise InputError("ref/fused: an image has no gradient at all, SCC is undefined")
    return float((gr * gf).sum() / den)


# --------------------------------------------------------------------------------------------------------------------
# full-resolution indices
# --------------------------------------------------------------------------------------------------------------------


Moments = tuple[np.ndarray, np.ndarray, np.ndarray]
"""Per distinct block: means ``(n, hb, wb)``, centred pixels ``(n, hb, wb, s²)`` and variances ``(n, hb, wb)``."""


def _block_moments(a: np.ndarray, s: int = BLOCK) -> Moments:
    """`Moments` of every band of ``(n, H, W)`` on distinct s×s blocks (toolbox ``blockproc``)."""
    n, h, w = a.shape
    blocks = a.reshape(n, h // s, s, w // s, s).transpose(0, 1, 3, 2, 4).reshape(n, h // s, w // s, s * s)
    mean = blocks.mean(-1)
    centred = blocks - mean[..., None]
    return mean, centred, (centred * centred).mean(-1)


def _band(m: Moments, i: int) -> Moments:
    return m[0][i], m[1][i], m[2][i]


def _uqi(a: Moments, b: Moments) -> float:
    """Mean over blocks of ``uqi = 4·cov·μa·μb / ((var a + var b)(μa² + μb²))`` for two bands' `Moments`.

    A block where both bands are constant gives NaN, as in the toolbox.
    """
    (ma, da, va), (mb, db, vb) = a, b
    cov = (da * db).mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((4 * cov * ma * mb / ((va + vb) * (ma**2 + mb**2))).mean())


def _d_lambda(f: np.ndarray, i_ms: np.ndarray) -> float:
    nb = f.shape[0]
    if nb < 2:
        raise InputError("ms: D_λ compares pairs of bands, so it needs at least 2 bands, found 1")
    fm, mm = _block_moments(f), _block_moments(i_ms)
    return float(np.mean([abs(_uqi(_band(fm, i), _band(fm, j)) - _uqi(_band(mm, i), _band(mm, j)))
                          for i in range(nb) for j in range(i + 1, nb)]))


def _d_s(f: np.ndarray, i_ms: np.ndarray, p: np.ndarray, r: int) -> float:
    pan_lp = interp23tap(imresize(p, 1.0 / r), r)
    if pan_lp.shape != p.shape:
        raise InputError(f"pan: imresize by 1/{r} and back gives {pan_lp.shape}, not the PAN shape {p.shape}")
    fm, mm = _block_moments(f), _block_moments(i_ms)
    pm, lm = _band(_block_moments(p[None]), 0), _band(_block_moments(pan_lp[None]), 0)
    return float(np.mean([abs(_uqi(_band(fm, b), pm) - _uqi(_band(mm, b), lm)) for b in range(f.shape[0])]))


def _d_lambda_khan(f: np.ndarray, i_ms: np.ndarray, sen: Sensor, r: int) -> float:
    return 1.0 - _q2n(i_ms, mtf_filter(f, mtf_kernels(sen, f.shape[0], r), "replicate"))


def d_lambda(fused: Any, ms: Any, pan: Any, ratio: int | None = None) -> float:
    """Spectral distortion D_λ of QNR, toolbox 1.0 defaults (``D_lambda.m``, p = 1, S = 32).

    ``D_λ = mean_{i<j} |Q(F_i, F_j) − Q(M_i, M_j)|`` with M = `interp23tap`(ms) at PAN scale and Q the UIQI on
    distinct 32×32 blocks (so EXP scores 0 exactly). ``fused`` (B, H, W), ``ms`` (B, h, w), ``pan`` (H, W) (used
    for the shape checks only); ``ratio=None`` takes the shape ratio. Sides must be multiples of 32.
    """
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    return _d_lambda(f, interp23tap(m, r))


def d_s(fused: Any, ms: Any, pan: Any, ratio: int | None = None) -> float:
    """Spatial distortion D_s of QNR/HQNR, toolbox 1.0 defaults (``D_s.m``, q = 1, S = 32).

    ``D_s = mean_b |Q(F_b, P) − Q(M_b, P_LP)|`` with M = `interp23tap`(ms), ``P_LP = interp23tap(imresize(P, 1/r))``
    (MATLAB bicubic with antialiasing) and Q the UIQI on distinct 32×32 blocks. Sides must be multiples of 32.
    """
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    return _d_s(f, interp23tap(m, r), p, r)


def qnr(fused: Any, ms: Any, pan: Any, ratio: int | None = None) -> tuple[float, float, float]:
    """QNR = (1 − D_λ)(1 − D_s) (toolbox ``QNR.m``, α = β = 1) → ``(qnr, d_lambda, d_s)``."""
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    i_ms = interp23tap(m, r)
    dl, ds = _d_lambda(f, i_ms), _d_s(f, i_ms, p, r)
    return (1 - dl) * (1 - ds), dl, ds


def d_lambda_khan(fused: Any, ms: Any, sensor: str | Sensor, ratio: int | None = None) -> float:
    """Khan's spectral distortion as in the 2021 toolbox (``D_lambda_K.m``): ``1 − Q2n(I_MS, MTF(F))``.

    Every fused band is filtered with its sensor MTF kernel (``'replicate'``) and *not* decimated, then compared
    with ``I_MS = interp23tap(ms)`` at PAN scale by `q2n` with 32×32 blocks.
    """
    f, m, _, r = _fr_inputs(fused, ms, None, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    return _d_lambda_khan(f, interp23tap(m, r), sen, r)


def hqnr(fused: Any, ms: Any, pan: Any, sensor: str | Sensor, ratio: int | None = None) -> tuple[float, float, float]:
    """Hybrid QNR of the 2021 toolbox (``HQNR.m``): ``(1 − D_λ^K)(1 − D_s)`` → ``(hqnr, d_lambda_khan, d_s)``."""
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    i_ms = interp23tap(m, r)
    dl, ds = _d_lambda_khan(f, i_ms, sen, r), _d_s(f, i_ms, p, r)
    return (1 - dl) * (1 - ds), dl, ds


# --------------------------------------------------------------------------------------------------------------------
# full-resolution assessment by reprojection (Scarpa & Ciotola 2022; reference/FR_PROTOCOL.md)
# --------------------------------------------------------------------------------------------------------------------


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


def full_resolution(fused: Any, pan: Any, ms: Any, sensor: str | Sensor, ratio: int | None = None) -> dict[str, float]:
    """Every full-resolution index at once: ``{"HQNR", "D_lambda_K", "D_s", "QNR", "D_lambda"}`` plus the
    reprojection protocol's ``{"R-Q2n", "R-Q", "R-SAM", "R-ERGAS", "D_rho", "D_rho_ref"}``.

    ``fused`` (B, H, W) and ``pan`` (H, W) at PAN scale, ``ms`` (B, h, w) at its own scale, DN; toolbox defaults
    (``indexes_evaluation_FS``: I_MS = circular `interp23tap`(ms), S = 32, p = q = 1). Sides must be multiples of 32.
    The R- indices are `reprojected`, ``D_rho`` is `d_rho` and ``D_rho_ref`` is `d_rho_reference` (the truth's D_ρ
    at reduced resolution, to read D_ρ against; reference/FR_PROTOCOL.md); ``D_rho_ref`` is NaN when the MS is
    smaller than the ratio and cannot be degraded again.
    """
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    i_ms = interp23tap(m, r)
    dlk, ds, dl = _d_lambda_khan(f, i_ms, sen, r), _d_s(f, i_ms, p, r), _d_lambda(f, i_ms)
    return {"HQNR": (1 - dlk) * (1 - ds), "D_lambda_K": dlk, "D_s": ds, "QNR": (1 - dl) * (1 - ds), "D_lambda": dl,
            **_reprojected(f, m, p, sen, r), "D_rho": _d_rho(f, p, r),
            "D_rho_ref": _d_rho_reference(p, m, sen, r) if min(m.shape[1:]) >= r else float("nan")}


def reduced_resolution(method_fn: Callable[[np.ndarray, np.ndarray], Any], pan: Any, ms: Any,
                       sensor: str | Sensor, ratio: int | None = None, dim_cut: int = DIM_CUT) -> dict[str, float]:
    """Wald-protocol scores of a method: ``{"Q2n", "Q", "SAM", "ERGAS", "SCC"}``.

    ``(pan, ms)`` are degraded by `wald_degrade` (MS: MTF + decimation; PAN: bicubic ``imresize``), the method is
    called as ``method_fn(pan_lr, ms_lr)`` and must return the fused image at MS scale ``(B, h, w)``; it is scored
    against the original ``ms`` after the toolbox border cut ``[20:-21]`` (``indexes_evaluation``, no clipping).
    ``dim_cut=0`` is the toolbox's ``flag_cut_bounds = 0`` (no cut), for crops too small to lose 41 px per axis.
    """
    p, m, r = check_pair(pan, ms, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    if dim_cut < 0:
        raise InputError(f"dim_cut: expected 0 (no cut) or a positive border width, found {dim_cut}")
    need = 2 * dim_cut - 1 + BLOCK if dim_cut else BLOCK
    if min(m.shape[1:]) < need:
        raise InputError(f"ms: the reduced-resolution indices cut {dim_cut} px per side and need {BLOCK}×{BLOCK} "
                         f"windows, so MS sides of at least {need} px; found {m.shape[1:]} (dim_cut=0 disables the cut)")
    ms_lr, pan_lr = wald_degrade(m, p, sen, r)
    fused = _as_fused(method_fn(pan_lr, ms_lr), "method_fn(pan_lr, ms_lr)")
    if fused.shape != m.shape:
        raise InputError(f"method_fn(pan_lr, ms_lr): expected the fused image at MS scale {m.shape}, "
                         f"found shape {fused.shape}")
    cut = np.s_[:, dim_cut - 1:-dim_cut, dim_cut - 1:-dim_cut] if dim_cut else np.s_[:, :, :]
    gt, fu = m[cut], fused[cut]
    return {"Q2n": q2n(gt, fu), "Q": q_index(gt, fu), "SAM": sam(gt, fu), "ERGAS": ergas(gt, fu, r), "SCC": scc(gt, fu)}
