"""TRA-PAN ablation and quality check on the bench crops → bench/RESULTS.md, section "ablation".

    .venv/bin/python bench/ablation.py                      # ablation on SN6-t2/t3 + quality on all 4 crops
    .venv/bin/python bench/ablation.py --crops SN6-t2 --skip-quality

Every variant changes one knob of ``TrapanConfig.default()`` (TRAPAN.md §10) and runs the one-pair use
(`pansharpen_pair`: Stage 1 on the pair, then Stage 2, toolbox wrap boundary) with one seed; the table gives the
toolbox-exact full-resolution indices and the wall time. The quality part scores ``default()`` against every
classical baseline at full resolution (HQNR) and at reduced resolution (Wald protocol, Q2n).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any

import numpy as np

from trapan_cloud import metrics
from trapan_cloud.baselines import METHODS
from trapan_cloud.method import TrapanConfig, fit_prior, refine_tile
from trapan_cloud.samples import Sample, bench_crops

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _results import write_section  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no warm-up": {"warmup_steps": 0},
    "no warm-up, FR only": {"warmup_steps": 0, "schedule": "rao", "rao_p": 0.0},
    "RR only (RAO p=1)": {"schedule": "rao", "rao_p": 1.0},
    "FR only (RAO p=0)": {"schedule": "rao", "rao_p": 0.0},
    "sequential (ZS-Pan-like)": {"schedule": "sequential", "rao_p": 0.5},
    "RAO (p=0.3)": {"schedule": "rao"},
    "summed losses (G-ZAP-like)": {"schedule": "sum"},
    "RAO p=0.5": {"schedule": "rao", "rao_p": 0.5},
    "RAO p=0.7": {"schedule": "rao", "rao_p": 0.7},
    "base lms (paper)": {"base": "lms", "last_init_scale": 1.0},
    "base mtf-glp-fs": {"base": "mtf-glp-fs"},
    "ZS-Pan losses only (λ_dl=λ_ds=0)": {"lambda_dl": 0.0, "lambda_ds": 0.0},
    "λ_ds=2": {"lambda_ds": 2.0},
    "crops 2×128²": {"crop_px": 128, "batch": 2},
    "lr 3e-4 (default before the Landsat check)": {"lr": 3e-4},
    "adaptive stopping off": {"patience": 0},
    "select last, no clip": {"selection": "last", "clip": False},
}


RR_MIN_MS = 2 * 21 + 32 - 1
"""Smallest MS side the toolbox's reduced-resolution scoring accepts (21-px cut per side, then a 32-px block)."""


def run(sample: Sample, cfg: TrapanConfig, seed: int = 0) -> tuple[np.ndarray, dict[str, Any], float]:
    """Fused image (float64 DN), Stage-2 trace and wall seconds of the one-pair use on a bench crop."""
    pan, ms = sample.pan.astype(np.float64), sample.ms.astype(np.float64)
    t0 = time.perf_counter()
    prior = fit_prior([(pan, ms)], sample.sensor, cfg, seed=seed, interp_mode="wrap")
    res = refine_tile(prior, pan, ms, seed=seed, config=cfg, interp_mode="wrap")
    return res.fused.astype(np.float64), res.trace, time.perf_counter() - t0


def fr(sample: Sample, fused: np.ndarray) -> tuple[float, float, float]:
    return metrics.hqnr(fused, sample.ms.astype(np.float64), sample.pan.astype(np.float64), sample.sensor,
                        sample.ratio)


