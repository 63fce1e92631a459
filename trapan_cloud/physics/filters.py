"""Boundary modes, argument checks, the MTF kernels and `mtf_filter` (conventions: see `trapan_cloud.physics`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy import signal

from ..errors import InputError
from ..sensors import Sensor, get_sensor


MODES: tuple[str, ...] = ("replicate", "reflect", "wrap", "constant")
"""Boundary modes accepted by the filters and interpolators."""

_NP_PAD = {"replicate": "edge", "reflect": "symmetric", "wrap": "wrap", "constant": "constant"}


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"mode: expected one of {', '.join(MODES)}, found {mode!r}")
    return mode


def _as_image(img: Any, name: str) -> np.ndarray:
    """float64 view of a 2-D ``(y, x)`` or band-first 3-D ``(B, y, x)`` array (values may be any real number)."""
    arr = np.asarray(getattr(img, "values", img), dtype=np.float64)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InputError(f"{name}: expected a non-empty (y, x) or band-first (bands, y, x) array, found shape {arr.shape}")
    return arr


def _check_ratio_arg(ratio: Any, name: str = "ratio") -> int:
    if isinstance(ratio, bool) or int(ratio) != ratio or int(ratio) < 2:
        raise InputError(f"{name}: expected an integer PAN/MS scale factor >= 2, found {ratio!r}")
    return int(ratio)


# --------------------------------------------------------------------------------------------------------------------
# MTF kernels
# --------------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _mtf_kernel_cached(gnyq: float, ratio: int, size: int, variant: str) -> np.ndarray:
    # Gaussian desired frequency response (fspecial('gaussian') / max): GNyq at the MS Nyquist frequency.
    alpha = np.sqrt(((size - 1) * (1.0 / ratio) / 2) ** 2 / (-2.0 * np.log(gnyq)))
    t = np.arange(size) - (size - 1) / 2
    hd = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * alpha**2))
    hd[hd < np.finfo(float).eps * hd.max()] = 0.0  # fspecial's underflow cut
    hd /= hd.max()
    # fsamp2: frequency sampling -> spatial filter.
    h = np.rot90(np.fft.fftshift(np.fft.ifft2(np.rot90(np.fft.fftshift(np.rot90(hd, 2)), 2))), 2)
    # fwind1 with one 1-D window: Huang's circular window, the 1-D Kaiser(beta=0.5) evaluated at the radius.
    tw = np.linspace(-1.0, 1.0, size)
    radius = np.hypot(tw[:, None], tw[None, :])
    window = np.where(radius < 1.0, np.interp(radius, tw, np.kaiser(size, 0.5)), 0.0)
    kernel = np.real(h) * window
    if variant == "normalised":
        kernel = np.clip(kernel, 0.0, None)
        kernel /= kernel.sum()
    kernel.setflags(write=False)
    return kernel


def mtf_kernel(gnyq: float, ratio: int = 4, size: int = 41, variant: str = "toolbox") -> np.ndarray:
    """MTF-matched low-pass kernel ``(size, size)`` whose frequency response is ``gnyq`` at the MS Nyquist frequency.

    ``variant="toolbox"`` is the 2021 toolbox construction (``genMTF.m``): Gaussian desired response, ``fsamp2`` and
    ``fwind1`` with Huang's circular Kaiser (β = 0.5) window; it is *not* renormalised (sum ≈ 0.9988) and keeps its
    ~1e-11 negative lobes, so that indices match published numbers. ``variant="normalised"`` clips negatives and
    rescales to sum 1 (the form used in the ZS-Pan / Z-PNN losses, which preserves the mean DN exactly).

    >>> k = mtf_kernel(0.3)
    >>> k.shape, round(float(k.sum()), 4), round(float(mtf_kernel(0.3, variant="normalised").sum()), 12)
    ((41, 41), 0.9987, 1.0)
    """
    if not 0.0 < float(gnyq) < 1.0:
        raise InputError(f"gnyq: expected an MTF gain at Nyquist in (0, 1), found {gnyq!r}")
    ratio = _check_ratio_arg(ratio)
    if isinstance(size, bool) or int(size) != size or size < 3:
        raise InputError(f"size: expected an integer kernel side >= 3, found {size!r}")
    if variant not in ("toolbox", "normalised"):
        raise InputError(f"variant: expected 'toolbox' or 'normalised', found {variant!r}")
    return _mtf_kernel_cached(float(gnyq), ratio, int(size), variant).copy()


def mtf_kernels(sensor: str | Sensor, nbands: int, ratio: int | None = None, band: str = "ms",
                variant: str = "toolbox") -> np.ndarray:
    """Stack of the sensor's MTF kernels: ``(nbands, 41, 41)`` for ``band="ms"``, ``(1, 41, 41)`` for ``band="pan"``.

    MS gains are taken the toolbox way (``Sensor.ms_gnyq``: the first ``nbands`` of the table); ``ratio`` defaults to
    the sensor's PAN/MS ratio.

    >>> mtf_kernels("QB", 4).shape, mtf_kernels("WV3", 8, band="pan").shape
    ((4, 41, 41), (1, 41, 41))
    """
    sen = get_sensor(sensor)
    r = sen.ratio if ratio is None else ratio
    if band == "ms":
        gains = sen.ms_gnyq(int(nbands))
    elif band == "pan":
        gains = (sen.gnyq_pan,)
    else:
        raise InputError(f"band: expected 'ms' or 'pan', found {band!r}")
    return np.stack([mtf_kernel(g, r, variant=variant) for g in gains])


def _check_kernels(img: np.ndarray, kernels: Any) -> np.ndarray:
    """Kernels as ``(B or 1, k, k)`` float64 matching the bands of ``img``."""
    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim == 2:
        k = k[None]
    nb = img.shape[0] if img.ndim == 3 else 1
    if k.ndim != 3 or k.shape[0] not in (1, nb) or min(k.shape[1:]) < 1:
        raise InputError(f"kernels: expected (k, k) or ({nb}, k, k) for an image of shape {img.shape}, "
                         f"found shape {k.shape}")
    return k


def mtf_filter(img: Any, kernels: Any, mode: str = "replicate") -> np.ndarray:
    """Filter every band with its kernel, as MATLAB ``imfilter`` (correlation, output the size of the input).

    Parameters
    ----------
    img : (B, y, x) or (y, x) array, DN.
    kernels : (B, k, k), or (k, k) / (1, k, k) for one kernel applied to every band (e.g. from `mtf_kernels`).
    mode : boundary handling, one of `MODES`; ``"replicate"`` is the toolbox's choice, ``"reflect"`` is tile-safe.

    Returns
    -------
    float64 array of ``img``'s shape. Computed by FFT on the padded image (≈1e-12 relative to direct correlation).

    >>> out = mtf_filter(np.full((2, 8, 8), 100.0), mtf_kernel(0.3, size=5, variant="normalised"))
    >>> out.shape, bool(np.allclose(out, 100.0))
    ((2, 8, 8), True)
    """
    x = _as_image(img, "img")
    k = _check_kernels(x, kernels)
    _check_mode(mode)
    x3 = x if x.ndim == 3 else x[None]
    ky, kx = k.shape[1:]
    pad = ((0, 0), ((ky - 1) // 2, ky // 2), ((kx - 1) // 2, kx // 2))
    padded = np.pad(x3, pad, mode=_NP_PAD[mode])
    out = signal.fftconvolve(padded, k[:, ::-1, ::-1], mode="valid", axes=(1, 2))
    return out if x.ndim == 3 else out[0]
