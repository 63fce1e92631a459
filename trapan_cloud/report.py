"""Reports: metrics tables, true-colour quicklook PNGs, zoomed side-by-side crops, a map of the per-tile QA layer and
a small self-contained HTML page.

The crops and the QA map are written pixel for pixel (no figure margins), so their sizes follow from the windows and
the scene: `crops_png` and `qa_map_png` say how.
"""

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


def stretch_limits(rgb: np.ndarray, low: float = 2.0, high: float = 98.0,
                   valid: np.ndarray | None = None) -> np.ndarray:
    """Per-band ``(lo, hi)`` percentiles, ``(bands, 2)``, of a (bands, H, W) DN image over its valid pixels."""
    return np.array([np.percentile(band[valid] if valid is not None and valid.any() else band.ravel(), [low, high])
                     for band in rgb])


def stretch(rgb: np.ndarray, low: float = 2.0, high: float = 98.0, valid: np.ndarray | None = None,
            limits: np.ndarray | None = None) -> np.ndarray:
    """Per-band percentile stretch of a (3, H, W) DN image to [0, 1], computed on the valid pixels only (or with the
    ``limits`` of another image, so that several panels share one stretch)."""
    limits = stretch_limits(rgb, low, high, valid) if limits is None else limits
    out = np.zeros(rgb.shape, dtype=np.float32)
    for i, (band, (lo, hi)) in enumerate(zip(rgb, limits)):
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


CROP_PX = 128
"""Largest side of a zoomed crop window, in PAN pixels."""
ZOOM = 2
"""Each crop pixel is drawn as ``ZOOM × ZOOM`` screen pixels (nearest neighbour: no smoothing added)."""
GAP_PX = 4
"""White gap between crop panels and rows."""
QA_MAP_MAX_PX = 512
"""Longest side of the QA map; the scene is shown at ``1 / ceil(max(H, W) / QA_MAP_MAX_PX)`` of its PAN size."""


def crop_windows(values: np.ndarray, tiles: Sequence[Any], higher_is_better: bool = True,
                 side_px: int = CROP_PX) -> dict[str, tuple[int, int, int, int]]:
    """The ``(y0, y1, x0, x1)`` PAN windows worth zooming into: centred in the core of the tile with the best and of
    the tile with the worst measured QA value (``values`` ``(n_rows, n_cols)``, NaN where not measured; ``tiles`` the
    plan's tiles), each ``min(side_px, core side)`` square.

    >>> from types import SimpleNamespace as T
    >>> tiles = [T(row=0, col=0, core=(0, 100, 0, 100)), T(row=0, col=1, core=(0, 100, 100, 140))]
    >>> crop_windows(np.array([[0.9, 0.7]]), tiles, side_px=64)
    {'best': (18, 82, 18, 82), 'worst': (30, 70, 100, 140)}
    """
    measured = np.isfinite(values)
    if not measured.any():
        raise ValueError("values: no tile has a measured QA value to choose the crops by")
    best_pick = np.nanargmax if higher_is_better else np.nanargmin
    worst_pick = np.nanargmin if higher_is_better else np.nanargmax
    by_cell = {(t.row, t.col): t for t in tiles}
    out = {}
    for label, pick in (("best", best_pick), ("worst", worst_pick)):
        y0, y1, x0, x1 = by_cell[np.unravel_index(int(pick(values)), values.shape)].core
        side = min(side_px, y1 - y0, x1 - x0)
        cy, cx = (y0 + y1 - side) // 2, (x0 + x1 - side) // 2
        out[label] = (cy, cy + side, cx, cx + side)
    return out


def crops_png(path: str, windows: Mapping[str, tuple[int, int, int, int]], pan: np.ndarray,
              panels: Mapping[str, np.ndarray], band_names: Sequence[str], nodata: float | None = 0,
              zoom: int = ZOOM) -> str:
    """Write one row per window: the PAN (grey), then each of ``panels`` ((B, H, W) DN on the PAN grid) in true colour.

    All colour panels of a row share the stretch of the first one (over its valid pixels), so differences are the
    images', not the stretch's. The file is ``rows·zoom·h + (rows - 1)·GAP_PX`` pixels high and ``(1 + len(panels))
    ·zoom·w + len(panels)·GAP_PX`` wide for ``h × w`` windows (all windows the same size).
    """
    import matplotlib.image

    r, g, b = rgb_indices(band_names)
    first = next(iter(panels.values()))
    rows = []
    for y0, y1, x0, x1 in windows.values():
        valid = (first[:, y0:y1, x0:x1] != nodata).all(0) if nodata is not None else None
        limits = stretch_limits(first[[r, g, b], y0:y1, x0:x1].astype(np.float64), valid=valid)
        grey = stretch(pan[None, y0:y1, x0:x1].astype(np.float64), valid=valid)
        cells = [np.repeat(grey, 3, axis=0)]
        cells += [stretch(image[[r, g, b], y0:y1, x0:x1].astype(np.float64), limits=limits)
                  for image in panels.values()]
        cells = [np.kron(np.moveaxis(c, 0, -1), np.ones((zoom, zoom, 1), np.float32)) for c in cells]
        gap = np.ones((cells[0].shape[0], GAP_PX, 3), np.float32)
        rows.append(np.concatenate([x for c in cells for x in (c, gap)][:-1], axis=1))
    gap = np.ones((GAP_PX, rows[0].shape[1], 3), np.float32)
    matplotlib.image.imsave(path, np.concatenate([x for row in rows for x in (row, gap)][:-1], axis=0))
    return path


