"""Input checks shared by the quality indices (array conventions: see `trapan_cloud.metrics`) and the block side."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..validate import as_ms, as_pan, check_ratio


BLOCK = 32
"""Block side of Q, Q2n, D_λ, D_s and D_λ^K (toolbox ``Qblocks_size``)."""


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
