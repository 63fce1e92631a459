"""Pipeline overhead, scaling and memory on CPU, side by side in one run; writes the "pipeline" section of RESULTS.md.

1. Overhead: `trapan_cloud.run` (TRA-PAN, one 1-thread worker) against the same work done in one process
   (`fit_prior` on the same sample tiles + `refine_tile` on every tile's ext window, torch on 1 thread). Goal <= 1.10.
2. Speed-up: the same run on 2 workers vs 1. Goal >= 1.8 on 2 cores.
3. Memory: peak RSS of the worker processes (sampled every 0.1 s) for a scene of 1x and 4x the area (the real
   SpaceNet-6 tile mirrored 2 x 2), classical EXP so that only the pipeline's own footprint is measured.
   Goal: peak(4x) / peak(1x) <= 1.15.

Run: ``.venv/bin/python bench/pipeline.py [--preset default|fast] [--steps N] [--repeats R]`` (``--steps`` overrides
the preset's Stage-2 step count: the whole bench takes about 60 min at the default's 200 steps on 2 cores, about 20 at
40). ``--repeats`` runs the in-process / 1-worker / 2-worker trio R times in turn and reports each ratio per repeat and
their median: a shared machine's speed drifts by 10-20 % over minutes, which one trio cannot tell from the pipeline's.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402
from trapan_cloud.cluster import get_client  # noqa: E402
from trapan_cloud.method import fit_prior, refine_tile  # noqa: E402
from trapan_cloud.method.config import PRESETS, TrapanConfig  # noqa: E402
from trapan_cloud.runner import run, tile_seed  # noqa: E402
from trapan_cloud.runner.prior import prior_sample  # noqa: E402
from trapan_cloud.samples import load_sample, write_sample_item  # noqa: E402
from trapan_cloud.scene import open_scene  # noqa: E402
from trapan_cloud.tiling import plan_tiles  # noqa: E402

# 152-px cores cut the 600-px scene into 4 x 4 = 16 tiles (cores 152, 152, 152, 144; with their halos the tasks are
# 192-248 px a side, so interior tiles cost about 1.5x the corner ones). With 256-px cores it is 9 tiles, and 9 tasks
# on 2 workers cannot finish in less than 5 task-times: a speed-up ceiling of 9 / 5 = 1.8 before any overhead. 16
# tasks lift that ceiling towards 2, which is what a real scene (hundreds of tiles) sees; 152 is a multiple of the
# ratio and >= 2 x the 48-px halo, as `plan_tiles` requires.
TILE, HALO, PRIOR_TILES = 152, 48, 2


def in_process(pan: np.ndarray, ms: np.ndarray, cfg: TrapanConfig, seed: int) -> float:
    """Seconds for Stage 1 + every tile's Stage 2 in this process, torch on one thread (a 1-thread worker's share)."""
    import torch

    torch.set_num_threads(1)
    plan = plan_tiles(pan.shape, 4, TILE, HALO)
    counts = np.array([t.core_shape[0] * t.core_shape[1] // 16 for t in plan.tiles]).reshape(plan.n_rows, plan.n_cols)
    sample = prior_sample(plan, counts, PRIOR_TILES)
    t0 = time.perf_counter()
    pairs = [(pan[t.ext_slices], ms[(slice(None),) + t.ms_ext_slices]) for t in sample]
    prior = fit_prior(pairs, "WV2", cfg, seed=seed, nodata=0)
    for t in plan.tiles:
        refine_tile(prior, pan[t.ext_slices], ms[(slice(None),) + t.ms_ext_slices], seed=tile_seed(seed, t.index),
                    nodata=0, config=cfg)
    return time.perf_counter() - t0


def idle_share(task_stream: list[dict]) -> float:
    """Share of the tile phase (first tile start to last tile end, summed over workers) in which a worker ran no tile:
    the tail and the gaps between tiles that keep 2 workers from a speed-up of 2 even on free cores."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for d in task_stream:
        if str(d["key"]).startswith("trapan-tile-"):
            for ss in d["startstops"]:
                if ss["action"] == "compute":
                    spans.setdefault(d["worker"], []).append((ss["start"], ss["stop"]))
    if not spans:
        return float("nan")
    t0 = min(a for v in spans.values() for a, _ in v)
    t1 = max(b for v in spans.values() for _, b in v)
    busy = sum(b - a for v in spans.values() for a, b in v)
    return 1.0 - busy / (len(spans) * (t1 - t0))


