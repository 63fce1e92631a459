"""The Python API end to end: open a STAC item, pansharpen it tile by tile on Dask, open the georeferenced result
with xarray and write a true-colour quicklook PNG.

Without ``--stac`` the example writes a crop of a bundled SpaceNet 6 WorldView-2 tile (SpaceNet LLC / Maxar,
CC BY-SA 4.0) as two COGs + a STAC item, so it runs offline. Without ``--scheduler`` `trapan_cloud.run` starts an
embedded local Dask cluster and closes it at the end.

    python examples/python_api.py --out api-out --preset fast
    python examples/python_api.py --stac https://example.org/items/scene.json --out api-out \\
        --scheduler tcp://127.0.0.1:8786
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np

import trapan_cloud as tc


def write_quicklook(fused, path: str) -> str:
    """Save a 2–98 % stretched true-colour PNG of a fused ``(band, y, x)`` DataArray, nodata (0) shown black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(b).lower() for b in fused["band"].values]
    order = [names.index(c) for c in ("red", "green", "blue")] if {"red", "green", "blue"} <= set(names) else [0, 1, 2]
    rgb = np.asarray(fused.isel(band=order).values, dtype=np.float64)
    valid = (rgb > 0).all(axis=0)
    out = np.zeros_like(rgb)
    for i, band in enumerate(rgb):
        lo, hi = np.percentile(band[valid] if valid.any() else band, [2, 98])
        out[i] = np.clip((band - lo) / max(hi - lo, 1e-9), 0, 1) * valid
    plt.imsave(path, np.moveaxis(out, 0, -1))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stac", help="STAC item path or URL (default: a bundled sample written as COGs)")
    p.add_argument("--sample", default="sn6-1", choices=("sn6-1", "sn6-2", "sn6-3"), help="bundled tile (no --stac)")
    p.add_argument("--size", type=int, default=128, help="MS pixels per side of the bundled crop (PAN: 4x)")
    p.add_argument("--out", default="api-out", help="output folder: inputs/, fused.zarr, quicklook.png")
    p.add_argument("--preset", choices=("fast", "default", "paper"), default="default", help="TRA-PAN preset")
    p.add_argument("--method", default="trapan", help="trapan, or a classical method (exp, gsa, mtf-glp-hpm, ...)")
    p.add_argument("--scheduler", help="Dask scheduler address (default: an embedded local cluster)")
    p.add_argument("--tile", type=int, default=256, help="core tile side in PAN pixels")
    p.add_argument("--overlap", type=int, default=None, help="halo per side in PAN pixels")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    os.makedirs(args.out, exist_ok=True)

    item = args.stac
    if item is None:
        from trapan_cloud.samples import load_sample, write_sample_item

        crop = load_sample(args.sample).crop(args.sample, 0, 0, args.size)
        item = write_sample_item(crop, os.path.join(args.out, "inputs"))

    scene = tc.open_scene(item)  # lazy: PAN and MS on their native grids, nothing read yet
    print(f"scene: {scene.attrs['sensor']}, ratio {scene.attrs['ratio']}, PAN {scene['pan'].shape}, "
          f"MS {scene['ms'].shape}")

    config = getattr(tc.TrapanConfig, args.preset)() if args.method == "trapan" else None
    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    store = os.path.join(args.out, "fused.zarr")
    try:
        result = tc.run(scene, store, config=config, client=client, tile=args.tile, overlap=args.overlap,
                        method=args.method, overwrite=True)
    finally:
        if client is not None:
            client.close()
    print(result.summary())

    fused = tc.open_result(store)  # xarray.Dataset; rioxarray reads the CRS and transform back
    print(f"result: {dict(fused['fused'].sizes)}, CRS {fused.rio.crs}, transform {tuple(fused.rio.transform())[:6]}")
    png = write_quicklook(fused["fused"], os.path.join(args.out, "quicklook.png"))
    print(f"quicklook: {png}")
    return 0 if result.complete else 1


if __name__ == "__main__":  # worker processes re-import this file: start clusters only under this guard
    sys.exit(main())
