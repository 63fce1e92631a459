"""A user's own cluster, plain or given trapan_cloud's worker settings, on the same run; writes the "user cluster"
section of RESULTS.md.

Both clusters are ``LocalCluster(n_workers=2, threads_per_worker=1)`` on 127.0.0.1. "plain" is just that (distributed's
defaults: ``MALLOC_TRIM_THRESHOLD_=65536``, the statistical profiler, a 20-ms event-loop tick; torch on one thread per
worker through distributed's default ``OMP_NUM_THREADS=1``). "configured" is started inside
``dask.config.set(tc.worker_config())`` and given ``tc.configure_cluster(client)``, as README "Your own cluster" says.
Each run is a fresh process whose environment has no malloc variables (a nanny leaves its variables in its own
process, so two clusters in one process would not differ), the variants alternate, and each ratio is taken within a
repeat: a shared machine's speed drifts over minutes. Beside the wall time it records the CPU seconds (user + system)
the worker processes spent in the run, which another user's load on the machine changes far less than the wall
time, and the load average around each run.

The run: TRA-PAN ``TrapanConfig.default()`` with ``--steps`` Stage-2 steps on a 304x304 crop of the SpaceNet-6 tile
sn6-1 (152-px cores, 48-px halo: 2 x 2 tiles, prior on 2 tiles); cluster start-up is not timed.

Run: ``.venv/bin/python bench/user_cluster.py [--steps 40] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = ("plain", "configured")
CROP_MS, TILE, HALO, PRIOR_TILES = 76, 152, 48, 2


def worker_cpu_s() -> float:
    """User + system CPU seconds of this process so far (run on each worker)."""
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def one_run(variant: str, steps: int, out_dir: str) -> dict:
    """Child process: start the variant's cluster, time `tc.run`, return the wall and the workers' CPU seconds, the
    phases, the workers' missing settings, the load average and a hash of the fused bytes."""
    import dask
    import numpy as np
    from distributed import Client, LocalCluster

    import trapan_cloud as tc
    from trapan_cloud.cluster import check_workers
    from trapan_cloud.samples import load_sample, write_sample_item

    kwargs = {"n_workers": 2, "threads_per_worker": 1, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    if variant == "configured":
        with dask.config.set(tc.worker_config()):
            cluster = LocalCluster(**kwargs)
    else:
        cluster = LocalCluster(**kwargs)
    item = write_sample_item(load_sample("sn6-1").crop("uc", 0, 0, CROP_MS), os.path.join(out_dir, "inputs"))
    config = replace(tc.TrapanConfig.default(), rao_steps=steps)
    with cluster, Client(cluster) as client:
        if variant == "configured":
            tc.configure_cluster(client)
        missing = sorted({m for ms in check_workers(client).values() for m in ms})
        cpu0, load0 = client.run(worker_cpu_s), os.getloadavg()[0]
        t0 = time.perf_counter()
        result = tc.run(tc.open_scene(item), os.path.join(out_dir, "fused.zarr"), config=config, client=client,
                        tile=TILE, overlap=HALO, prior_tiles=PRIOR_TILES, overwrite=True)
        seconds = time.perf_counter() - t0
        cpu = sum(client.run(worker_cpu_s).values()) - sum(cpu0.values())
        load = (load0 + os.getloadavg()[0]) / 2
    fused = np.asarray(tc.open_result(os.path.join(out_dir, "fused.zarr"))["fused"].values)
    return {"variant": variant, "seconds": seconds, "cpu_s": cpu, "load": load, "phases": result.seconds,
            "missing": missing,
            "complete": result.complete, "tiles": result.tiles_total,
            "sha256": hashlib.sha256(fused.tobytes()).hexdigest()}


def spawn(variant: str, steps: int) -> dict:
    """`one_run` in a fresh process without malloc variables in its environment."""
    from trapan_cloud.cluster import MALLOC_ENV

    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    with tempfile.TemporaryDirectory(prefix="trapan-bench-uc-") as tmp:
        proc = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(steps), "--dir", tmp],
                              env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} run failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40, help="Stage-2 steps per tile (default's rao_steps replaced)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_run(args.child, args.steps, args.dir)))
        return
    runs: list[dict[str, dict]] = []
    for r in range(args.repeats):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]  # alternate which variant goes first
        runs.append({v: spawn(v, args.steps) for v in order})
        print(f"repeat {r + 1}: " + ", ".join(f"{v} {runs[-1][v]['seconds']:.1f} s wall, {runs[-1][v]['cpu_s']:.1f} s "
                                              f"CPU, load {runs[-1][v]['load']:.1f}" for v in VARIANTS), file=sys.stderr)

    def measure(key: str) -> tuple[dict[str, float], dict[str, str], list[float]]:
        med = {v: statistics.median(rep[v][key] for rep in runs) for v in VARIANTS}
        each = {v: ", ".join(f"{rep[v][key]:.1f}" for rep in runs) for v in VARIANTS}
        return med, each, [rep["plain"][key] / rep["configured"][key] for rep in runs]

    med, each, ratios = measure("seconds")
    cpu_med, cpu_each, cpu_ratios = measure("cpu_s")
    _, load_each, _ = measure("load")
    last = runs[-1]
    same = all(rep["plain"]["sha256"] == rep["configured"]["sha256"] for rep in runs)
    phases = "; ".join(f"{k} {last['plain']['phases'][k]:.1f} vs {last['configured']['phases'][k]:.1f}"
                       for k in ("scan", "prior", "tiles", "finalize"))
    body = f"""{args.repeats} repeat(s), the two variants in turn (alternating which goes first), each in a fresh process;
each ratio is taken within a repeat, the table gives the medians (each repeat in brackets).

Run: TRA-PAN `TrapanConfig.default()` with {args.steps} Stage-2 steps, a {CROP_MS * 4}x{CROP_MS * 4} PAN crop of
SpaceNet-6 sn6-1 (WV2), tile {TILE} px, halo {HALO} px ({last['plain']['tiles']} tiles), prior on {PRIOR_TILES} tiles;
`LocalCluster(n_workers=2, threads_per_worker=1)` on 127.0.0.1; cluster start-up not timed.

| measure | plain `LocalCluster` | with `tc.worker_config()` + `tc.configure_cluster()` |
|---|---|---|
| settings the workers lack (`check_workers`) | {'; '.join(last['plain']['missing']) or 'none'} | {'; '.join(last['configured']['missing']) or 'none'} |
| `tc.run` wall seconds | {med['plain']:.1f} ({each['plain']}) | {med['configured']:.1f} ({each['configured']}) |
| workers' CPU seconds (user + system) in the run | {cpu_med['plain']:.1f} ({cpu_each['plain']}) | {cpu_med['configured']:.1f} ({cpu_each['configured']}) |
| machine load average during the run ({os.cpu_count()} cores) | {load_each['plain']} | {load_each['configured']} |
| seconds per phase, plain vs configured (last repeat) | {phases} | |
| ratio plain / configured, wall | {statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)}) | |
| ratio plain / configured, workers' CPU | {statistics.median(cpu_ratios):.2f} ({', '.join(f'{x:.2f}' for x in cpu_ratios)}) | |
| same fused bytes | {'yes' if same else 'NO'} | |

With other processes loading the machine (a load average above {os.cpu_count()} on {os.cpu_count()} cores means they do), the wall
time measures their load as much as the run's, and its ratio varies from repeat to repeat; the workers' CPU seconds
count only the run's own work (the torch loop, the page faults of the malloc settings, the profiler's and the tick's
wake-ups) and vary far less.
"""
    from _results import write_section

    write_section("user cluster", f".venv/bin/python bench/user_cluster.py --steps {args.steps} "
                                  f"--repeats {args.repeats}", body)
    print(body)


if __name__ == "__main__":
    main()
