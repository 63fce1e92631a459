"""Stage 2 of TRA-PAN: Random Alternation Optimisation (RAO) of the fusion network on one tile (TRAPAN.md §4.4).

Each step draws the reduced-resolution supervised branch with probability ``rao_p`` (moving linearly to
``rao_p_end`` when set), else the full-resolution unsupervised branch (spectral: MTF-degraded, decimated fused vs MS;
spatial: DAM(fused) vs PAN; optionally the index-shaped block-UQI terms of `losses`). Steps train on batches of
random crops of the tile (``crop_px``), so a step costs the same whatever the tile size; the whole tile is inferred
only at the evaluation points of the HQNR / FR-loss selections, and otherwise once, at the end (``"last"``, the
default, and ``"holdout"``, which scores checkpoints on the held-out strip of the reduced-resolution pair).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .. import metrics, physics
from ..errors import InputError
from ..sensors import Sensor, get_sensor
from ..validate import check_pair, validity
from .config import Runtime, TrapanConfig
from .losses import block_mask, dlambda_proxy, ds_proxy, masked_norm
from .networks import DAM, FusionNet
from .pairs import (Q_BLOCK, TILE_MODE, PairData, evaluation_window, indices, prepare_pair, resolve_device, rr_crops,
                    torch_threads)
from .prior import Prior

CROP_MARGIN_PX = 8
"""PAN pixels at each crop edge left out of the spectral term: there the crop's replicate padding, not the tile,
feeds the MTF filter and the network's receptive field."""


@dataclass(frozen=True)
class TileResult:
    """Output of `refine_tile`."""

    fused: np.ndarray
    """(B, H, W) float32 DN; nodata (0) where the input was invalid."""
    trace: dict[str, Any] = field(repr=False)
    """Per-step losses and branches, seconds, steps run, stop reason, evaluations ``(step, score)``, selected step
    (-1 = the base image unchanged, 0 = the prior's network), base used, and optionally initial/final indices."""


