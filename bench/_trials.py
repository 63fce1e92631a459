"""Shared engine of the quality and ablation benches: one trial = one method (or TRA-PAN config) on one bench crop
with one seed, at both resolutions, with its Stage-2 compute counted.

A trial runs in a worker process with one torch thread (two trials at a time on a 2-core machine) and returns one
flat row: the Wald-protocol indices of the fusion of the degraded pair (Q2n, SAM, ERGAS, SCC), the full-resolution
indices of the fusion of the original pair (`metrics.full_resolution`: HQNR, D_λ^K, D_s, the reprojected indices and
D_ρ with the truth's level), the torch FLOPs of Stage 2 (counted by `torch.utils.flop_counter.FlopCounterMode`
around `refine_tile`, not estimated) and the process CPU seconds of the fusion, both per output PAN megapixel.
Rows are cached in ``bench/trials.jsonl`` by (crop, config hash, seed), so the quality table and the Pareto table
share runs; ``--fresh`` in the benches discards the cache.

Decision rule (`better`): variant A beats B on an index when the mean of the per-seed paired differences is larger
than twice their standard deviation (same seeds, same crop); otherwise they tie, and ties go to the cheaper variant.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(__file__).with_name("trials.jsonl")
FUSED = Path(os.environ.get("TRIALS_FUSED_DIR", "/tmp/trapan-trials"))
"""Where each trial's full-resolution fusion is kept (float32 .npy), so new indices can be scored without rerunning."""
RR_KEYS = ("Q2n", "SAM", "ERGAS", "SCC")
FR_KEYS = ("HQNR", "D_lambda_K", "D_s", "R-Q2n", "R-Q", "R-SAM", "R-ERGAS", "D_rho", "D_rho_ref")
HIGHER = {"Q2n": True, "SAM": False, "ERGAS": False, "SCC": True, "HQNR": True, "D_lambda_K": False, "D_s": False,
          "R-Q2n": True, "R-Q": True, "R-SAM": False, "R-ERGAS": False}
"""Direction of each judged index (D_ρ has none: it is read against the truth's level)."""


@dataclass(frozen=True)
class Trial:
    """One run to make: ``method`` "trapan" with ``config`` (TrapanConfig fields), or a classical method."""

    crop: str
    label: str
    method: str = "trapan"
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def key(self) -> str:
        from trapan_cloud.method import TrapanConfig

        what = TrapanConfig.from_dict(self.config).hash()[:16] if self.method == "trapan" else self.method
        return f"{self.crop}|{what}|{self.seed}"


def _crop(name: str):
    from trapan_cloud.samples import bench_crops

    return next(c for c in bench_crops() if c.name == name)


def _rr_cut(crop) -> int:
    """The toolbox border cut (21 px) where the crop can lose it, else none (the 64-px MS crops SN6-t2/t3)."""
    from trapan_cloud import metrics

    return metrics.DIM_CUT if min(crop.ms.shape[1:]) >= 2 * metrics.DIM_CUT - 1 + metrics.BLOCK else 0


def _fuse(trial: Trial, pan: np.ndarray, ms: np.ndarray, crop, count: dict[str, float]) -> np.ndarray:
    """One fusion (float64 DN); fills ``count`` with CPU seconds and, for TRA-PAN, Stage-1/2 FLOPs and steps."""
    from torch.utils.flop_counter import FlopCounterMode

    from trapan_cloud.baselines import METHODS
    from trapan_cloud.method import TrapanConfig, fit_prior, refine_tile

    c0 = time.process_time()
    if trial.method != "trapan":
        out = METHODS[trial.method](pan, ms, crop.sensor, crop.ratio)
        count.update(cpu_s=time.process_time() - c0, gflop_stage2=0.0, gflop_stage1=0.0)
        return np.asarray(out, np.float64)
    cfg = TrapanConfig.from_dict(trial.config)
    with FlopCounterMode(display=False) as f1:
        prior = fit_prior([(pan, ms)], crop.sensor, cfg, seed=trial.seed, interp_mode="wrap")
    c1 = time.process_time()
    with FlopCounterMode(display=False) as f2:
        res = refine_tile(prior, pan, ms, seed=trial.seed, config=cfg, interp_mode="wrap")
    count.update(cpu_s=time.process_time() - c0, cpu_s_stage2=time.process_time() - c1,
                 gflop_stage1=f1.get_total_flops() / 1e9, gflop_stage2=f2.get_total_flops() / 1e9,
                 steps=res.trace["steps_run"], selected=res.trace["selected_step"])
    return res.fused.astype(np.float64)


