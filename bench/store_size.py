"""Store size against product size on the bundled demo scene (issue 16.2; goal: <= 1.2 for a uint16 product).

    .venv/bin/python bench/store_size.py [--preset default] [--method trapan] [--workdir DIR] [--no-write]

Runs the demo scene (``samples.load_sample("sn6-1")``, the 600 x 600 PAN / 4-band WorldView-2 crop ``trapan demo``
uses, tile 512 as the demo) once with the default settings (stage-A tiles removed at completion) and once with
``keep_tiles``, exports the COG, and reports, in bytes of the stored objects (file sizes, not disk blocks):

- **store / fused**: every object of the store (metadata, ``fused``, coordinates, ``run/`` state with the prior and
  the QA arrays, the STAC item) over the objects of the ``fused`` array alone (its compressed chunks and metadata):
  what keeping the run state costs on top of the product. This is the figure the goal applies to.
- **store / COG**: the same over the exported Cloud-Optimized GeoTIFF (deflate, with overviews).
- **fused / raw**: the compression of the product itself (raw = bands x H x W x 2 bytes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import write_section  # noqa: E402


def tree_bytes(path: str) -> int:
    """Total size of the files under ``path`` (or of the file ``path``)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def measure(workdir: str, preset: str, method: str) -> list[dict]:
    """Run the demo scene with and without ``keep_tiles`` and return one row of sizes per run."""
    import numpy as np

    from trapan_cloud.cluster import client_for
    from trapan_cloud.method.config import TrapanConfig
    from trapan_cloud.runner import RunOptions, run
    from trapan_cloud.samples import load_sample, write_sample_item
    from trapan_cloud.store import export_cog, open_result

    item = write_sample_item(load_sample("sn6-1"), os.path.join(workdir, "inputs"))
    rows = []
    with client_for(None) as client:
        for keep in (False, True):
            out = os.path.join(workdir, f"keep_{keep}.zarr")
            opts = RunOptions(config=getattr(TrapanConfig, preset)(), method=method, keep_tiles=keep)
            result = run(item, out, client=client, options=opts)
            assert result.complete, "the run did not complete"
            cog = export_cog(out, os.path.join(workdir, f"keep_{keep}.tif"))
            fused = open_result(out)["fused"]
            raw = int(np.prod(fused.shape)) * fused.dtype.itemsize
            rows.append({"keep_tiles": keep, "store": tree_bytes(out), "fused": tree_bytes(os.path.join(out, "fused")),
                         "run": tree_bytes(os.path.join(out, "run")),
                         "prior": tree_bytes(os.path.join(out, "run", "prior")), "cog": tree_bytes(cog), "raw": raw,
                         "tiles": result.tiles_total, "shape": "x".join(map(str, fused.shape))})
    return rows


def table(rows: list[dict], preset: str, method: str) -> str:
    lines = [f"Demo scene sn6-1 (fused {rows[0]['shape']} uint16, {rows[0]['tiles']} tiles of 512 px), method "
             f"`{method}`" + (f", preset `{preset}`" if method == "trapan" else "") + ". Bytes of the stored objects.",
             "",
             "| stage-A tiles | store bytes | fused bytes | run/ bytes (prior) | COG bytes | **store / fused** | "
             "store / COG | fused / raw |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'kept (--keep-tiles)' if r['keep_tiles'] else 'removed (default)'} | {r['store']:,} | "
                     f"{r['fused']:,} | {r['run']:,} ({r['prior']:,}) | {r['cog']:,} | "
                     f"**{r['store'] / r['fused']:.3f}** | {r['store'] / r['cog']:.3f} | {r['fused'] / r['raw']:.3f} |")
    default = rows[0]["store"] / rows[0]["fused"]
    lines += ["", f"Goal store / fused <= 1.2 for a uint16 product: {default:.3f} with the default settings "
              f"({'met' if default <= 1.2 else '**not met**'})."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", help="TrapanConfig preset (method trapan)")
    parser.add_argument("--method", default="trapan", help="a tileable method name")
    parser.add_argument("--workdir", default=None, help="keep the stores here (default: a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trapan_size_") as tmp:
        body = table(measure(args.workdir or tmp, args.preset, args.method), args.preset, args.method)
    print(body)
    if not args.no_write:
        command = " ".join(["python bench/store_size.py", *sys.argv[1:]])
        write_section("store size", command, body)


if __name__ == "__main__":
    main()