def qa_map_png(path: str, values: np.ndarray, tiles: Sequence[Any], image: np.ndarray, band_names: Sequence[str],
               nodata: float | None = 0, higher_is_better: bool = True) -> tuple[str, tuple[float, float]]:
    """Write the per-tile QA layer over the scene: the fused image ((B, H, W) DN) in true colour, each tile core tinted
    by its value (viridis, brighter = better; untinted where not measured) and outlined.

    The scene is shown at ``1 / f`` of its size, ``f = ceil(max(H, W) / QA_MAP_MAX_PX)``: the file is
    ``ceil(H / f) × ceil(W / f)`` pixels. Returns the path and the value range the colours span (worst, best).
    """
    import matplotlib
    import matplotlib.image

    H, W = image.shape[1:]
    f = -(-max(H, W) // QA_MAP_MAX_PX)
    r, g, b = rgb_indices(band_names)
    valid = (image != nodata).all(0) if nodata is not None else None
    rgb = np.moveaxis(stretch(image[[r, g, b]].astype(np.float64), valid=valid), 0, -1)[::f, ::f].copy()
    measured = values[np.isfinite(values)]
    lo, hi = (float(measured.min()), float(measured.max())) if measured.size else (0.0, 1.0)
    cmap = matplotlib.colormaps["viridis"]
    for t in tiles:
        v = values[t.row, t.col]
        y0, y1, x0, x1 = (-(-c // f) for c in t.core)
        if np.isfinite(v):
            level = (v - lo) / (hi - lo) if hi > lo else 1.0
            colour = np.asarray(cmap(level if higher_is_better else 1.0 - level)[:3], np.float32)
            rgb[y0:y1, x0:x1] = 0.5 * rgb[y0:y1, x0:x1] + 0.5 * colour
        rgb[y0:y1, [x0, max(x1 - 1, x0)]] = 0.0
        rgb[[y0, max(y1 - 1, y0)], x0:x1] = 0.0
    matplotlib.image.imsave(path, rgb)
    return path, ((lo, hi) if higher_is_better else (hi, lo))


def markdown_table(rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """A markdown table of ``rows[method][key]`` with floats at 4 decimals."""
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, row in rows.items():
        cells = [f"{row[k]:.4f}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(out_dir: str, title: str, rows: Mapping[str, Mapping[str, Any]], keys: Sequence[str],
                 meta: Mapping[str, Any], images: Sequence[str | tuple[str, str]] = ()) -> tuple[str, str]:
    """Write ``report.json`` and a self-contained ``report.html`` (images inlined, each with its caption when given
    as ``(path, caption)``) into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    images = [(p, "") if isinstance(p, str) else p for p in images]
    json_path = os.path.join(out_dir, "report.json")
    with open(json_path, "w") as f:
        json.dump({"title": title, "meta": meta, "results": rows,
                   "images": [{"file": os.path.basename(p), "caption": c} for p, c in images]}, f, indent=1,
                  default=str)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("method", *keys))
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>"
        + "".join(f"<td>{row[k]:.4f}</td>" if isinstance(row.get(k), float) else f"<td>{html.escape(str(row.get(k, '')))}</td>"
                  for k in keys) + "</tr>"
        for name, row in rows.items())
    pictures = "".join(
        f'<figure><img alt="{html.escape(os.path.basename(p))}" src="data:image/png;base64,'
        f'{base64.b64encode(open(p, "rb").read()).decode()}" style="max-width:100%">'
        f'<figcaption>{html.escape(caption)}</figcaption></figure>' for p, caption in images)
    facts = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in meta.items())
    html_path = os.path.join(out_dir, "report.html")
    with open(html_path, "w") as f:
        f.write(f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<h1>{html.escape(title)}</h1><ul>{facts}</ul><table border=1 cellpadding=4><tr>{head}</tr>{body}"
                f"</table>{pictures}")
    return json_path, html_path
