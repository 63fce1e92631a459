"""Tiled vs whole-image TRA-PAN on the bundled real WorldView-2 scene: HQNR difference and a seam index.

    .venv/bin/python bench/tiling.py [--preset default] [--tile 512] [--also 256] [--workers 2]

Whole image: `tc.pansharpen` on the full 600×600 PAN scene (Stage 1 on the pair, Stage 2 on the whole image).
Tiled: `tc.run` on the same scene written as COGs + a STAC item, on an embedded Dask cluster, one shared prior: at
`trapan run`'s default core (512 px, the judged run), and at each ``--also`` core twice: with the same config, and
with Stage-2 steps density-matched to the whole image (`matched_steps`), which shows what the difference is made of.
All are scored with the toolbox's full-resolution indices on the same 576×576 window (the largest one whose sides are
multiples of 32 and of the ratio). Seam index: the mean absolute difference between neighbouring
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
from dataclasses import replace
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
    parser.add_argument("--tile", type=int, default=512, help="core tile of the judged run (`trapan run`'s default)")
    parser.add_argument("--also", type=int, nargs="*", default=[256],
                        help="smaller cores to show, each as configured and with Stage-2 steps density-matched")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    command = "python bench/tiling.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    import trapan_cloud as tc
    from trapan_cloud.cluster import get_client
    from trapan_cloud.jobs import scene_arrays, score_full_resolution
    from trapan_cloud.samples import load_sample, write_sample_item
    from trapan_cloud.tiling import default_halo_px, plan_tiles

    config = getattr(tc.TrapanConfig, args.preset)()
    sample = load_sample("sn6-1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = tc.open_scene(write_sample_item(sample, tmp))
        pan, ms = scene_arrays(scene)
        sensor, ratio = scene.attrs["sensor"], int(scene.attrs["ratio"])
        nodata = scene.attrs.get("nodata")
        halo = default_halo_px(ratio)

        t0 = time.perf_counter()
        whole = tc.pansharpen(pan, ms, sensor, method="trapan", config=config, seed=0, dtype=np.float64)
        t_whole = time.perf_counter() - t0
        whole = np.clip(np.rint(whole), 0, tc.get_sensor(sensor).max_dn)  # the store's uint16 DN, for a fair score
        s_whole = score_full_resolution(whole, pan, ms, sensor, ratio, nodata)
        rows.append(("whole image (`tc.pansharpen`)", config.rao_steps, s_whole, seam_index(whole, args.tile),
                     t_whole, "1 process"))

        runs = [(args.tile, config)]
        for tile in args.also:
            runs.append((tile, config))
            runs.append((tile, replace(config, rao_steps=matched_steps(config, pan.shape, plan_tiles(
                pan.shape, ratio, tile, halo)))))
        client, _ = get_client(n_workers=args.workers)
        try:
            for k, (tile, cfg) in enumerate(runs):
                t0 = time.perf_counter()
                result = tc.run(scene, f"{tmp}/tiled{k}.zarr", config=cfg, client=client, tile=tile, seed=0)
                secs = time.perf_counter() - t0
                tiled = np.asarray(tc.open_result(f"{tmp}/tiled{k}.zarr")["fused"].values, dtype=np.float64)
                rows.append((f"tiled ({tile}-px cores, {halo}-px halo, `tc.run`)", cfg.rao_steps,
                             score_full_resolution(tiled, pan, ms, sensor, ratio, nodata), seam_index(tiled, tile),
                             secs, f"{result.tiles_total} tiles, {args.workers} workers"))
        finally:
            client.close()

    body = [f"Scene: bundled SpaceNet 6 tile sn6-1 (WorldView-2, 600×600 PAN, ratio 4), preset `{args.preset}` "
            f"({config.crop_px}-px training crops), seed 0; indices on the {s_whole['window_px']} window, fused values "
            "rounded to uint16 DN as stored. HQNR Δ is tiled − whole; the seam index of the whole image is measured on "
            f"the {args.tile}-px grid as the no-seam reference level.", "",
            "| run | Stage-2 steps per tile | HQNR | Δ HQNR | D_λ^K | D_s | seam index | seconds | layout |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, steps, s, seam, secs, layout in rows:
        delta = "" if name.startswith("whole") else f"{s['HQNR'] - s_whole['HQNR']:+.4f}"
        body.append(f"| {name} | {steps} | {s['HQNR']:.4f} | {delta} | {s['D_lambda_K']:.4f} | {s['D_s']:.4f} | "
                    f"{seam:.3f} | {secs:.0f} | {layout} |")
    judged = rows[1]
    diff = judged[2]["HQNR"] - s_whole["HQNR"]
    body += ["", f"At `trapan run`'s default core ({args.tile} px): HQNR tiled − whole {diff:+.4f} (goal |Δ| ≤ 0.005: "
             f"{'met' if abs(diff) <= 0.005 else 'NOT met'}); seam index {judged[3]:.3f} (goal ≤ 1.10: "
             f"{'met' if judged[3] <= 1.10 else 'NOT met'}).", "",
             "Why smaller cores score lower with the same config: Stage 2 trains a fixed number of steps on "
             f"{config.crop_px}-px crops, so a tile smaller than the scene is trained more per pixel than the whole "
             "image is (more passes over each pixel), and with the MSE losses more training adds PAN detail that "
             "raises D_s. The density-matched rows give each tile the whole image's passes per pixel "
             "(`matched_steps`), which removes the difference: the gap is training density, not blending."]
    write_section("tiling", command, "\n".join(body))
    print("\n".join(body))
    return 0


def matched_steps(config, shape: tuple[int, int], plan) -> int:
    """Stage-2 steps that give the plan's largest tile (ext window) the whole image's passes per pixel.

    One step trains on ``batch`` crops of ``crop_px``² (or the whole tile when it is smaller), so passes per pixel
    are steps × trained area / tile area.
    """
    def trained(h: int, w: int) -> int:
        c = config.crop_px
        return h * w if c <= 0 or (c >= h and c >= w) else min(c, h) * min(c, w) * config.batch

    passes = config.rao_steps * trained(*shape) / (shape[0] * shape[1])
    h, w = max((t.ext_shape for t in plan.tiles), key=lambda hw: hw[0] * hw[1])
    return max(1, round(passes * h * w / trained(h, w)))


if __name__ == "__main__":
    raise SystemExit(main())
