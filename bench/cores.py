"""The machine's own parallel ceiling for Stage 2: k single-thread processes at once vs one, without Dask.

    .venv/bin/python bench/cores.py [--steps 60] [--repeats 3]

`bench/pipeline.py`'s speed-up (2 Dask workers vs 1) cannot exceed what the cores deliver to two independent
single-thread torch processes; on a virtual machine two vCPUs may share one physical core's caches or execution
units. This runs the same `refine_tile` job (one 248² tile of the bundled scene, the pipeline bench's interior tile
size, ``TrapanConfig.default()`` with ``--steps`` Stage-2 steps, torch on 1 thread) in one process, then in two
processes started together, alternating ``--repeats`` times; the ceiling is 2 x (one job alone) / (two jobs at once).
Writes the "cores" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402

SIDE = 248
"""PAN side of the job's tile: a 152-px core with its 48-px halo on both sides (bench/pipeline.py)."""


def job(prior_bytes: bytes, steps: int, barrier: Any) -> float:
    """Seconds of one Stage-2 run on one thread, started when every process of the round is ready."""
    import torch

    from trapan_cloud.method import Prior, TrapanConfig, refine_tile
    from trapan_cloud.samples import load_sample

    torch.set_num_threads(1)
    s = load_sample("sn6-1")
    pan, ms = s.pan[:SIDE, :SIDE], s.ms[:, : SIDE // 4, : SIDE // 4]
    prior = Prior.from_bytes(prior_bytes)
    cfg = dataclasses.replace(TrapanConfig.default(), rao_steps=steps)
    barrier.wait()
    t0 = time.perf_counter()
    refine_tile(prior, pan, ms, seed=0, nodata=0, config=cfg)
    return time.perf_counter() - t0


def concurrent(prior_bytes: bytes, steps: int, k: int) -> float:
    """Seconds until the last of k identical jobs, started together in k fresh processes, is done."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(k) as pool:
        barrier = manager.Barrier(k)
        return max(pool.starmap(job, [(prior_bytes, steps, barrier)] * k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    from trapan_cloud.method import TrapanConfig, fit_prior
    from trapan_cloud.samples import load_sample

    s = load_sample("sn6-1")
    prior = fit_prior([(s.pan[:SIDE, :SIDE], s.ms[:, : SIDE // 4, : SIDE // 4])], "WV2", TrapanConfig.default(),
                      seed=0, nodata=0)
    blob = prior.to_bytes()
    one, two = [], []
    for _ in range(a.repeats):
        one.append(concurrent(blob, a.steps, 1))
        two.append(concurrent(blob, a.steps, 2))
    t1, t2 = statistics.median(one), statistics.median(two)
    body = (f"One Stage-2 job: a {SIDE}² tile of sn6-1, `TrapanConfig.default()` with {a.steps} steps, torch on 1 "
            f"thread, in fresh processes; median of {a.repeats} alternating repeats.\n\n"
            "| measure | value |\n|---|---|\n"
            f"| one job alone | {t1:.1f} s (runs: {', '.join(f'{x:.1f}' for x in one)}) |\n"
            f"| two jobs at once, wall | {t2:.1f} s (runs: {', '.join(f'{x:.1f}' for x in two)}) |\n"
            f"| machine ceiling for 2 workers (2 x alone / together) | {2 * t1 / t2:.2f} |\n\n"
            "This bounds `bench/pipeline.py`'s 2-worker speed-up: no scheduler can make two processes run faster "
            "than the cores let them.")
    print(body)
    write_section("cores", "python bench/cores.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
