"""Tiled vs whole-image TRA-PAN on the bundled real WorldView-2 scene: HQNR difference and a seam index.

    .venv/bin/python bench/tiling.py [--preset default] [--tile 256] [--workers 2]

Whole image: `tc.pansharpen` on the full 600×600 PAN scene (Stage 1 on the pair, Stage 2 on the whole image).
Tiled: `tc.run` on the same scene written as COGs + a STAC item, `tile`-px cores on an embedded Dask cluster, one
shared prior. Both are scored with the toolbox's full-resolution indices on the same 576×576 window (the largest one
whose sides are multiples of 32 and of the ratio). Seam index: the mean absolute difference between neighbouring
pixels straddling a tile border, over the same mean for all other neighbouring pairs (1.0 = no visible seam); it is
also given for the whole-image result, which has no seams, as the reference level. Writes the "tiling" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402


def seam_index(fused: np.ndarray, tile_px: int) -> float:
    """Mean |Δ| across tile borders over mean |Δ| elsewhere, for horizontal and vertical neighbours together.

    >>> img = np.zeros((1, 8, 8)); img[:, :, 4:] = 1.0   # a step exactly on the border at x = 4
    >>> seam_index(img, 4) > 10
    True
    """
    dx = np.abs(np.diff(fused, axis=2))  # dx[..., k] is between columns k and k+1
    dy = np.abs(np.diff(fused, axis=1))
    bx = np.zeros(dx.shape[2], bool)
    bx[tile_px - 1:: tile_px] = True
    by = np.zeros(dy.shape[1], bool)
    by[tile_px - 1:: tile_px] = True
    border = np.concatenate([dx[:, :, bx].ravel(), dy[:, by, :].ravel()])
    rest = np.concatenate([dx[:, :, ~bx].ravel(), dy[:, ~by, :].ravel()])
    return float(border.mean() / rest.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", choices=("fast", "default", "paper"))
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    command = "python bench/tiling.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    import trapan_cloud as tc
    from trapan_cloud.cluster import get_client
    from trapan_cloud.jobs import scene_arrays, score_full_resolution
    from trapan_cloud.samples import load_sample, write_sample_item
    from trapan_cloud.tiling import default_halo_px

    config = getattr(tc.TrapanConfig, args.preset)()
    sample = load_sample("sn6-1")
    with tempfile.TemporaryDirectory() as tmp:
        scene = tc.open_scene(write_sample_item(sample, tmp))
        pan, ms = scene_arrays(scene)
        sensor, ratio = scene.attrs["sensor"], int(scene.attrs["ratio"])

        t0 = time.perf_counter()
        whole = tc.pansharpen(pan, ms, sensor, method="trapan", config=config, seed=0, dtype=np.float64)
        t_whole = time.perf_counter() - t0
        whole = np.clip(np.rint(whole), 0, tc.get_sensor(sensor).max_dn)  # the store's uint16 DN, for a fair score

        client, _ = get_client(n_workers=args.workers)
        try:
            t0 = time.perf_counter()
            result = tc.run(scene, f"{tmp}/tiled.zarr", config=config, client=client, tile=args.tile, seed=0)
            t_tiled = time.perf_counter() - t0
            tiled = np.asarray(tc.open_result(f"{tmp}/tiled.zarr")["fused"].values, dtype=np.float64)
        finally:
            client.close()

    nodata = scene.attrs.get("nodata")
    s_whole = score_full_resolution(whole, pan, ms, sensor, ratio, nodata)
    s_tiled = score_full_resolution(tiled, pan, ms, sensor, ratio, nodata)
    rows = [
        ("whole image (`tc.pansharpen`)", s_whole, seam_index(whole, args.tile), t_whole, "1 process"),
        (f"tiled ({args.tile}-px cores, {default_halo_px(ratio)}-px halo, `tc.run`)", s_tiled,
         seam_index(tiled, args.tile), t_tiled, f"{result.tiles_total} tiles, {args.workers} workers"),
    ]
    body = [f"Scene: bundled SpaceNet 6 tile sn6-1 (WorldView-2, 600×600 PAN, ratio 4), preset `{args.preset}`, seed 0; "
            f"indices on the {s_whole['window_px']} window, fused values rounded to uint16 DN as stored.", "",
            "| run | HQNR | D_λ^K | D_s | seam index | seconds | layout |", "|---|---|---|---|---|---|---|"]
    for name, s, seam, secs, layout in rows:
        body.append(f"| {name} | {s['HQNR']:.4f} | {s['D_lambda_K']:.4f} | {s['D_s']:.4f} | {seam:.3f} | "
                    f"{secs:.0f} | {layout} |")
    diff = s_tiled["HQNR"] - s_whole["HQNR"]
    body += ["", f"HQNR tiled − whole: {diff:+.4f} (goal |Δ| ≤ 0.005: {'met' if abs(diff) <= 0.005 else 'NOT met'}); "
             f"seam index tiled {rows[1][2]:.3f} (goal ≤ 1.10: {'met' if rows[1][2] <= 1.10 else 'NOT met'})."]
    write_section("tiling", command, "\n".join(body))
    print("\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
