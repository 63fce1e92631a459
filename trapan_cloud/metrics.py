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


def full_resolution(fused: Any, pan: Any, ms: Any, sensor: str | Sensor, ratio: int | None = None) -> dict[str, float]:
    """Every full-resolution index at once: ``{"HQNR", "D_lambda_K", "D_s", "QNR", "D_lambda"}``.

    ``fused`` (B, H, W) and ``pan`` (H, W) at PAN scale, ``ms`` (B, h, w) at its own scale, DN; toolbox defaults
    (``indexes_evaluation_FS``: I_MS = circular `interp23tap`(ms), S = 32, p = q = 1). Sides must be multiples of 32.
    """
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    i_ms = interp23tap(m, r)
    dlk, ds, dl = _d_lambda_khan(f, i_ms, sen, r), _d_s(f, i_ms, p, r), _d_lambda(f, i_ms)
    return {"HQNR": (1 - dlk) * (1 - ds), "D_lambda_K": dlk, "D_s": ds, "QNR": (1 - dl) * (1 - ds), "D_lambda": dl}


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
