"""Quality benchmark: every method on every evaluation crop, reduced- and full-resolution indices, seconds.

Usage::

    .venv/bin/python bench/quality.py [--methods m1,m2] [--preset default]

For each crop of `trapan_cloud.samples.bench_crops` and each method (default: all of
`trapan_cloud.fusion.METHOD_NAMES`; ``trapan`` runs with ``TrapanConfig.<preset>()``) it computes the Wald-protocol
indices (Q2n, SAM, ERGAS, SCC; `metrics.reduced_resolution`, the method run on the degraded pair) and the
full-resolution ones (HQNR, D_λ^K, D_s; `metrics.full_resolution` on the method run on the original pair), with the
wall-clock seconds of each fusion. A method that raises is not skipped: its cells show the error. Writes one markdown
table per crop into the ``quality`` section of ``bench/RESULTS.md`` and the same numbers to ``bench/quality.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, write_section  # noqa: E402

from trapan_cloud import metrics  # noqa: E402
from trapan_cloud.fusion import METHOD_NAMES, pansharpen  # noqa: E402
from trapan_cloud.samples import Sample, bench_crops  # noqa: E402

JSON_PATH = Path(__file__).with_name("quality.json")

COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    # (json key, header, better: "max"/"min", decimals)
    ("Q2n", "Q2n ↑", "max", 4),
    ("SAM", "SAM° ↓", "min", 3),
    ("ERGAS", "ERGAS ↓", "min", 3),
    ("SCC", "SCC ↑", "max", 4),
    ("seconds_rr", "s (RR) ↓", "min", 2),
    ("HQNR", "HQNR ↑", "max", 4),
    ("D_lambda_K", "D_λ^K ↓", "min", 4),
    ("D_s", "D_s ↓", "min", 4),
    ("seconds_fr", "s (FR) ↓", "min", 2),
)
RR_KEYS = ("Q2n", "SAM", "ERGAS", "SCC")
FR_KEYS = ("HQNR", "D_lambda_K", "D_s")


def _fuse(pan: np.ndarray, ms: np.ndarray, crop: Sample, method: str, config: Any) -> np.ndarray:
    """One fusion in float64 DN, by name, through the public dispatch."""
    return pansharpen(pan, ms, crop.sensor, method=method, config=config, dtype=np.float64, ratio=crop.ratio)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")


def rr_cut(crop: Sample) -> int:
    """The toolbox border cut (21 px) where the crop can lose it, else none (crops of 64 MS px, SN6-t2/t3)."""
    return metrics.DIM_CUT if min(crop.ms.shape[1:]) >= 2 * metrics.DIM_CUT - 1 + metrics.BLOCK else 0


def evaluate(crop: Sample, method: str, config: Any) -> dict[str, Any]:
    """Reduced- and full-resolution indices of one method on one crop; an exception becomes an ``error_*`` entry."""
    row: dict[str, Any] = {}
    timer: dict[str, float] = {}

    def fuse_lr(pan_lr: np.ndarray, ms_lr: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = _fuse(pan_lr, ms_lr, crop, method, config)
        timer["rr"] = time.perf_counter() - t0
        return out

    try:
        rr = metrics.reduced_resolution(fuse_lr, crop.pan, crop.ms, crop.sensor, ratio=crop.ratio,
                                        dim_cut=rr_cut(crop))
        row.update({k: float(rr[k]) for k in RR_KEYS}, seconds_rr=timer["rr"])
    except Exception as exc:  # the table must show the failure, not hide the row
        row["error_rr"] = _error(exc)
    try:
        t0 = time.perf_counter()
        fused = _fuse(crop.pan, crop.ms, crop, method, config)
        row["seconds_fr"] = time.perf_counter() - t0
        fr = metrics.full_resolution(fused, crop.pan, crop.ms, crop.sensor, ratio=crop.ratio)
        row.update({k: float(fr[k]) for k in FR_KEYS})
    except Exception as exc:
        row["error_fr"] = _error(exc)
    return row


def _cell(rows: dict[str, dict[str, Any]], method: str, key: str, better: str, decimals: int) -> str:
    value = rows[method].get(key)
    if value is None:
        err = rows[method].get("error_rr" if key in RR_KEYS or key == "seconds_rr" else "error_fr")
        return f"error: {err}" if err else "–"
    finite = [r[key] for r in rows.values() if r.get(key) is not None and np.isfinite(r[key])]
    best = (max if better == "max" else min)(finite) if finite else None
    text = f"{value:.{decimals}f}"
    return f"**{text}**" if best is not None and round(value, decimals) == round(best, decimals) else text


def table(crop: Sample, rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table of one crop, best value of each column in bold, and the HQNR winner."""
    pan_side, ms_side = crop.pan.shape[0], crop.ms.shape[1]
    lines = [f"### {crop.name} ({crop.sensor}, {crop.ms.shape[0]} bands, PAN {pan_side}² / MS {ms_side}², "
             f"ratio {crop.ratio})", "",
             "| method | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for method in rows:
        cells = [_cell(rows, method, key, better, dec) for key, _, better, dec in COLUMNS]
        # an error spans its protocol: print it once, in the first cell of that protocol
        for keys in (("Q2n", "SAM", "ERGAS", "SCC", "seconds_rr"), ("HQNR", "D_lambda_K", "D_s", "seconds_fr")):
            idx = [i for i, c in enumerate(COLUMNS) if c[0] in keys and cells[i].startswith("error")]
            for i in idx[1:]:
                cells[i] = "″"
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    scored = {m: r["HQNR"] for m, r in rows.items() if r.get("HQNR") is not None and np.isfinite(r["HQNR"])}
    winner = max(scored, key=scored.get) if scored else None
    lines += ["", f"HQNR winner on {crop.name}: **{winner}** ({scored[winner]:.4f})." if winner
              else f"HQNR winner on {crop.name}: none (every method failed)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHOD_NAMES),
                        help=f"comma-separated subset of {', '.join(METHOD_NAMES)} (default: all)")
    parser.add_argument("--preset", default="default", choices=("fast", "default", "paper"),
                        help="TrapanConfig preset for the trapan method")
    args = parser.parse_args(argv)
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown or not methods:
        parser.error(f"--methods: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(METHOD_NAMES)}")
    config = None
    if "trapan" in methods:
        try:
            from trapan_cloud.method.config import TrapanConfig

            config = getattr(TrapanConfig, args.preset)()
        except Exception as exc:  # shown in the table through pansharpen's own failure, and here
            print(f"trapan config unavailable: {_error(exc)}", file=sys.stderr)

    command = "python bench/quality.py" + ("" if args.methods == ",".join(METHOD_NAMES) else f" --methods {args.methods}")
    if "trapan" in methods:
        command += f" --preset {args.preset}"
    results: dict[str, dict[str, dict[str, Any]]] = {}
    bodies = []
    for crop in bench_crops():
        rows = {}
        for method in methods:
            rows[method] = evaluate(crop, method, config)
            print(f"{crop.name:14s} {method:12s} {rows[method]}", file=sys.stderr)
        results[crop.name] = rows
        bodies.append(table(crop, rows))
    notes = ("Reduced resolution: Wald protocol (`physics.wald_degrade`), the method run on the degraded pair, scored "
             "against the original MS after the toolbox's 21-px cut (no cut on the 64-px MS crops SN6-t2/t3, which "
             "cannot lose 41 px per axis: the toolbox's flag_cut_bounds = 0). Full resolution: toolbox HQNR (32-px blocks), no "
             "cut, no clipping. Seconds are the wall time of one fusion (RR: at MS scale; FR: at PAN scale).")
    write_section("quality", command, notes + "\n\n" + "\n\n".join(bodies))
    JSON_PATH.write_text(json.dumps({"command": command, "machine": machine(), "preset": args.preset,
                                     "methods": methods, "crops": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
