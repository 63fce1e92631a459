"""Stage 1 of TRA-PAN: Degradation-Aware Modeling (DAM) and the reduced-resolution warm-up (TRAPAN.md §4.2-4.3).

`fit_prior` runs once per scene on a sample of its tiles (or on the one pair of `pansharpen_pair`) and returns a
`Prior` that every tile's Stage 2 starts from. With ``prior_steps`` it also runs Stage 2 jointly on the sample pairs
(amortised Stage 2), so each tile needs fewer steps of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..sensors import Sensor, get_sensor
from ..validate import check_pair, full_scale
from .config import Runtime, TrapanConfig
from .losses import masked_norm
from .networks import DAM, FusionNet
from .pairs import TILE_MODE, PairData, prepare_pair, resolve_device, rr_crops, torch_threads
from .prior import Prior
from .stage2 import Refiner, train_jointly

log = logging.getLogger(__name__)

DAM_MAX_PIXELS = 65536
"""The DAM is fitted full-batch on at most this many valid MS pixels (a random subset beyond that)."""


def _fit_dam(data: list[PairData], bands: int, cfg: TrapanConfig, gen: torch.Generator,
             device: torch.device) -> DAM:
    """Fit g_φ: MS pixel → MTF-filtered PAN decimated at the interp23tap phase (both at MS scale), valid pixels only.

    Full batch of pixels instead of ZS-Pan's TenCrop batches: the MLP is per-pixel, so crops add nothing but noise.
    The weights with the lowest loss are kept (ZS-Pan SDE).
    """
    xs, ys = [], []
    for d in data:
        keep = d.valid_ms.flatten() > 0
        xs.append(d.ms.reshape(bands, -1).T[keep])
        ys.append(d.dam_target.flatten()[keep])
    x, y = torch.cat(xs), torch.cat(ys)[:, None]
    if x.shape[0] > DAM_MAX_PIXELS:
        pick = torch.randperm(x.shape[0], generator=gen)[:DAM_MAX_PIXELS].to(device)
        x, y = x[pick], y[pick]
    dam = DAM(bands, cfg.dam_hidden, generator=gen).to(device)
    opt = torch.optim.Adam(dam.parameters(), lr=cfg.dam_lr)
    best, best_state = float("inf"), None
    for _ in range(cfg.dam_steps):
        loss = torch.mean((dam(x) - y) ** 2)  # (n, C) rows: DAM is per-pixel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if loss.item() < best:
            best, best_state = loss.item(), {k: v.detach().clone() for k, v in dam.state_dict().items()}
    if best_state is not None:
        dam.load_state_dict(best_state)
    log.debug("DAM fitted on %d pixels, best MSE %.3g", x.shape[0], best)
    return dam.requires_grad_(False).eval()


def warm_up(net: FusionNet, data: list[PairData], cfg: TrapanConfig, gen: torch.Generator) -> list[float]:
    """Stage 1b: ``cfg.warmup_steps`` supervised RR steps (random pair, random crops); returns the per-step losses."""
    if cfg.warmup_steps == 0:
        return []
    opt = torch.optim.Adam(net.parameters(), lr=cfg.warmup_lr)
    losses = []
    for _ in range(cfg.warmup_steps):
        d = data[int(torch.randint(len(data), (1,), generator=gen))]
        pan, base, target, valid = rr_crops(d, cfg.warmup_crop_px, cfg.batch, gen)
        loss = masked_norm(net(pan, base) - target, valid, cfg.loss_norm)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def fit_prior(pairs: Sequence[tuple[Any, Any]], sensor: str | Sensor, config: TrapanConfig | None = None,
              seed: int = 0, nodata: float | None = None, *, interp_mode: str = TILE_MODE,
              runtime: Runtime | None = None) -> Prior:
    """Stage 1 on one or more pairs of the same sensor and ratio.

    Parameters
    ----------
    pairs : sequence of (pan (H, W) DN, ms (B, h, w) DN), H = ratio·h; e.g. a sample of a scene's tiles.
    sensor : sensor name or `Sensor` (MTF gains; its bit depth bounds the normalisation constant, `full_scale`).
    config : `TrapanConfig` (default: ``TrapanConfig.default()``).
    seed : seeds every random draw (initial weights, pixel subset, crops): same seed, same prior.
    nodata : DN marking missing pixels in PAN or MS (never used by a loss), or None.
    interp_mode : boundary of the 23-tap interpolation: "reflect" for tiles, "wrap" for a whole image (toolbox).
    runtime : device, threads and precision (`Runtime`; default: CUDA when present).

    Returns
    -------
    Prior
    """
    cfg = TrapanConfig.default() if config is None else config
    sen = get_sensor(sensor)
    if isinstance(pairs, tuple) and len(pairs) == 2 and np.ndim(pairs[0]) == 2:
        raise InputError("pairs: expected a sequence of (pan, ms) pairs, found a single pair; wrap it in a list")
    if len(pairs) == 0:
        raise InputError("pairs: expected at least one (pan, ms) pair, found none")
    checked = []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise InputError(f"pairs[{i}]: expected a (pan, ms) pair, found {len(pair)} items")
        p, m, r = check_pair(*pair)
        sen.check_bands(m.shape[0], f"pairs[{i}] ms")
        checked.append((p, m, r))
    ratios, bands = {c[2] for c in checked}, {c[1].shape[0] for c in checked}
    if len(ratios) > 1 or len(bands) > 1:
        raise InputError(f"pairs: every pair must have the same ratio and band count, found ratios {sorted(ratios)} "
                         f"and band counts {sorted(bands)}")
    ratio, nb = ratios.pop(), bands.pop()
    norm = full_scale(pairs, sen.max_dn, nodata)  # from the raw pairs: check_pair made every dtype float64
    rt = Runtime() if runtime is None else runtime
    with torch_threads(rt.threads):
        device = resolve_device(rt.device)
        data = [prepare_pair(p, m, sen, ratio, cfg.base, nodata, device, interp_mode, cfg.clip, cfg.holdout,
                             norm) for p, m, _ in checked]
        data = [d for d in data if d.valid_ms.sum() > 0]
        if not data:
            raise InputError(f"pairs: no valid pixel in any pair (nodata={nodata}); cannot fit a prior")
        gen = torch.Generator().manual_seed(int(seed))
        dam = _fit_dam(data, nb, cfg, gen, device)
        net = FusionNet(nb, cfg.width, cfg.depth, cfg.last_init_scale, generator=gen).to(device)
        warm_up(net, data, cfg, gen)
        if cfg.prior_steps:
            refiners = [Refiner(net, dam, cfg, d, sen, device, gen, rt.amp) for d in data]
            train_jointly(refiners, cfg.prior_steps, cfg, gen)
    return Prior(
        dam_state={k: v.detach().cpu() for k, v in dam.state_dict().items()},
        net_state={k: v.detach().cpu() for k, v in net.state_dict().items()},
        norm=norm, sensor=sen.name, ratio=ratio, bands=nb, config=cfg,
    )
