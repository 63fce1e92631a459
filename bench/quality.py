"""Quality benchmark: the TRA-PAN presets (3 seeds) against every classical method on every bench crop, at reduced
and full resolution, with the compute of each → bench/RESULTS.md "quality" and bench/quality.json.

Usage::

    .venv/bin/python bench/quality.py [--presets fast,default,best] [--seeds 0,1,2]

Runs through `_trials` (see its docstring for the protocols, the counted FLOPs and the decision rule): Wald-protocol
Q2n, SAM, ERGAS, SCC of the fusion of the degraded pair against the original MS; toolbox HQNR, D_λ^K, D_s, the
reprojected R-Q2n / R-SAM / R-ERGAS and D_ρ (with the reduced-resolution truth's D_ρ beside it) of the fusion of the
original pair. TRA-PAN cells are mean ± sd over the seeds; the classical methods are deterministic (one run). Below
each crop's table, the acceptance checks of the shipped ``default()``: RR Q2n at least the best classical + 0.01,
FR HQNR at least the best classical, R-Q2n at least MTF-GLP-FS's, each judged on the mean over the seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, write_section  # noqa: E402
from _trials import Trial, add_trial_args, fmt, rescore, run_all, stats  # noqa: E402

from trapan_cloud.fusion import CLASSICAL  # noqa: E402
from trapan_cloud.method import TrapanConfig  # noqa: E402

JSON_PATH = Path(__file__).with_name("quality.json")
CROPS = ("SN6-t1", "SN6-t2", "SN6-t3", "L8-momotombo")
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("Q2n", "RR Q2n ↑", 4), ("SAM", "RR SAM° ↓", 3), ("ERGAS", "RR ERGAS ↓", 3), ("HQNR", "HQNR ↑", 4),
    ("D_lambda_K", "D_λ^K ↓", 4), ("D_s", "D_s ↓", 4), ("R-Q2n", "R-Q2n ↑", 4), ("R-SAM", "R-SAM° ↓", 3),
    ("R-ERGAS", "R-ERGAS ↓", 3), ("D_rho", "D_ρ", 3),
)


def checks(crop: str, rows: list[dict[str, Any]], label: str) -> str:
    """The acceptance lines of ``label`` on one crop (means over the seeds)."""
    mine = [r for r in rows if r["label"] == label]
    classical = {r["label"]: r for r in rows if r["method"] != "trapan"}
    best_q = max(classical.values(), key=lambda r: r["Q2n"])
    best_h = max(classical.values(), key=lambda r: r["HQNR"])
    q, h, rq = stats(mine, "Q2n")[0], stats(mine, "HQNR")[0], stats(mine, "R-Q2n")[0]
    fs = classical["mtf-glp-fs"]["R-Q2n"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    return (f"`{label}` on {crop}: RR Q2n {q:.4f} vs best classical {best_q['label']} {best_q['Q2n']:.4f} + 0.01 "
            f"({verdict(q >= best_q['Q2n'] + 0.01)}); FR HQNR {h:.4f} vs best classical {best_h['label']} "
            f"{best_h['HQNR']:.4f} ({verdict(h >= best_h['HQNR'])}); R-Q2n {rq:.4f} vs MTF-GLP-FS {fs:.4f} "
            f"({verdict(rq >= fs)}); D_ρ {stats(mine, 'D_rho')[0]:.3f} against the truth's reduced-resolution level "
            f"{stats(mine, 'D_rho_ref')[0]:.3f}.")


def table(crop: str, rows: list[dict[str, Any]], labels: list[str]) -> str:
    lines = [f"### {crop}", "", "| method | " + " | ".join(c[1] for c in COLUMNS) +
             " | Stage-2 GFLOP/Mpx | CPU s/Mpx |", "|---|" + "---|" * (len(COLUMNS) + 2)]
    for label in labels:
        mine = [r for r in rows if r["label"] == label]
        cells = [fmt(mine, key, dec) for key, _, dec in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) +
                     f" | {stats(mine, 'gflop_per_mpx')[0]:,.0f} | {stats(mine, 'cpu_s_per_mpx')[0]:,.1f} |")
    lines.append("")
    lines.append(f"Truth's D_ρ at reduced resolution (MS against the Wald-degraded PAN): "
                 f"{stats(rows, 'D_rho_ref')[0]:.3f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="fast,default,best", help="TrapanConfig presets to run")
    add_trial_args(ap)
    a = ap.parse_args(argv)
    presets, seeds = a.presets.split(","), [int(s) for s in a.seeds.split(",")]
    labels = [f"trapan {p}" for p in presets] + list(CLASSICAL)
    trials = [Trial(crop, f"trapan {p}", config=getattr(TrapanConfig, p)().to_dict(), seed=s)
              for p in presets for crop in CROPS for s in seeds]
    trials += [Trial(crop, m, method=m) for m in CLASSICAL for crop in CROPS]
    rows = run_all(trials, a.workers, a.fresh, compute=not a.cached)
    rescore(rows)
    bodies = []
    for crop in CROPS:
        here = [r for r in rows if r["crop"] == crop]
        bodies.append(table(crop, here, labels))
        if "default" in presets:
            bodies.append(checks(crop, here, "trapan default"))
    command = "python bench/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    notes = (f"Seeds {a.seeds} for TRA-PAN (mean ± sd); classical methods are deterministic. Reduced resolution: "
             "Wald protocol, the method run on the degraded pair, scored against the original MS after the "
             "toolbox's 21-px cut (none on the 64-px MS crops SN6-t2/t3). Full resolution: toolbox HQNR (32-px "
             "blocks) and the reprojection protocol (R-*, D_ρ; `metrics.reprojected`, `metrics.d_rho`). D_ρ is a "
             "detail level, not a score: read it against the truth's. Stage-2 GFLOP are counted by torch's FLOP "
             "counter on the full-resolution fusion; CPU seconds are the process time of the whole fusion, "
             "one torch thread.")
    write_section("quality", command.strip(), notes + "\n\n" + "\n\n".join(bodies))
    JSON_PATH.write_text(json.dumps({"command": command, "machine": machine(), "presets": presets,
                                     "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