def timed_run(scene, n_workers: int, tmp: str, name: str, **kw) -> tuple[float, float, dict]:
    """(wall seconds, peak worker RSS in MiB, seconds per phase + the workers' idle share) of one pipeline run on a
    fresh embedded cluster."""
    from distributed import get_task_stream

    client, _ = get_client(n_workers=n_workers)
    try:
        pids = list(client.run(os.getpid).values())
        peak, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss = 0
                for pid in pids:
                    try:
                        rss = max(rss, psutil.Process(pid).memory_info().rss)
                    except psutil.NoSuchProcess:
                        pass
                peak[0] = max(peak[0], rss)
                time.sleep(0.1)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        with get_task_stream(client) as ts:
            res = run(scene, os.path.join(tmp, name), client=client, tile=TILE, overlap=HALO, **kw)
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        assert res.complete, res.summary()
    finally:
        client.close()
    return wall, peak[0] / 2**20, {**res.seconds, "idle": idle_share(ts.data)}


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", choices=PRESETS)
    parser.add_argument("--steps", type=int, default=None, help="Stage-2 steps (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=1, help="in-process / 1-worker / 2-worker trios, in turn")
    args = parser.parse_args()
    s = load_sample("sn6-1")
    pan, ms = s.pan, s.ms
    cfg = getattr(TrapanConfig, args.preset)()
    if args.steps is not None:
        cfg = replace(cfg, rao_steps=args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        # real COGs + STAC items, opened lazily: workers read only their windows (as in production)
        scene = open_scene(write_sample_item(s, os.path.join(tmp, "x1")), chunks=256)
        big = open_scene(write_sample_item(replace(s, name="sn6-1-2x2", pan=np.tile(pan, (2, 2)),
                                                   ms=np.tile(ms, (1, 2, 2))), os.path.join(tmp, "x4")), chunks=256)
        pan, ms = np.asarray(scene["pan"].values), np.asarray(scene["ms"].values)
        trios = []
        for r in range(args.repeats):
            t_proc = in_process(pan, ms, cfg, seed=0)
            t1, _, ph1 = timed_run(scene, 1, tmp, f"one{r}.zarr", config=cfg, prior_tiles=PRIOR_TILES)
            t2, _, ph2 = timed_run(scene, 2, tmp, f"two{r}.zarr", config=cfg, prior_tiles=PRIOR_TILES)
            trios.append((t_proc, t1, t2))
            print(f"repeat {r}: in-process {t_proc:.1f} s, 1 worker {t1:.1f} s, 2 workers {t2:.1f} s", flush=True)
        _, m1, _ = timed_run(scene, 1, tmp, "m1.zarr", method="exp")
        _, m4, _ = timed_run(big, 1, tmp, "m4.zarr", method="exp")
    t_proc, t1, t2 = (statistics.median(x) for x in zip(*trios))
    overhead = statistics.median(b / a for a, b, _ in trios)
    speedup = statistics.median(b / c for _, b, c in trios)

    def each(values: list[float], fmt: str = ".2f") -> str:
        return "" if len(values) < 2 else " (" + ", ".join(f"{v:{fmt}}" for v in values) + ")"

    runs_proc, runs_1 = each([a for a, _, _ in trios], ".1f"), each([b for _, b, _ in trios], ".1f")
    runs_2, runs_o = each([c for _, _, c in trios], ".1f"), each([b / a for a, b, _ in trios])
    runs_s = each([b / c for _, b, c in trios])

    phases = "; ".join(f"{k} {ph1.get(k, 0):.1f} vs {ph2.get(k, 0):.1f}" for k in ("scan", "prior", "tiles", "finalize"))
    n_tiles = len(plan_tiles(pan.shape, 4, TILE, HALO).tiles)
    body = (
        f"{len(trios)} repeat(s) of the in-process / 1-worker / 2-worker trio, in turn; each ratio is taken within a "
        "repeat, the table gives the medians (each repeat in brackets).\n\n"
        f"Scene: SpaceNet-6 WV2 tile sn6-1, PAN {pan.shape[0]}x{pan.shape[1]}, MS 4x{ms.shape[1]}x{ms.shape[2]}; "
        f"tile {TILE} px, halo {HALO} px ({n_tiles} tiles); TRA-PAN `TrapanConfig.{args.preset}()` with "
        f"{cfg.rao_steps} Stage-2 steps, prior on "
        f"{PRIOR_TILES} tiles. Each run starts its own embedded cluster (start-up not timed).\n\n"
        "| measure | value | goal |\n|---|---|---|\n"
        f"| in-process Stage 1 + Stage 2 on all tiles (1 torch thread) | {t_proc:.1f} s{runs_proc} | |\n"
        f"| pipeline, 1 worker x 1 thread (wall, incl. scan, prior, store, blend) | {t1:.1f} s{runs_1} | |\n"
        f"| overhead ratio (pipeline 1 worker / in-process) | {overhead:.2f}{runs_o} | <= 1.10 |\n"
        f"| pipeline, 2 workers x 1 thread | {t2:.1f} s{runs_2} | |\n"
        f"| speed-up 2 workers vs 1 | {speedup:.2f}{runs_s} | >= 1.8 |\n"
        f"| seconds per phase, 1 worker vs 2 workers (last repeat) | {phases} | |\n"
        "| workers' idle share of the tile phase, 2 workers (tail + gaps between tiles; last repeat) | "
        f"{ph2['idle']:.1%} | |\n"
        f"| peak worker RSS, EXP, 1x area ({pan.shape[0]}^2 PAN) | {m1:.0f} MiB | |\n"
        f"| peak worker RSS, EXP, 4x area ({2 * pan.shape[0]}^2 PAN) | {m4:.0f} MiB | |\n"
        f"| memory ratio 4x / 1x | {m4 / m1:.2f} | <= 1.15 |\n\n"
        f"The tile size ({TILE} px) gives {n_tiles} tasks (192-248 px a side with their halos), so 2 workers can come "
        "near a speed-up of 2 (with 256-px cores this scene has 9 tiles, and 9 tasks on 2 workers cap it at 9 / 5 = "
        "1.8). Tiles go out largest first and one per worker thread, only when a thread frees up, so the small corner "
        "tiles fill the end; what is left of the tail is in the idle share. `bench/cores.py` measures the machine's own "
        "ceiling for two single-thread processes. The Stage-1 prior is one task (serial), so it still bounds the "
        "speed-up of small scenes (Amdahl)."
    )
    print(body)
    steps = f" --steps {args.steps}" if args.steps is not None else ""
    repeats = f" --repeats {args.repeats}" if args.repeats != 1 else ""
    write_section("pipeline", f".venv/bin/python bench/pipeline.py --preset {args.preset}{steps}{repeats}", body)


if __name__ == "__main__":
    main()
