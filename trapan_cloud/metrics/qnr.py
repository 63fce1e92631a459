"""No-reference full-resolution indices of the toolbox: D_λ, D_s, QNR, Khan's D_λ^K and HQNR."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..physics import imresize, interp23tap, mtf_filter, mtf_kernels
from ..sensors import Sensor, get_sensor
from .inputs import BLOCK, _check_blocks_fit, _fr_inputs
from .reference import _q2n


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
