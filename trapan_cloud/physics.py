"""Sensor physics: MTF kernels and filtering, the 23-tap interpolator, MATLAB ``imresize`` and Wald degradation.

Everything follows the 2021 pansharpening toolbox (Vivone et al.) as described in ``reference/METRICS.md`` §4,
implemented from the formulas (no toolbox code). numpy functions take float64 band-first arrays ``(B, y, x)`` (or
single 2-D images) in DN and return float64; the ``*_torch`` twins take batch-first tensors ``(N, B, H, W)``, are
differentiable, run on any device, and use the very same kernel and tap definitions (``mtf_kernel``, ``CDF23``).

Boundary modes (shared by numpy and torch): ``"replicate"`` (MATLAB ``'replicate'``, edge pixel repeated),
``"reflect"`` (MATLAB ``'symmetric'``: mirror that repeats the edge pixel, scipy.ndimage ``'reflect'``),
``"wrap"`` (MATLAB ``'circular'``) and ``"constant"`` (zeros, MATLAB's default).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage, signal

from .errors import InputError
from .sensors import Sensor, get_sensor
from .validate import as_ms, as_pan, check_ratio

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

MODES: tuple[str, ...] = ("replicate", "reflect", "wrap", "constant")
"""Boundary modes accepted by the filters and interpolators."""

_NP_PAD = {"replicate": "edge", "reflect": "symmetric", "wrap": "wrap", "constant": "constant"}

CDF23: np.ndarray = 2.0 * np.array([0.5, 0.305334091185, 0.0, -0.072698593239, 0.0, 0.021809577942, 0.0,
                                    -0.005192756653, 0.0, 0.000807762146, 0.0, -0.000060081482])
"""Half of the 23-tap interpolator (centre first) of Aiazzi et al. 2002, scaled by 2 (the upsampling gain)."""

TAPS23: np.ndarray = np.concatenate([CDF23[:0:-1], CDF23])
"""The full symmetric 23-tap kernel ``[fliplr(CDF23(2:end)) CDF23]``; it sums to 2 and is interpolating."""

HALO_LR = 12
"""Low-resolution pixels of padding used by the tile-safe interpolation modes (the filters reach < 11 LR px)."""


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


# --------------------------------------------------------------------------------------------------------------------
# torch twins
# --------------------------------------------------------------------------------------------------------------------


def _check_tensor(x: torch.Tensor, name: str = "x") -> None:
    if x.ndim != 4:
        raise InputError(f"{name}: expected a batch-first tensor (N, B, H, W), found shape {tuple(x.shape)}")


def _pad_torch(x: torch.Tensor, pad: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """Pad the last two axes by ``(top, bottom, left, right)`` with one of `MODES` (differentiable gather)."""
    import torch

    _check_mode(mode)
    top, bottom, left, right = pad
    if mode == "constant":
        return torch.nn.functional.pad(x, (left, right, top, bottom))
    rows = np.pad(np.arange(x.shape[-2]), (top, bottom), mode=_NP_PAD[mode])
    cols = np.pad(np.arange(x.shape[-1]), (left, right), mode=_NP_PAD[mode])
    x = x.index_select(-2, torch.as_tensor(rows, device=x.device))
    return x.index_select(-1, torch.as_tensor(cols, device=x.device))


def mtf_filter_torch(x: torch.Tensor, kernels: Any, mode: str = "replicate") -> torch.Tensor:
    """Torch twin of `mtf_filter`: depthwise correlation of ``(N, B, H, W)`` with ``(B, k, k)`` or ``(k, k)`` kernels.

    ``kernels`` may be numpy or a tensor; it is moved to ``x``'s device and dtype. Differentiable in ``x``.
    """
    import torch

    _check_tensor(x)
    k = torch.as_tensor(kernels).to(device=x.device, dtype=x.dtype)
    nb = x.shape[1]
    if k.ndim == 2:
        k = k[None]
    if k.ndim != 3 or k.shape[0] not in (1, nb):
        raise InputError(f"kernels: expected (k, k) or ({nb}, k, k) for x of shape {tuple(x.shape)}, "
                         f"found shape {tuple(k.shape)}")
    ky, kx = k.shape[1:]
    padded = _pad_torch(x, ((ky - 1) // 2, ky // 2, (kx - 1) // 2, kx // 2), mode)
    weight = k.expand(nb, ky, kx)[:, None]
    return torch.nn.functional.conv2d(padded, weight, groups=nb)


def _filter_sep_torch(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Circular correlation of every image of ``(N, B, H, W)`` with ``taps`` along rows and columns."""
    import torch

    n = taps.numel()
    lo, hi = (n - 1) // 2, n // 2
    flat = x.reshape(-1, 1, x.shape[-2], x.shape[-1])
    flat = _pad_torch(flat, (lo, hi, lo, hi), "wrap")
    flat = torch.nn.functional.conv2d(flat, taps.view(1, 1, n, 1))
    flat = torch.nn.functional.conv2d(flat, taps.view(1, 1, 1, n))
    return flat.reshape(x.shape)


def interp23tap_torch(x: torch.Tensor, ratio: int = 4, mode: str = "wrap") -> torch.Tensor:
    """Torch twin of `interp23tap`: ``(N, B, h, w)`` → ``(N, B, ratio·h, ratio·w)``, same taps and modes."""
    import torch

    _check_tensor(x)
    _check_mode(mode)
    ratio = _check_ratio_arg(ratio)
    if mode != "wrap":
        x = _pad_torch(x, (HALO_LR,) * 4, mode)
    for n, (factor, taps) in enumerate(interp_passes(ratio)):
        phase = _sample_phase(factor, n == 0)
        up = x.new_zeros(x.shape[:-2] + (x.shape[-2] * factor, x.shape[-1] * factor))
        up[..., phase::factor, phase::factor] = x
        x = _filter_sep_torch(up, torch.as_tensor(taps, dtype=x.dtype, device=x.device))
    if mode != "wrap":
        c = HALO_LR * ratio
        x = x[..., c:-c, c:-c]
    return x


def decimate_torch(x: torch.Tensor, ratio: int, phase: int | None = None) -> torch.Tensor:
    """Torch twin of `decimate`: ``x[..., phase::ratio, phase::ratio]`` with default phase ``ratio // 2``."""
    ratio = _check_ratio_arg(ratio)
    p = ratio // 2 if phase is None else int(phase)
    if not 0 <= p < ratio:
        raise InputError(f"phase: expected 0 <= phase < ratio ({ratio}), found {phase!r}")
    return x[..., p::ratio, p::ratio]