def ablation(crops: list[Sample], steps: int) -> str:
    rows = ["| variant | " + " | ".join(f"{c.name} HQNR / D_λ^K / D_s / s (steps)" for c in crops) + " |",
            "|---|" + "---|" * len(crops)]
    curves = []
    seen: dict[str, str] = {}
    for name, over in VARIANTS.items():
        cfg = dataclasses.replace(TrapanConfig.default(), rao_steps=steps, **over)
        if cfg.hash() in seen:  # a variant equal to another one (e.g. default's own p)
            rows.append(f"| {name} | same as {seen[cfg.hash()]} |" + " |" * (len(crops) - 1))
            continue
        seen[cfg.hash()] = name
        cells = []
        for c in crops:
            fused, trace, sec = run(c, cfg)
            q, dl, ds = fr(c, fused)
            cells.append(f"{q:.4f} / {dl:.4f} / {ds:.4f} / {sec:.0f} s ({trace['steps_run']})")
            if name == "adaptive stopping off" and cfg.selection == "hqnr":
                curves.append(f"- {c.name}: " + ", ".join(f"{s}: {v:.4f}" for s, v in trace["evals"]))
            print(name, c.name, cells[-1], flush=True)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(rows)
    if curves:
        text += ("\n\nOn-the-fly HQNR against Stage-2 step (adaptive stopping off, whole-tile evaluations):\n\n"
                 + "\n".join(curves))
    return text


def quality(crops: list[Sample]) -> str:
    cfg = TrapanConfig.default()
    rows = ["| crop | TRA-PAN default HQNR / D_λ^K / D_s | best classical HQNR (method) | TRA-PAN RR Q2n | "
            "best classical RR Q2n (method) | TRA-PAN s |", "|---|---|---|---|---|---|"]
    for c in crops:
        pan, ms = c.pan.astype(np.float64), c.ms.astype(np.float64)
        fused, trace, sec = run(c, cfg)
        q, dl, ds = fr(c, fused)
        cls_fr = {m: fr(c, f(pan, ms, c.sensor, c.ratio))[0] for m, f in METHODS.items()}
        bf = max(cls_fr, key=cls_fr.get)
        if min(ms.shape[1:]) < RR_MIN_MS:
            rr_cells = f"n/a (MS side {ms.shape[1]} < {RR_MIN_MS}: the toolbox RR cut leaves no 32-px block) | n/a"
        else:
            cls_rr = {m: metrics.reduced_resolution(lambda p, s, f=f: f(p, s, c.sensor, c.ratio), pan, ms, c.sensor,
                                                    c.ratio)["Q2n"] for m, f in METHODS.items()}

            def ours(p: np.ndarray, s: np.ndarray) -> np.ndarray:
                prior = fit_prior([(p, s)], c.sensor, cfg, interp_mode="wrap")
                return refine_tile(prior, p, s, config=cfg, interp_mode="wrap").fused.astype(np.float64)

            rr = metrics.reduced_resolution(ours, pan, ms, c.sensor, c.ratio)["Q2n"]
            br = max(cls_rr, key=cls_rr.get)
            rr_cells = f"{rr:.4f} | {cls_rr[br]:.4f} ({br})"
        rows.append(f"| {c.name} | {q:.4f} / {dl:.4f} / {ds:.4f} | {cls_fr[bf]:.4f} ({bf}) | {rr_cells} | {sec:.0f} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", default="SN6-t2", help="comma-separated bench crops for the ablation")
    ap.add_argument("--steps", type=int, default=TrapanConfig.default().rao_steps, help="max Stage-2 steps")
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    a = ap.parse_args()
    all_crops = bench_crops()
    chosen = [c for c in all_crops if c.name in a.crops.split(",")]
    parts = [f"One seed (0), `TrapanConfig.default()` = `{TrapanConfig.default().to_dict()}`."]
    command = "python bench/ablation.py " + " ".join(sys.argv[1:])
    if not a.skip_quality:
        parts.append("### Quality of default() on every bench crop (full resolution and Wald reduced resolution)\n\n"
                     + quality(all_crops))
        write_section("ablation", command, "\n\n".join(parts))
    if not a.skip_ablation:
        parts.append(f"### Ablation ({', '.join(c.name for c in chosen)}; at most {a.steps} Stage-2 steps)\n\n"
                     + ablation(chosen, a.steps))
        write_section("ablation", command, "\n\n".join(parts))


if __name__ == "__main__":
    main()
