"""`pansharpen`: one PAN/MS pair in, one fused image out, by TRA-PAN or a classical method (`trapan_cloud.registry`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import get_method, names
from .sensors import get_sensor
from .validate import check_pair

CLASSICAL = names(classical=True)
"""Classical method names, in registration order (read by benchmarks)."""
METHOD_NAMES = names()
"""Every method `pansharpen` takes."""


def pansharpen(pan: Any, ms: Any, sensor: str = "generic", method: str = "trapan", config: Any = None,
               seed: int = 0, dtype: Any = np.float32, ratio: int | None = None) -> np.ndarray:
    """Fuse one pair: PAN ``(H, W)`` or ``(1, H, W)`` and MS ``(B, h, w)`` in DN → fused ``(B, H, W)`` DN.

    ``method="trapan"`` fits Stage 1 on the pair itself, then refines it with Stage 2 (the one-image use of the paper);
    the classical methods compute in float64, so ``dtype=np.float64`` returns their exact result.
    """
    fn = get_method(str(method).lower())
    sen = get_sensor(sensor)
    p, m, r = check_pair(pan, ms, ratio)
    sen.check_bands(m.shape[0])
    return np.asarray(fn.fuse_pair(p, m, sen, r, config=config, seed=seed), dtype=dtype)
