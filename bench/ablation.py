"""TRA-PAN ablation and quality-per-compute front on the four bench crops, 3 seeds → bench/RESULTS.md "ablation".

    .venv/bin/python bench/ablation.py                 # every variant, every crop, seeds 0-2
    .venv/bin/python bench/ablation.py --only "RAO p" --seeds 0,1,2

Every variant changes knobs of one reference (`REFERENCE`: the shipped ``default()`` until 2026-12-04, which summed
the RR and FR losses at every step) and runs the one-pair use (Stage 1 on the pair, then Stage 2, toolbox wrap
boundary) through `_trials`: Wald-protocol RR indices of the fusion of the degraded pair, full-resolution HQNR and the
reprojection indices of the fusion of the original pair, Stage-2 GFLOP per output megapixel (counted) and CPU seconds
per megapixel. Every cell is the mean ± sd over the seeds; a variant is compared with the reference by `_trials.better`
(paired by seed). The front lists the variants no other variant beats on cost, RR Q2n and FR HQNR at once.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import write_section  # noqa: E402
from _trials import Trial, add_trial_args, better, fmt, rescore, run_all, stats  # noqa: E402

from trapan_cloud.method import TrapanConfig  # noqa: E402

warnings.filterwarnings("ignore", message="config: rao_p")  # the reference keeps its (inert) historical rao_p
CROPS = ("SN6-t1", "SN6-t2", "SN6-t3", "L8-momotombo")
REFERENCE: dict[str, Any] = {
    "width": 32, "depth": 4, "last_init_scale": 0.0, "dam_hidden": 32, "dam_steps": 1000, "dam_lr": 0.005,
    "warmup_steps": 20, "warmup_lr": 0.0005, "rao_steps": 200, "rao_p": 0.3, "rao_p_end": -1.0, "schedule": "sum",
    "lr": 0.0003, "lambda_spe": 8.0, "lambda_spa": 1.0, "lambda_dl": 0.0, "lambda_ds": 0.0, "loss_norm": "mse",
    "crop_px": 256, "batch": 1, "warmup_crop_px": 32, "base": "auto", "holdout": 0.0, "prior_steps": 0, "clip": True,
    "selection": "last", "eval_every": 10, "patience": 0, "min_rel_improvement": 0.0005,
}
"""The previous ``default()`` (summed losses at every step, 200 steps on one 256² crop): the reference row."""
RAO = {"schedule": "rao", "rao_p": 0.5, "crop_px": 128, "batch": 2}
ANNEAL = {"schedule": "rao", "rao_p": 1.0, "rao_p_end": 0.0}
VARIANTS: dict[str, dict[str, Any] | str] = {
    "reference: previous default (sum, 200 × 1×256²)": {},
    "sum, 200 × 2×128²": {"crop_px": 128, "batch": 2},
    "sequential p=0.5, 200 × 2×128²": {**RAO, "schedule": "sequential"},
    "RAO p=0.3, 200 × 2×128²": {**RAO, "rao_p": 0.3},
    "RAO p=0.5, 200 × 2×128²": RAO,
    "RAO p=0.7, 200 × 2×128²": {**RAO, "rao_p": 0.7},
    "RAO p=0.5, 200 × 1×128²": {**RAO, "batch": 1},
    "RAO p=0.5, 200 × 4×64²": {**RAO, "crop_px": 64, "batch": 4},
    "RAO p 1→0, 150 × 2×128²": {**RAO, **ANNEAL, "rao_steps": 150},
    "RAO p 1→0, 150 × 2×128², lr 6e-4": {**RAO, **ANNEAL, "rao_steps": 150, "lr": 6e-4},
    "RAO p 1→0, 200 × 2×96²": {**RAO, **ANNEAL, "crop_px": 96},
    "RAO p 0.5→0, 200 × 2×96²": {**RAO, **ANNEAL, "rao_p": 0.5, "crop_px": 96},
    "RAO p 1→0, 150 × 1×128²": {**RAO, **ANNEAL, "rao_steps": 150, "batch": 1},
    "RAO p 1→0, 300 × 1×128²": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1},
    "RAO p 1→0, 300 × 1×128², width 16 depth 2 (default)": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1,
                                                            "width": 16, "depth": 2},
    "RAO p 1→0, 300 × 1×128², λ_spa 0.3": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1, "lambda_spa": 0.3},
    "RAO p 1→0, 300 × 1×128², λ_spa 3": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1, "lambda_spa": 3.0},
    "RAO p 1→0, 300 × 1×128², λ_spe 32": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1, "lambda_spe": 32.0},
    "RAO p 1→0, 300 × 1×128², base MTF-GLP-FS": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1,
                                                 "base": "mtf-glp-fs"},
    "RAO p 1→0, 300 × 1×128², holdout selection": {**RAO, **ANNEAL, "rao_steps": 300, "batch": 1, "holdout": 0.25,
                                                   "selection": "holdout", "eval_every": 25, "patience": 3},
    "preset fast": "fast",
    "preset best": "best",
}


def config_of(over: dict[str, Any] | str) -> dict[str, Any]:
    """Full config dict of a variant: a preset's, or the reference with ``over`` applied."""
    if isinstance(over, str):
        return getattr(TrapanConfig, over)().to_dict()
    return TrapanConfig.from_dict({**REFERENCE, **over}).to_dict()


