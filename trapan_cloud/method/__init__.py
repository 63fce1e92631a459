"""TRA-PAN, pure torch: Stage 1 (`fit_prior`: DAM + warm-up → `Prior`) and Stage 2 (`refine_tile`: RAO per tile).

Arrays in and out are numpy, band-first, in DN; the networks see DN / sensor max DN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..sensors import Sensor, get_sensor
from ..validate import check_pair
from .config import Runtime, TrapanConfig
from .prior import Prior
from .stage1 import fit_prior
from .stage2 import TileResult, refine_tile

__all__ = ("TrapanConfig", "Runtime", "Prior", "fit_prior", "refine_tile", "TileResult", "pansharpen_pair")


def pansharpen_pair(pan: Any, ms: Any, sensor: str | Sensor, config: TrapanConfig | None = None, seed: int = 0,
                    ratio: int | None = None, runtime: Runtime | None = None) -> np.ndarray:
    """One-shot TRA-PAN on one pair: Stage 1 on the pair itself, then Stage 2 → fused (B, H, W) float32 DN.

    ``pan`` (H, W) and ``ms`` (B, h, w) in DN; ``config`` defaults to ``TrapanConfig.default()``. A whole image is
    interpolated with the toolbox's wrap-around boundary, as the classical methods and the indices do (tiles of a
    scene use the tile-safe "reflect" instead, see `refine_tile`).
    """
    p, m, r = check_pair(pan, ms, ratio)
    sen = get_sensor(sensor)
    cfg = TrapanConfig.default() if config is None else config
    prior = fit_prior([(p, m)], sen, cfg, seed=seed, interp_mode="wrap", runtime=runtime)
    return refine_tile(prior, p, m, seed=seed, config=cfg, interp_mode="wrap", runtime=runtime).fused