class _FRBatch:
    """Aligned full-resolution crops of one tile (or the whole tile) with everything the FR loss needs."""

    def __init__(self, d: PairData, ys: list[int], xs: list[int], size: tuple[int, int], margin: bool) -> None:
        r = d.ratio
        sy, sx = size

        def cut(t: torch.Tensor, s: int = 1) -> torch.Tensor:
            return torch.cat([t[..., y // s : (y + sy) // s, x // s : (x + sx) // s] for y, x in zip(ys, xs)])

        self.pan, self.base, self.lms, self.valid_pan = cut(d.pan), cut(d.base), cut(d.lms), cut(d.valid_pan)
        self.ms, self.valid_ms = cut(d.ms, r), cut(d.valid_ms, r).clone()
        if margin:
            m = math.ceil(CROP_MARGIN_PX / r)
            inner = torch.zeros_like(self.valid_ms)
            inner[..., m:-m, m:-m] = 1
            self.valid_ms *= inner
        aligned = all(y % Q_BLOCK == 0 and x % Q_BLOCK == 0 for y, x in zip(ys, xs))
        self.q_low = cut(d.q_low, Q_BLOCK) if aligned and d.q_low.numel() else None
        if self.q_low is not None:
            self.q_mask = block_mask(self.valid_pan, Q_BLOCK)[..., : self.q_low.shape[-2], : self.q_low.shape[-1]]


class Refiner:
    """The state of one tile's Stage 2: data, networks, kernels, loss functions."""

    def __init__(self, net: FusionNet, dam: DAM, cfg: TrapanConfig, data: PairData, sensor: Sensor,
                 device: torch.device, gen: torch.Generator, amp: bool = False) -> None:
        self.cfg, self.d, self.gen, self.r = cfg, data, gen, data.ratio
        self.net, self.dam = net, dam
        nb = data.ms.shape[1]
        self.k_ms = torch.as_tensor(physics.mtf_kernels(sensor, nb, self.r), dtype=torch.float32, device=device)
        self.amp = amp and device.type == "cuda"

    def forward(self, pan: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            out = self.net(pan, base)
        return out.float()

    def rr_loss(self) -> torch.Tensor:
        c = self.cfg
        pan, base, target, valid = rr_crops(self.d, c.warmup_crop_px, c.batch, self.gen)
        return masked_norm(self.forward(pan, base) - target, valid, c.loss_norm)

    def fr_batch(self) -> _FRBatch:
        c, (H, W) = self.cfg, self.d.pan.shape[-2:]
        if c.crop_px <= 0 or (c.crop_px >= H and c.crop_px >= W):
            return _FRBatch(self.d, [0], [0], (H, W), margin=False)
        align = Q_BLOCK if c.crop_px % Q_BLOCK == 0 and Q_BLOCK % self.r == 0 else self.r
        sy, sx = min(c.crop_px, H // align * align), min(c.crop_px, W // align * align)
        ys = (torch.randint(0, (H - sy) // align + 1, (c.batch,), generator=self.gen) * align).tolist()
        xs = (torch.randint(0, (W - sx) // align + 1, (c.batch,), generator=self.gen) * align).tolist()
        return _FRBatch(self.d, ys, xs, (sy, sx), margin=True)

    def fr_loss(self, b: _FRBatch, fused: torch.Tensor | None = None) -> torch.Tensor:
        """Full-resolution loss of the network on batch ``b`` (or of a given normalised ``fused`` image)."""
        c = self.cfg
        if fused is None:
            fused = self.forward(b.pan, b.base)
        lowpass = physics.mtf_filter_torch(fused, self.k_ms, "replicate")
        spe = masked_norm(physics.decimate_torch(lowpass, self.r) - b.ms, b.valid_ms, c.loss_norm)
        spa = masked_norm(self.dam(fused) - b.pan, b.valid_pan, c.loss_norm)
        loss = c.lambda_spe * spe + c.lambda_spa * spa
        if (c.lambda_dl > 0 or c.lambda_ds > 0) and b.q_low is not None and b.q_mask.sum() > 0:
            hb, wb = b.q_low.shape[-2] * Q_BLOCK, b.q_low.shape[-1] * Q_BLOCK
            if c.lambda_dl > 0:
                loss = loss + c.lambda_dl * dlambda_proxy(lowpass[..., :hb, :wb], b.lms[..., :hb, :wb], b.q_mask,
                                                          Q_BLOCK)
            if c.lambda_ds > 0:
                loss = loss + c.lambda_ds * ds_proxy(fused[..., :hb, :wb], b.pan[..., :hb, :wb], b.q_low, b.q_mask,
                                                     Q_BLOCK)
        return loss

    @torch.no_grad()
    def holdout_loss(self, plain: bool = False) -> float:
        """Reduced-resolution error on the held-out strip (never trained on); ``plain``: of the base image itself."""
        d, rows = self.d, self.d.rr_train_rows
        pred = d.base_rr if plain else self.forward(d.pan_rr, d.base_rr)
        return masked_norm(pred[..., rows:, :] - d.ms_rr_target[..., rows:, :], d.valid_rr[..., rows:, :],
                           self.cfg.loss_norm).item()

    def step_loss(self, branch: str) -> torch.Tensor:
        """The loss of one Stage-2 step of ``branch`` ("rr", "fr" or "sum")."""
        if branch == "rr":
            return self.rr_loss()
        if branch == "fr":
            return self.fr_loss(self.fr_batch())
        return self.rr_loss() + self.fr_loss(self.fr_batch())

    @torch.no_grad()
    def infer(self) -> torch.Tensor:
        """The whole tile, normalised ``(1, B, H, W)``."""
        return self.forward(self.d.pan, self.d.base)


def _branches(cfg: TrapanConfig, gen: torch.Generator) -> list[str]:
    """The branch of every step: "rr", "fr" (RAO: Bernoulli(p) draws; sequential: RR first) or "sum"."""
    T = cfg.rao_steps
    if cfg.schedule == "sum":
        return ["sum"] * T
    if cfg.schedule == "sequential":
        n_rr = round(cfg.rao_p * T)
        return ["rr"] * n_rr + ["fr"] * (T - n_rr)
    draws = torch.rand(T, generator=gen).tolist()
    end = cfg.rao_p if cfg.rao_p_end < 0 else cfg.rao_p_end
    probs = [cfg.rao_p + (end - cfg.rao_p) * t / max(T - 1, 1) for t in range(T)]
    return ["rr" if u < p else "fr" for u, p in zip(draws, probs)]


def train_jointly(refiners: list[Refiner], steps: int, cfg: TrapanConfig, gen: torch.Generator) -> list[float]:
    """``steps`` Stage-2 steps of one network shared by ``refiners`` (a random pair each step): the amortised
    Stage 2 that `fit_prior` runs on a scene's sample pairs (``prior_steps``). Returns the losses."""
    net = refiners[0].net
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    losses = []
    for branch in _branches(replace(cfg, rao_steps=steps), gen):
        ref = refiners[int(torch.randint(len(refiners), (1,), generator=gen))]
        loss = ref.step_loss(branch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def refine_tile(prior: Prior, pan: Any, ms: Any, seed: int = 0, nodata: float | None = None,
                config: TrapanConfig | None = None, *, interp_mode: str = TILE_MODE,
                runtime: Runtime | None = None) -> TileResult:
    """Stage 2 on one tile, starting from the prior's weights.

    Parameters
    ----------
    prior : `Prior` from `fit_prior` (same sensor, ratio and band count as the tile).
    pan : (H, W) DN; ms : (B, h, w) DN with H = ratio·h (the tile with its halo).
    seed : seeds every random draw (crops, branches): same seed → bit-identical output on the same device.
    nodata : DN marking missing pixels (PAN == nodata or any MS band == nodata), or None.
    config : overrides ``prior.config`` for Stage 2 (the network shape must match the prior's).
    interp_mode : boundary of the 23-tap interpolation: "reflect" (tile-safe, default) or "wrap" (a whole image scored
        with the toolbox indices, which interpolate with wrap-around).
    runtime : device, threads, precision and index tracing (`Runtime`); never changes what is computed on one device.

    Returns
    -------
    TileResult
        ``fused`` (B, H, W) float32 DN (0 where invalid) and ``trace``.
    """
    cfg = prior.config if config is None else config
    if (cfg.width, cfg.depth, cfg.dam_hidden) != (prior.config.width, prior.config.depth, prior.config.dam_hidden):
        raise InputError("config: width/depth/dam_hidden differ from the prior's "
                         f"({prior.config.width}/{prior.config.depth}/{prior.config.dam_hidden}); refit the prior")
    sen = get_sensor(prior.sensor)
    p, m, r = check_pair(pan, ms, prior.ratio)
    if m.shape[0] != prior.bands:
        raise InputError(f"ms: the prior was fitted on {prior.bands} bands, found {m.shape[0]}")
    t0 = time.perf_counter()
    trace: dict[str, Any] = {"loss": [], "branch": [], "evals": [], "steps_run": 0, "selected_step": None,
                             "selection": cfg.selection, "base": cfg.base}
    valid_pan, _ = validity(p, m, r, nodata)
    if not valid_pan.any():
        trace.update(stop_reason="all_invalid", seconds=time.perf_counter() - t0)
        return TileResult(np.zeros((m.shape[0],) + p.shape, np.float32), trace)
    rt = Runtime() if runtime is None else runtime
    with torch_threads(rt.threads):
        device = resolve_device(rt.device)
        data = prepare_pair(p, m, sen, r, cfg.base, nodata, device, interp_mode, cfg.clip, cfg.holdout, prior.norm)
        gen = torch.Generator().manual_seed(int(seed))
        ref = Refiner(prior.fusion_net().to(device), prior.dam().to(device), cfg, data, sen, device, gen, rt.amp)
        trace["base"] = data.base_name
        window = evaluation_window(p.shape, r)
        use_hqnr = cfg.selection == "hqnr" and data.all_valid and min(window) > 0
        if cfg.selection == "hqnr" and not use_hqnr:
            trace["selection"] = "fr_loss (HQNR needs a fully valid tile of at least 32 px)"
        hi = float(prior.norm)

        def to_dn(x: torch.Tensor) -> np.ndarray:
            out = x[0].detach().cpu().numpy().astype(np.float64) * hi
            return np.clip(out, 0.0, hi) if cfg.clip else out

        def score(fused_dn: np.ndarray) -> float:
            """Higher is better: HQNR, or minus the whole-tile FR loss."""
            if use_hqnr:
                return indices(fused_dn, p, m, sen, r, hi)["hqnr"]
            whole = _FRBatch(data, [0], [0], tuple(p.shape), margin=False)
            fused = torch.from_numpy((fused_dn / hi).astype(np.float32))[None].to(device)
            with torch.no_grad():
                return -ref.fr_loss(whole, fused).item()

        holdout = cfg.selection == "holdout" and data.holdout_rows() > 0
        if cfg.selection == "holdout" and not holdout:
            trace["selection"] = "last (the tile's reduced-resolution pair is too small to hold rows out)"
        selecting = cfg.selection in ("hqnr", "fr_loss") or holdout

        def candidate() -> tuple[float, Any]:
            """Score (higher is better) of the network now, and what to keep if it is the best so far: the
            state dict (holdout: scored at reduced resolution, inferred once at the end) or the tile in DN."""
            if holdout:
                return -ref.holdout_loss(), {k: v.detach().clone() for k, v in ref.net.state_dict().items()}
            out = to_dn(ref.infer())
            return score(out), out

        # without selection the prior's network is the output only when there are no steps to run
        best_score, best_out, best_step = None, None if selecting or cfg.rao_steps else to_dn(ref.infer()), 0
        if selecting:
            best_score, best_out = candidate()
        trace["evals"].append((0, best_score))
        if selecting:
            # The base image itself (the network with a zero residual) is a candidate too, step -1: the warm-up
            # may move the prior away from a base that is already better.
            plain = to_dn(data.base)
            s_plain = -ref.holdout_loss(plain=True) if holdout else score(plain)
            trace["evals"].insert(0, (-1, s_plain))
            if s_plain > best_score:
                best_score, best_out, best_step = s_plain, plain, -1
        if rt.trace_indices and data.all_valid and min(window) > 0:
            trace["initial"] = indices(to_dn(ref.infer()), p, m, sen, r, hi)
        opt = torch.optim.Adam(ref.net.parameters(), lr=cfg.lr)
        branches = _branches(cfg, gen)
        stale, stop_reason, step = 0, "max_steps", 0
        for step, branch in enumerate(branches, start=1):
            loss = ref.step_loss(branch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            trace["loss"].append(loss.item())
            trace["branch"].append(branch)
            final = step == len(branches)
            if not selecting:
                if final:  # nothing to select or stop on: one whole-tile inference, at the end
                    best_out, best_step = to_dn(ref.infer()), step
                    trace["evals"].append((step, None))
                continue
            if step % cfg.eval_every and not final:
                continue
            s, kept = candidate()
            trace["evals"].append((step, s))
            improved = s > best_score + cfg.min_rel_improvement * abs(best_score)
            if s > best_score:
                best_score, best_out, best_step = s, kept, step
            stale = 0 if improved else stale + 1
            if cfg.patience and stale >= cfg.patience:
                stop_reason = "plateau"
                break
        if isinstance(best_out, dict):  # a held-out-selected network: infer the whole tile once
            ref.net.load_state_dict(best_out)
            best_out = to_dn(ref.infer())
        trace.update(steps_run=step, stop_reason=stop_reason, selected_step=best_step,
                     seconds=time.perf_counter() - t0, device=str(device))
        if rt.trace_indices and data.all_valid and min(window) > 0:
            trace["final"] = indices(best_out, p, m, sen, r, hi)
    fused = best_out.astype(np.float32)
    fused[:, ~valid_pan] = 0.0
    return TileResult(fused, trace)
