"""Tiled TRA-PAN against the whole-image run, and the amortised prior against per-tile refinement, on the bundled
scenes, several seeds → bench/RESULTS.md "tiling".

    .venv/bin/python bench/tiling.py [--scenes sn6-1,l8-momotombo] [--seeds 0,1,2] [--tile 512]

For each scene and seed, three fusions of the original scene (full resolution: toolbox HQNR and the reprojected
R-Q2n on the largest window whose sides are multiples of 32 and of the ratio, values rounded to the store's uint16
DN) and of its Wald-degraded version (reduced resolution: Q2n against the original MS):

Scenes (`scene_sample`): 576² PAN windows of the SpaceNet 6 WorldView-2 tiles and a 640² window of the Landsat 8
scene.

* whole image: Stage 1 and Stage 2 on the whole scene in one process (with the tiles' boundary handling);
* tiled: the scene cut by `tiling.plan_tiles` at ``--tile`` (the degraded scene at ``--tile / ratio``, the same
  ground layout), the prior fitted on the run's prior sample, each tile refined with its run seed and blended with
  `tiling.blend_weights` — the composition `tc.run` performs, here in one process so that every Stage-2 FLOP can be
  counted (`torch.utils.flop_counter.FlopCounterMode`);
* tiled with the amortised prior: the same, with ``prior_steps`` of joint Stage 2 on the prior's sample before it is
  shipped and fewer steps per tile (`AMORTISED`).

Stage-2 GFLOP counts every Stage-2 step of every tile and the prior's joint steps, per output megapixel.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402
from _trials import fmt, stats  # noqa: E402

AMORTISED = {"prior_steps": 240, "rao_steps": 80}
"""The amortised run's overrides of the preset: joint Stage-2 steps on the prior sample, then steps per tile."""


def tiled(pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int, cfg: Any, tile_px: int, seed: int,
          nodata: float | None, prior_tiles: int = 4) -> tuple[np.ndarray, float]:
    """The tiled fusion (float64 DN) and its Stage-2 GFLOP (the prior's joint steps included)."""
    from torch.utils.flop_counter import FlopCounterMode

    from trapan_cloud.method import fit_prior, refine_tile
    from trapan_cloud.runner.prior import prior_sample
    from trapan_cloud.runner.worker import tile_seed
    from trapan_cloud.tiling import blend_weights, plan_tiles

    plan = plan_tiles(pan.shape, ratio, tile_px)
    valid_ms = (ms != nodata).all(axis=0) if nodata is not None else np.ones(ms.shape[1:], bool)
    counts = np.array([valid_ms[t.ms_core[0]:t.ms_core[1], t.ms_core[2]:t.ms_core[3]].sum() for t in plan.tiles])
    windows = [(pan[t.ext_slices], ms[(slice(None),) + t.ms_ext_slices]) for t in plan.tiles]
    sample = prior_sample(plan, counts.reshape(plan.n_rows, plan.n_cols), prior_tiles)
    pairs = [windows[t.index] for t in sample]
    with FlopCounterMode(display=False) as joint:
        prior = fit_prior(pairs, sensor, cfg, seed=seed, nodata=nodata)
    gflop = 0.0
    if cfg.prior_steps:  # the joint Stage-2 steps: the amortised prior's FLOPs beyond those of the plain prior
        with FlopCounterMode(display=False) as plain:
            fit_prior(pairs, sensor, replace(cfg, prior_steps=0), seed=seed, nodata=nodata)
        gflop += (joint.get_total_flops() - plain.get_total_flops()) / 1e9
    out = np.zeros((ms.shape[0],) + pan.shape)
    for t in plan.tiles:
        with FlopCounterMode(display=False) as fc:
            res = refine_tile(prior, *windows[t.index], seed=tile_seed(seed, t.index), nodata=nodata, config=cfg)
        gflop += fc.get_total_flops() / 1e9
        out[(slice(None),) + t.ext_slices] += blend_weights(t, plan) * res.fused
    return out, gflop


def scene_sample(name: str):
    """The largest top-left window of a bundled scene whose reduced-resolution version still has sides that are
    multiples of the ratio (the tiler needs them): 576² PAN of a SpaceNet 6 tile, 640² of the Landsat 8 scene."""
    from trapan_cloud.samples import load_sample

    s = load_sample(name)
    if name == "l8-momotombo":
        return s.crop(name, 0, 1, 320, pan_offset=(0, -1))
    return s.crop(name, 0, 0, 144)


