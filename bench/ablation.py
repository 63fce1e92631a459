"""TRA-PAN ablation on the bench crops → bench/RESULTS.md, section "ablation".

    .venv/bin/python bench/ablation.py                      # every variant on SN6-t2
    .venv/bin/python bench/ablation.py --crops SN6-t2,SN6-t3 --steps 100

Every variant changes one knob of ``TrapanConfig.default()`` (TRAPAN.md §10) and runs the one-pair use
(`pansharpen_pair`'s steps: Stage 1 on the pair, then Stage 2, toolbox wrap boundary) with one seed, at both
resolutions: the toolbox-exact full-resolution indices (HQNR, D_λ^K, D_s) of the fusion of the original pair, and the
Wald-protocol Q2n of the fusion of the degraded pair against the original MS. Both are needed: HQNR has no reference
and can be raised by moving away from the truth (the index-shaped losses did), Q2n has one. The quality of
``default()`` against every classical method on every crop is ``bench/quality.py``'s table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402
from quality import rr_cut  # noqa: E402

from trapan_cloud import metrics  # noqa: E402
from trapan_cloud.method import TrapanConfig, fit_prior, refine_tile  # noqa: E402
from trapan_cloud.samples import Sample, bench_crops  # noqa: E402

INDEX_TERMS = {"lambda_dl": 1.0, "lambda_ds": 1.0}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no warm-up": {"warmup_steps": 0},
    "RR only (RAO p=1)": {"schedule": "rao", "rao_p": 1.0},
    "FR only (RAO p=0)": {"schedule": "rao", "rao_p": 0.0},
    "sequential (ZS-Pan-like)": {"schedule": "sequential", "rao_p": 0.5},
    "summed losses (G-ZAP-like)": {"schedule": "sum"},
    "RAO p=0.3": {"schedule": "rao", "rao_p": 0.3},
    "RAO p=0.5": {"schedule": "rao", "rao_p": 0.5},
    "RAO p=0.7": {"schedule": "rao", "rao_p": 0.7},
    "base lms (paper)": {"base": "lms", "last_init_scale": 1.0},
    "λ_spa=3": {"lambda_spa": 3.0},
    "index-shaped terms (λ_dl=λ_ds=1)": INDEX_TERMS,
    "index-shaped terms (λ_dl=λ_ds=0.1)": {"lambda_dl": 0.1, "lambda_ds": 0.1},
    "lr 1e-4": {"lr": 1e-4},
    "crops 2×128²": {"crop_px": 128, "batch": 2},
    "no clip": {"clip": False},
    "HQNR selection, no stopping": {"selection": "hqnr", "patience": 0},
    "HQNR selection, patience 3 (adaptive stopping)": {"selection": "hqnr", "patience": 3},
    "previous default (index terms, HQNR selection, lr 1e-4, 60 steps, patience 3)":
        {**INDEX_TERMS, "selection": "hqnr", "lr": 1e-4, "rao_steps": 60, "patience": 3},
}
CURVE = "HQNR selection, no stopping"
"""The variant whose on-the-fly HQNR per evaluation gives the time-to-quality curve."""


def one_pair(pan: np.ndarray, ms: np.ndarray, crop: Sample, cfg: TrapanConfig) -> tuple[np.ndarray, dict, float]:
    """Fused (float64 DN), Stage-2 trace and wall seconds of the one-pair use, seed 0."""
    t0 = time.perf_counter()
    prior = fit_prior([(pan, ms)], crop.sensor, cfg, seed=0, interp_mode="wrap")
    res = refine_tile(prior, pan, ms, seed=0, config=cfg, interp_mode="wrap")
    return res.fused.astype(np.float64), res.trace, time.perf_counter() - t0


def ablation(crops: list[Sample], steps: int) -> str:
    """One markdown row per variant (a variant equal to an earlier one is named, not rerun), then the HQNR curve."""
    rows = ["| variant | " + " | ".join(f"{c.name} RR Q2n / HQNR / D_λ^K / D_s / s FR (steps)" for c in crops) + " |",
            "|---|" + "---|" * len(crops)]
    curves = []
    seen: dict[str, str] = {}
    for name, over in VARIANTS.items():
        cfg = dataclasses.replace(TrapanConfig.default(), **{"rao_steps": steps, **over})
        if cfg.hash() in seen:
            rows.append(f"| {name} | same as {seen[cfg.hash()]} |" + " |" * (len(crops) - 1))
            continue
        seen[cfg.hash()] = name
        cells = []
        for c in crops:
            pan, ms = c.pan.astype(np.float64), c.ms.astype(np.float64)
            q2n = metrics.reduced_resolution(lambda p, m: one_pair(p, m, c, cfg)[0], pan, ms, c.sensor,
                                             ratio=c.ratio, dim_cut=rr_cut(c))["Q2n"]
            fused, tr, sec = one_pair(pan, ms, c, cfg)
            fr = metrics.full_resolution(fused, pan, ms, c.sensor, ratio=c.ratio)
            cells.append(f"{q2n:.4f} / {fr['HQNR']:.4f} / {fr['D_lambda_K']:.4f} / {fr['D_s']:.4f} / "
                         f"{sec:.0f} s ({tr['steps_run']})")
            if name == CURVE:
                curves.append(f"- {c.name}: " + ", ".join(f"{s}: {v:.4f}" for s, v in tr["evals"]))
            print(name, c.name, cells[-1], flush=True)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(rows)
    if curves:
        text += (f"\n\nOn-the-fly HQNR against Stage-2 step (\"{CURVE}\"; step -1 is the base image, 0 the warm-up "
                 "network):\n\n" + "\n".join(curves))
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", default="SN6-t2", help="comma-separated bench crops")
    ap.add_argument("--steps", type=int, default=TrapanConfig.default().rao_steps,
                    help="Stage-2 steps (a variant may set its own)")
    a = ap.parse_args()
    chosen = [c for c in bench_crops() if c.name in a.crops.split(",")]
    if not chosen:
        ap.error(f"--crops: none of {a.crops!r} is a bench crop ({', '.join(c.name for c in bench_crops())})")
    body = (f"One seed (0), `TrapanConfig.default()` = `{TrapanConfig.default().to_dict()}`.\n\n"
            f"### Ablation ({', '.join(c.name for c in chosen)}; {a.steps} Stage-2 steps unless the variant says "
            "otherwise)\n\n" + ablation(chosen, a.steps))
    write_section("ablation", "python bench/ablation.py " + " ".join(sys.argv[1:]), body)


if __name__ == "__main__":
    main()
