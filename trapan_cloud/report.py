"""Reports: metrics tables, true-colour quicklook PNGs and a small self-contained HTML page."""

from __future__ import annotations

import base64
import html
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

FR_KEYS = ("HQNR", "D_lambda_K", "D_s", "R-Q2n", "R-SAM", "R-ERGAS", "D_rho", "D_rho_ref")
"""Full-resolution indices shown in tables: the toolbox's HQNR and its distortions, and the reprojection protocol's
spectral indices and D_ρ with, beside it, the truth's reduced-resolution level (D_ρ is read against that level, not
minimised). Higher is better for HQNR and R-Q2n; lower for the distortions, R-SAM and R-ERGAS."""


def rgb_indices(band_names: Sequence[str]) -> tuple[int, int, int]:
    """Band indices of red, green and blue (falls back to the first three bands).

    >>> rgb_indices(["blue", "green", "red", "nir1"])
    (2, 1, 0)
    """
    names = [str(b).lower() for b in band_names]
    try:
        return names.index("red"), names.index("green"), names.index("blue")
    except ValueError:
        return (0, 1, 2) if len(names) >= 3 else (0, 0, 0)


def stretch(rgb: np.ndarray, low: float = 2.0, high: float = 98.0, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-band percentile stretch of a (3, H, W) DN image to [0, 1], computed on the valid pixels only."""
    out = np.zeros(rgb.shape, dtype=np.float32)
    for i, band in enumerate(rgb):
        values = band[valid] if valid is not None and valid.any() else band.ravel()
        lo, hi = np.percentile(values, [low, high])
        out[i] = np.clip((band - lo) / max(hi - lo, 1e-9), 0, 1)
    return out


def quicklook_png(path: str, panels: Mapping[str, np.ndarray], band_names: Sequence[str],
                  nodata: float | None = 0) -> str:
    """Write side-by-side true-colour panels (each (B, H, W) DN on one grid) with a shared stretch; return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r, g, b = rgb_indices(band_names)
    first = next(iter(panels.values()))
    valid = (first != nodata).all(0) if nodata is not None else None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5.3), squeeze=False)
    for ax, (title, image) in zip(axes[0], panels.items()):
        ax.imshow(np.moveaxis(stretch(image[[r, g, b]].astype(np.float64), valid=valid), 0, -1))
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown_table(rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """A markdown table of ``rows[method][key]`` with floats at 4 decimals."""
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, row in rows.items():
        cells = [f"{row[k]:.4f}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir: str, title: str, rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
                 meta: Mapping[str, Any], images: Sequence[str] = ()) -> tuple[str, str]:
    """Write ``report.json`` and a self-contained ``report.html`` (images inlined) into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "report.json")
    with open(json_path, "w") as f:
        json.dump({"title": title, "meta": meta, "results": rows}, f, indent=1, default=str)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("method", *keys))
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>"
        + "".join(f"<td>{row[k]:.4f}</td>" if isinstance(row.get(k), float) else f"<td>{html.escape(str(row.get(k, '')))}</td>"
                  for k in keys) + "</tr>"
        for name, row in rows.items())
    pictures = "".join(
        f'<p><img alt="{html.escape(os.path.basename(p))}" src="data:image/png;base64,'
        f'{base64.b64encode(open(p, "rb").read()).decode()}" style="max-width:100%"></p>' for p in images)
    facts = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in meta.items())
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w") as f:
        f.write(f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<h1>{html.escape(title)}</h1><ul>{facts}</ul><table border=1 cellpadding=4><tr>{head}</tr>{body}"
                f"</table>{pictures}")
    return json_path, html_path
