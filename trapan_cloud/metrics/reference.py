"""Reduced-resolution (reference-based) indices: SAM, ERGAS, Q, Q2n and SCC, toolbox-exact."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .inputs import BLOCK, _check_block, _ref_fused


_Q2N_CHUNK_PX = 1 << 23
"""Values (pixels × bands) that `q2n` processes at once."""


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