def one(job: tuple[str, str, int, int]) -> dict[str, Any]:
    """One (scene, run kind, seed) at both resolutions → a row of indices and Stage-2 GFLOP per megapixel."""
    import torch

    from trapan_cloud import metrics
    from trapan_cloud.method import TrapanConfig, fit_prior, refine_tile
    from trapan_cloud.qa import evaluation_window

    torch.set_num_threads(1)
    scene, kind, seed, tile_px = job
    s = scene_sample(scene)
    pan, ms = s.pan.astype(np.float64), s.ms.astype(np.float64)
    cfg = TrapanConfig.default() if kind != "amortised" else replace(TrapanConfig.default(), **AMORTISED)
    hi = float(2 ** 16 - 1)

    def fuse(p: np.ndarray, m: np.ndarray, core: int) -> tuple[np.ndarray, float]:
        if kind == "whole":
            from torch.utils.flop_counter import FlopCounterMode

            prior = fit_prior([(p, m)], s.sensor, cfg, seed=seed, nodata=s.nodata)
            with FlopCounterMode(display=False) as fc:
                f = refine_tile(prior, p, m, seed=seed, nodata=s.nodata, config=cfg).fused.astype(np.float64)
            return f, fc.get_total_flops() / 1e9
        return tiled(p, m, s.sensor, s.ratio, cfg, core, seed, s.nodata)

    t0 = time.perf_counter()
    fused, gflop = fuse(pan, ms, tile_px)
    fused = np.clip(np.rint(fused), 0, hi)
    H, W = evaluation_window(pan.shape, s.ratio)
    fr = metrics.full_resolution(fused[:, :H, :W], pan[:H, :W], ms[:, : H // s.ratio, : W // s.ratio], s.sensor,
                                 ratio=s.ratio)
    rr = metrics.reduced_resolution(lambda p, m: fuse(p, m, tile_px // s.ratio)[0], pan, ms, s.sensor,
                                    ratio=s.ratio)
    return {"scene": scene, "kind": kind, "seed": seed, "HQNR": fr["HQNR"], "R-Q2n": fr.get("R-Q2n", float("nan")),
            "Q2n": rr["Q2n"], "gflop_per_mpx": gflop / (pan.size / 1e6), "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", default="sn6-1,sn6-2,sn6-3,l8-momotombo")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tile", type=int, default=512, help="core tile (`trapan run`'s default)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    command = "python bench/tiling.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    from trapan_cloud.method import TrapanConfig

    scenes, seeds = args.scenes.split(","), [int(v) for v in args.seeds.split(",")]
    kinds = ("whole", "tiled", "amortised")
    jobs = [(sc, k, sd, args.tile) for sc in scenes for sd in seeds for k in kinds]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = []
        for row in pool.map(one, jobs):
            rows.append(row)
            print(row, flush=True)
    cfg = TrapanConfig.default()
    body = [f"`TrapanConfig.default()` (Stage 2: {cfg.rao_steps} steps per tile); amortised: the same with "
            f"`{AMORTISED}`; core {args.tile} px (the reduced-resolution scene at {args.tile} / ratio); seeds "
            f"{args.seeds}; mean ± sd over the seeds. Δ columns: amortised − tiled, paired by seed.", "",
            "| scene | run | Stage-2 GFLOP/Mpx | FR HQNR | FR R-Q2n | RR Q2n | Δ HQNR | Δ Q2n | seconds |",
            "|---|---|---|---|---|---|---|---|---|"]
    for sc in scenes:
        for k in kinds:
            mine = [r for r in rows if r["scene"] == sc and r["kind"] == k]
            delta = {"HQNR": "", "Q2n": ""}
            if k == "amortised":
                ref = {r["seed"]: r for r in rows if r["scene"] == sc and r["kind"] == "tiled"}
                for key in delta:
                    d = np.array([r[key] - ref[r["seed"]][key] for r in mine])
                    delta[key] = f"{d.mean():+.4f} ± {d.std(ddof=1) if d.size > 1 else 0:.4f}"
            body.append(f"| {sc} | {k} | {stats(mine, 'gflop_per_mpx')[0]:,.0f} | {fmt(mine, 'HQNR')} | "
                        f"{fmt(mine, 'R-Q2n')} | {fmt(mine, 'Q2n')} | {delta['HQNR']} | {delta['Q2n']} | "
                        f"{stats(mine, 'seconds')[0]:.0f} |")
    write_section("tiling", command, "\n".join(body))
    print("\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
