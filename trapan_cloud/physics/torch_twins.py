"""Torch twins of the filters and interpolators: batch-first ``(N, B, H, W)`` tensors, differentiable, any device,
the very same kernels, taps and boundary modes as the numpy functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .filters import _NP_PAD, _check_mode, _check_ratio_arg
from .resampling import HALO_LR, _sample_phase, interp_passes

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


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