def front(summary: dict[str, dict[str, float]]) -> set[str]:
    """Labels no other label beats on GFLOP/Mpx (lower), RR Q2n and FR HQNR (higher) at once."""
    def dominated(a: str) -> bool:
        x = summary[a]
        return any(y["gflop"] <= x["gflop"] and y["Q2n"] >= x["Q2n"] and y["HQNR"] >= x["HQNR"]
                   and (y["gflop"], y["Q2n"], y["HQNR"]) != (x["gflop"], x["Q2n"], x["HQNR"])
                   for b, y in summary.items() if b != a)
    return {a for a in summary if not dominated(a)}


def tables(rows: list[dict[str, Any]], labels: list[str], ref: str, complete: set[str]) -> str:
    """Per-crop tables (mean ± sd, verdict against the reference) and the front over the crops' means (variants
    measured on every crop and seed only)."""
    out = []
    summary: dict[str, dict[str, float]] = {}
    for label in [lab for lab in labels if lab in complete]:
        mine = [r for r in rows if r["label"] == label]
        summary[label] = {k: stats([r for r in mine], k)[0] for k in ("Q2n", "HQNR", "R-Q2n", "D_rho")}
        summary[label]["gflop"] = stats(mine, "gflop_per_mpx")[0]
    for crop in CROPS:
        here = [r for r in rows if r["crop"] == crop]
        base = [r for r in here if r["label"] == ref]
        out += [f"### {crop}", "",
                "| variant | Stage-2 GFLOP/Mpx | CPU s/Mpx | RR Q2n | vs ref | FR HQNR | vs ref | R-Q2n | vs ref | "
                "D_ρ (truth RR) | steps run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for label in labels:
            mine = [r for r in here if r["label"] == label]
            if not mine:
                continue
            verdict = {k: ("" if label == ref else {1: "better", -1: "worse", 0: "tie"}[better(mine, base, k)])
                       for k in ("Q2n", "HQNR", "R-Q2n")}
            rq = fmt(mine, "R-Q2n") if "R-Q2n" in mine[0] else "–"
            drho = (f"{fmt(mine, 'D_rho', 3)} ({stats(mine, 'D_rho_ref')[0]:.3f})" if "D_rho" in mine[0] else "–")
            out.append(f"| {label} | {stats(mine, 'gflop_per_mpx')[0]:,.0f} | {fmt(mine, 'cpu_s_per_mpx', 0)} | "
                       f"{fmt(mine, 'Q2n')} | {verdict['Q2n']} | {fmt(mine, 'HQNR')} | {verdict['HQNR']} | {rq} | "
                       f"{verdict['R-Q2n']} | {drho} | {stats(mine, 'steps')[0]:.0f} |")
        out.append("")
    on_front = front(summary)
    out += ["### Quality per compute (means over the four crops; ★ = on the front of cost, RR Q2n and FR HQNR)", "",
            "| variant | Stage-2 GFLOP/Mpx | vs reference | RR Q2n | FR HQNR | R-Q2n | D_ρ | front |",
            "|---|---|---|---|---|---|---|---|"]
    ref_g = summary[ref]["gflop"]
    for label in sorted(summary, key=lambda a: summary[a]["gflop"]):
        s = summary[label]
        out.append(f"| {label} | {s['gflop']:,.0f} | {s['gflop'] / ref_g:.3f} | {s['Q2n']:.4f} | {s['HQNR']:.4f} | "
                   f"{s['R-Q2n']:.4f} | {s['D_rho']:.3f} | {'★' if label in on_front else ''} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run only the variants whose label contains this text (and the ref)")
    add_trial_args(ap)
    a = ap.parse_args()
    ref = next(iter(VARIANTS))
    labels = [lab for lab in VARIANTS if lab == ref or a.only in lab]
    seeds = [int(s) for s in a.seeds.split(",")]
    trials = [Trial(crop, label, config=config_of(VARIANTS[label]), seed=s)
              for label in labels for crop in CROPS for s in seeds]
    rows = run_all(trials, a.workers, a.fresh, compute=not a.cached)
    rescore(rows)
    complete = {lab for lab in labels if sum(r["label"] == lab for r in rows) == len(CROPS) * len(seeds)}
    labels = [lab for lab in labels if lab in complete] + [lab for lab in labels if lab not in complete]
    body = (f"Seeds {a.seeds}; reference = the previous `default()` = `{config_of({})}`. Each cell: mean ± sd over "
            "the seeds. Verdicts against the reference use the rule of `bench/_trials.py`: better/worse when the mean "
            "paired difference exceeds twice the sd of the paired differences, else a tie (ties go to the cheaper "
            "variant). D_ρ has no direction: the truth's reduced-resolution level is beside it.\n\n"
            + tables(rows, labels, ref, complete))
    missing = [lab for lab in labels if lab not in complete]
    if missing:
        body += ("\n\nNot measured on every crop and seed (kept out of the front): " + "; ".join(missing) + ".")
    write_section("ablation", "python bench/ablation.py " + " ".join(sys.argv[1:]), body)
    print(body)


if __name__ == "__main__":
    main()
