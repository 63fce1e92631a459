"""`pansharpen`: one PAN/MS pair in, one fused image out, by TRA-PAN or a classical method."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError
from .sensors import get_sensor
from .validate import check_pair

CLASSICAL = ("exp", "bt-h", "mtf-glp-fs", "mtf-glp-hpm", "gsa", "gdal-brovey")
METHOD_NAMES = ("trapan",) + CLASSICAL


def pansharpen(pan: Any, ms: Any, sensor: str = "generic", method: str = "trapan", config: Any = None,
               seed: int = 0, dtype: Any = np.float32, ratio: int | None = None) -> np.ndarray:
    """Fuse one pair: PAN ``(H, W)`` or ``(1, H, W)`` and MS ``(B, h, w)`` in DN → fused ``(B, H, W)`` DN.

    ``method="trapan"`` fits Stage 1 on the pair itself, then refines it with Stage 2 (the one-image use of the paper);
    the classical methods compute in float64, so ``dtype=np.float64`` returns their exact result.
    """
    key = str(method).lower()
    if key not in METHOD_NAMES:
        raise InputError(f"method: unknown method {method!r}; choose one of {', '.join(METHOD_NAMES)}")
    sen = get_sensor(sensor)
    p, m, r = check_pair(pan, ms, ratio)
    sen.check_bands(m.shape[0])
    if key == "trapan":
        from .method import pansharpen_pair

        fused = pansharpen_pair(p, m, sen, config=config, seed=seed, ratio=r)
    else:
        from .baselines import METHODS

        fused = METHODS[key](p, m, sen, r)
    return np.asarray(fused, dtype=dtype)
