"""The 23-tap interpolator, MATLAB ``imresize``, decimation and the Wald degradation (numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage, signal

from ..errors import InputError
from ..sensors import Sensor, get_sensor
from ..validate import as_ms, as_pan, check_ratio
from .filters import _NP_PAD, _as_image, _check_mode, _check_ratio_arg, mtf_filter, mtf_kernels


CDF23: np.ndarray = 2.0 * np.array([0.5, 0.305334091185, 0.0, -0.072698593239, 0.0, 0.021809577942, 0.0,
                                    -0.005192756653, 0.0, 0.000807762146, 0.0, -0.000060081482])
"""Half of the 23-tap interpolator (centre first) of Aiazzi et al. 2002, scaled by 2 (the upsampling gain)."""

TAPS23: np.ndarray = np.concatenate([CDF23[:0:-1], CDF23])
"""The full symmetric 23-tap kernel ``[fliplr(CDF23(2:end)) CDF23]``; it sums to 2 and is interpolating."""

HALO_LR = 12
"""Low-resolution pixels of padding used by the tile-safe interpolation modes (the filters reach < 11 LR px)."""


# --------------------------------------------------------------------------------------------------------------------
# 23-tap interpolation
# --------------------------------------------------------------------------------------------------------------------


def interp_passes(ratio: int) -> list[tuple[int, np.ndarray]]:
    """The interpolator as a list of ``(factor, taps)`` passes: zero-insert ×factor, then filter rows and columns.

    Powers of two use ``log2(ratio)`` passes of ×2 with `TAPS23` (toolbox ``interp23tap.m``; its loop runs
    ``ratio/2`` times, which is only right for ratio 2 and 4 — ratio 8 would upsample ×16 there, here it is 3 passes).
    Other ratios use one pass with ``ratio·fir1(44, 1/ratio)`` (45-tap Hamming low-pass, toolbox
    ``interp23tapGeneral.m``).

    >>> [(f, len(t)) for f, t in interp_passes(8)], [(f, len(t)) for f, t in interp_passes(3)]
    ([(2, 23), (2, 23), (2, 23)], [(3, 45)])
    """
    ratio = _check_ratio_arg(ratio)
    if ratio & (ratio - 1) == 0:
        return [(2, TAPS23)] * (ratio.bit_length() - 1)
    return [(ratio, ratio * signal.firwin(45, 1.0 / ratio, window="hamming"))]


def _sample_phase(factor: int, first: bool) -> int:
    """Where the zero-insertion puts the samples: 0-based 1 on the first ×2 pass, 0 later, floor(r/2) in one pass."""
    if factor == 2:
        return 1 if first else 0
    return factor // 2


def _upsample_wrap(x: np.ndarray, ratio: int) -> np.ndarray:
    """Circular interpolation of ``(B, h, w)`` by ``ratio`` (the toolbox's boundary)."""
    for n, (factor, taps) in enumerate(interp_passes(ratio)):
        phase = _sample_phase(factor, n == 0)
        up = np.zeros(x.shape[:-2] + (x.shape[-2] * factor, x.shape[-1] * factor))
        up[..., phase::factor, phase::factor] = x
        up = ndimage.correlate1d(up, taps, axis=-2, mode="wrap")
        x = ndimage.correlate1d(up, taps, axis=-1, mode="wrap")
    return x


def interp23tap(ms: Any, ratio: int = 4, mode: str = "wrap") -> np.ndarray:
    """Expand MS to PAN scale with the 23-tap interpolator: ``(B, h, w)`` → ``(B, ratio·h, ratio·w)`` (or 2-D).

    ``mode="wrap"`` is toolbox-exact (circular boundary, so tile edges see the opposite edge); ``"reflect"`` and
    ``"replicate"`` pad the MS by `HALO_LR` pixels with that mode first and crop afterwards (tile-safe);
    ``"constant"`` pads with zeros. MS pixel ``u`` lands on PAN pixel ``ratio·u + ratio//2`` (the phase of
    `decimate`). Supported ratios: any integer >= 2 (see `interp_passes`).

    >>> y = interp23tap(np.arange(1, 17, dtype=float).reshape(4, 4, order="F"))
    >>> y.shape, round(float(y[2, 2]), 8)
    ((16, 16), 1.0)
    """
    x = _as_image(ms, "ms")
    _check_mode(mode)
    ratio = _check_ratio_arg(ratio)
    if mode == "wrap":
        return _upsample_wrap(x, ratio)
    pad = ((0, 0),) * (x.ndim - 2) + ((HALO_LR, HALO_LR), (HALO_LR, HALO_LR))
    out = _upsample_wrap(np.pad(x, pad, mode=_NP_PAD[mode]), ratio)
    c = HALO_LR * ratio
    return out[..., c:-c, c:-c]


# --------------------------------------------------------------------------------------------------------------------
# Resampling and Wald degradation
# --------------------------------------------------------------------------------------------------------------------


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5 (MATLAB ``imresize`` 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _resize_weights(n_in: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(n_out, P)`` and weights of MATLAB's bicubic ``imresize`` along one axis (antialiased if shrinking)."""
    n_out = int(np.ceil(n_in * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    return idx0, w


def imresize(img: Any, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` (bicubic, antialiasing on): the toolbox's PAN degradation, float64 out.

    Keys cubic kernel (a = -0.5) stretched to width ``4/scale`` when shrinking, weights normalised per output pixel,
    symmetric edge padding; output side ``ceil(scale·n)``. Rows are resized first, then columns (MATLAB's order for
    equal scales). ``img`` is ``(y, x)`` or band-first ``(B, y, x)``.

    >>> imresize(np.full((8, 8), 7.0), 0.25)
    array([[7., 7.],
           [7., 7.]])
    """
    x = _as_image(img, "img")
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"scale: expected a positive finite scale factor, found {scale!r}")
    for axis in (-2, -1):
        idx, w = _resize_weights(x.shape[axis], float(scale))
        moved = np.moveaxis(x, axis, -1)
        x = np.moveaxis(np.einsum("...op,op->...o", moved[..., idx], w), -1, axis)
    return x


def decimate(img: Any, ratio: int, phase: int | None = None) -> np.ndarray:
    """Nearest decimation ``img[..., phase::ratio, phase::ratio]``; default phase ``ratio // 2``.

    That is MATLAB ``imresize(x, 1/ratio, 'nearest')`` (1-based rows 3, 7, 11, … for ratio 4) and the phase on
    which `interp23tap` puts the original samples.

    >>> decimate(np.arange(16.0).reshape(4, 4), 2)
    array([[ 5.,  7.],
           [13., 15.]])
    """
    x = _as_image(img, "img")
    ratio = _check_ratio_arg(ratio)
    p = ratio // 2 if phase is None else int(phase)
    if not 0 <= p < ratio:
        raise InputError(f"phase: expected 0 <= phase < ratio ({ratio}), found {phase!r}")
    return x[..., p::ratio, p::ratio]


def wald_degrade(ms: Any, pan: Any, sensor: str | Sensor, ratio: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reduced-resolution pair by the Wald protocol (toolbox ``resize_images.m``, 2021).

    MS ``(B, h, w)`` → MTF filter (sensor gains, ``'replicate'``) and `decimate` → ``(B, h/ratio, w/ratio)``;
    PAN ``(H, W)`` → ``imresize(pan, 1/ratio)`` → ``(H/ratio, W/ratio)``. ``ratio`` defaults to the PAN/MS shape
    ratio and, when given, is checked against it. The sensor's MTF gains are taken for the MS band count.

    Returns
    -------
    (ms_lr, pan_lr), float64 DN.
    """
    m, p = as_ms(ms), as_pan(pan)
    r = check_ratio(p.shape, m.shape[1:], ratio)
    if m.shape[1] % r or m.shape[2] % r:
        raise InputError(f"ms: the MS sides {m.shape[1:]} must be multiples of the ratio {r} to be degraded again")
    sen = get_sensor(sensor)
    ms_lr = decimate(mtf_filter(m, mtf_kernels(sen, m.shape[0], r), "replicate"), r)
    return ms_lr, imresize(p, 1.0 / r)
