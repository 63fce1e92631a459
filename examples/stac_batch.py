"""Pansharpen every item of a STAC catalog (or ItemCollection), one resumable Zarr store per item.

Without ``--catalog`` the example first writes a small local STAC catalog of the three bundled SpaceNet 6 WorldView-2
tiles (sn6-1, sn6-2, sn6-3, cropped to ``--size`` MS pixels, as Cloud-Optimized GeoTIFFs), so it runs offline.
Run it twice: the second run finds every store complete and computes nothing. Kill it midway and run it again: only
the unfinished items' missing tiles are computed.

    python examples/stac_batch.py --out stac-batch-out --preset fast
    python examples/stac_batch.py --catalog https://example.org/stac/catalog.json --out s3://bucket/fused/ \\
        --scheduler tcp://scheduler:8786
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import trapan_cloud as tc

SAMPLE_WINDOWS = {"sn6-1": (0, 0), "sn6-2": (86, 29), "sn6-3": (86, 86)}
"""Fully valid MS (row, col) origins in each bundled tile (tiles 2 and 3 are ~35 % nodata elsewhere)."""


def build_sample_catalog(out_dir: str, size_ms: int = 32) -> str:
    """Write the bundled SpaceNet tiles as COGs + a self-contained STAC catalog under ``out_dir``; return its path.

    Each item lives in its own folder ``{out_dir}/{item id}/`` next to its COGs, which is where pystac puts a
    self-contained catalog's items, so the items' relative asset hrefs stay valid after saving.
    """
    import pystac

    from trapan_cloud.samples import load_sample, write_sample_item

    catalog = pystac.Catalog("trapan-samples",
                             "Bundled SpaceNet 6 WorldView-2 tiles (SpaceNet LLC / Maxar, CC BY-SA 4.0)")
    for name, (row, col) in SAMPLE_WINDOWS.items():
        crop = load_sample(name).crop(name, row, col, size_ms)
        path = write_sample_item(crop, os.path.join(out_dir, f"trapan-sample-{name}"))
        item = pystac.Item.from_file(path)
        os.remove(path)  # saved again below under the catalog's layout ({id}/{id}.json)
        catalog.add_item(item)
    catalog.normalize_and_save(out_dir, pystac.CatalogType.SELF_CONTAINED)
    return os.path.join(out_dir, "catalog.json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog", help="STAC catalog/collection/ItemCollection path or URL (default: the bundled tiles)")
    p.add_argument("--out", default="stac-batch-out", help="output folder or fsspec prefix (stores: OUT/ITEM.zarr)")
    p.add_argument("--preset", choices=("fast", "default", "paper"), default="default", help="TRA-PAN preset")
    p.add_argument("--method", default="trapan", help="trapan, or a classical method (exp, gsa, mtf-glp-hpm, ...)")
    p.add_argument("--scheduler", help="Dask scheduler address (default: an embedded local cluster)")
    p.add_argument("--tile", type=int, default=512, help="core tile side in PAN pixels")
    p.add_argument("--overlap", type=int, default=None, help="halo per side in PAN pixels")
    p.add_argument("--size", type=int, default=32, help="MS pixels per side of the bundled crops (no --catalog)")
    p.add_argument("--json", help="also write the summary as JSON to this file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("distributed").setLevel(logging.WARNING)

    catalog = args.catalog
    if catalog is None:
        catalog = os.path.join(args.out, "catalog", "catalog.json")
        if not os.path.exists(catalog):  # reuse it on re-runs: the stores' manifests name these inputs
            build_sample_catalog(os.path.dirname(catalog), args.size)
    config = getattr(tc.TrapanConfig, args.preset)() if args.method == "trapan" else None

    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    try:
        result = tc.run_batch(catalog, args.out, config=config, client=client, method=args.method, tile=args.tile,
                              overlap=args.overlap)
    finally:
        if client is not None:
            client.close()
    print(result.table())
    if args.json:
        with open(args.json, "w") as f:
            f.write(result.to_json())
    return 1 if result.failed else 0


if __name__ == "__main__":  # worker processes re-import this file: start clusters only under this guard
    sys.exit(main())