def run_trial(trial: Trial) -> dict[str, Any]:
    """Both protocols of one trial → one flat row (see the module docstring)."""
    import torch

    from trapan_cloud import metrics

    torch.set_num_threads(1)
    crop = _crop(trial.crop)
    pan, ms = crop.pan.astype(np.float64), crop.ms.astype(np.float64)
    row: dict[str, Any] = {"crop": trial.crop, "label": trial.label, "method": trial.method, "seed": trial.seed,
                           "config": trial.config, "key": trial.key()}
    rr_count: dict[str, float] = {}
    rr = metrics.reduced_resolution(lambda p, m: _fuse(trial, p, m, crop, rr_count), pan, ms, crop.sensor,
                                    ratio=crop.ratio, dim_cut=_rr_cut(crop))
    row.update({k: float(rr[k]) for k in RR_KEYS})
    fr_count: dict[str, float] = {}
    t0 = time.perf_counter()
    fused = _fuse(trial, pan, ms, crop, fr_count)
    row["wall_s"] = time.perf_counter() - t0
    FUSED.mkdir(parents=True, exist_ok=True)
    np.save(FUSED / f"{trial.key().replace('|', '_')}.npy", fused.astype(np.float32))
    row.update(score_fr(fused, crop))
    mpx = pan.shape[0] * pan.shape[1] / 1e6
    row.update(mpx=mpx, gflop_per_mpx=fr_count["gflop_stage2"] / mpx, cpu_s_per_mpx=fr_count["cpu_s"] / mpx,
               gflop_stage1=fr_count["gflop_stage1"], steps=fr_count.get("steps"), selected=fr_count.get("selected"),
               steps_rr=rr_count.get("steps"), selected_rr=rr_count.get("selected"),
               date=time.strftime("%Y-%m-%d", time.gmtime()))
    return row


def metrics_version() -> str:
    """Digest of the metrics code (its module, or every module of its package): a cached row scored by another
    version is rescored."""
    import hashlib

    from trapan_cloud import metrics

    src = Path(metrics.__file__)
    files = sorted(src.parent.glob("*.py")) if src.name == "__init__.py" else [src]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]


def score_fr(fused: np.ndarray, crop) -> dict[str, Any]:
    """The full-resolution indices of ``FR_KEYS`` that `metrics.full_resolution` provides, and their version."""
    from trapan_cloud import metrics

    fr = metrics.full_resolution(fused, crop.pan.astype(np.float64), crop.ms.astype(np.float64), crop.sensor,
                                 ratio=crop.ratio)
    return {**{k: float(fr[k]) for k in FR_KEYS if k in fr}, "metrics_version": metrics_version()}


def rescore(rows: list[dict[str, Any]]) -> None:
    """Rescore, from its kept fusion, every row scored by another version of the metrics (rewrites the cache)."""
    cache, changed, version = load_cache(), False, metrics_version()
    for r in rows:
        path = FUSED / f"{r['key'].replace('|', '_')}.npy"
        if r.get("metrics_version") == version or not path.exists():
            continue
        r.update(score_fr(np.load(path).astype(np.float64), _crop(r["crop"])))
        cache[r["key"]] = {**cache[r["key"]], **{k: r[k] for k in (*FR_KEYS, "metrics_version") if k in r}}
        changed = True
    if changed:
        CACHE.write_text("".join(json.dumps(v) + "\n" for v in cache.values()))


def load_cache() -> dict[str, dict[str, Any]]:
    if not CACHE.exists():
        return {}
    rows = [json.loads(line) for line in CACHE.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in rows}


def run_all(trials: list[Trial], workers: int = 2, fresh: bool = False, compute: bool = True) -> list[dict[str, Any]]:
    """Rows of every trial, from the cache where present; new rows are appended to the cache as they finish
    (``compute=False``: only the cached rows)."""
    if fresh and CACHE.exists():
        CACHE.unlink()
    cache = load_cache()
    todo = list({t.key(): t for t in trials if t.key() not in cache}.values())  # in the caller's order
    if todo and compute:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            for trial, row in zip(todo, pool.map(run_trial, todo)):
                cache[row["key"]] = row
                with CACHE.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{trial.crop:13s} {trial.label:32s} seed {trial.seed}: Q2n {row['Q2n']:.4f} "
                      f"HQNR {row['HQNR']:.4f} {row['gflop_per_mpx']:.0f} GFLOP/Mpx {row['wall_s']:.0f} s", flush=True)
    return [{**cache[t.key()], "label": t.label} for t in trials if t.key() in cache]


def add_trial_args(ap: Any) -> None:
    """The options every trial bench takes: seeds, worker processes, cache handling."""
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fresh", action="store_true", help="discard cached trials")
    ap.add_argument("--cached", action="store_true", help="write the tables from the cached trials, run nothing")


def stats(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) of ``key`` over ``rows``."""
    v = np.array([r[key] for r in rows if r.get(key) is not None], float)
    return (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0) if v.size else (float("nan"), 0.0)


def better(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str) -> int:
    """+1 if A beats B on ``key`` by the rule (paired by seed), -1 if B beats A, 0 for a tie."""
    by_seed = {r["seed"]: r[key] for r in b}
    d = np.array([r[key] - by_seed[r["seed"]] for r in a if r["seed"] in by_seed], float)
    if d.size == 0:
        return 0
    if not HIGHER.get(key, True):
        d = -d
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    mean = float(d.mean())
    if abs(mean) > 2 * sd and mean != 0:
        return 1 if mean > 0 else -1
    return 0


def fmt(rows: list[dict[str, Any]], key: str, decimals: int = 4) -> str:
    """``mean ± sd`` of one index over the seeds (just the value when there is one row)."""
    m, s = stats(rows, key)
    if len(rows) == 1:
        return f"{m:.{decimals}f}"
    return f"{m:.{decimals}f} ± {s:.{decimals}f}"
