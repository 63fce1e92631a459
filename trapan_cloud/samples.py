"""The real PAN + MS samples bundled with the package (``trapan_cloud/data``), and the evaluation crops.

Two real sources (provenance and licences in ``data/README.md`` and each folder's README):

* SpaceNet 6 Rotterdam, Maxar WorldView-2, 4 bands (B, G, R, NIR1), ratio 4, 11-bit, CC-BY-SA-4.0
  ("SpaceNet 6, SpaceNet LLC / Maxar, CC BY-SA 4.0"). Three 600x600 PAN tiles; tiles 2 and 3 are ~35 % nodata (0).
  Corner-aligned grids: the MS pixel centre u sits at PAN 4u + 1.5 (the toolbox assumes 4u + 2).
* Landsat 8 OLI C2 L1TP, Momotombo, 4 bands (B2-B5), ratio 2, 16-bit DN, CC0 / USGS public domain.
  Centre-aligned: the centre of MS pixel (i, j) is the centre of PAN pixel (2i + 1, 2j).

`bench_crops` returns the fully valid evaluation windows used by ``bench/`` and the tests: the two SpaceNet crops of
``reference/ANCHORS.md`` (so our numbers can be set beside the anchors), a third SpaceNet window, and a Landsat crop cut
so that its PAN/MS phase is the toolbox's (MS pixel u on PAN 2u + 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources

import numpy as np
from affine import Affine

from .errors import InputError
from .geotiff import write_cog
from .stac_items import EO_V1, PROJ_V1, RASTER_V1, feature

_COMMON = {"nir1": "nir", "nir08": "nir"}  # STAC eo common names of our band names
SN6_ATTRIBUTION = "SpaceNet 6, SpaceNet LLC / Maxar, CC BY-SA 4.0"
L8_ATTRIBUTION = "Landsat 8 data courtesy of the U.S. Geological Survey (public domain); crop from compgeolab/xlandsat, CC0"


@dataclass(frozen=True)
class Sample:
    """One real PAN + MS pair on its native grids."""

    name: str
    pan: np.ndarray
    """(H, W) uint16 DN."""
    ms: np.ndarray
    """(B, h, w) uint16 DN, H = ratio*h."""
    sensor: str
    ratio: int
    crs: str
    pan_transform: Affine
    ms_transform: Affine
    nodata: int
    band_names: tuple[str, ...]
    attribution: str

    def crop(self, name: str, row_ms: int, col_ms: int, size_ms: int, pan_offset: tuple[int, int] = (0, 0)) -> Sample:
        """An MS-aligned window of ``size_ms`` MS pixels starting at MS (row, col); PAN follows at ``ratio`` x.

        ``pan_offset`` shifts the PAN window by whole PAN pixels (used to put Landsat on the toolbox phase).
        """
        r = self.ratio
        pr, pc = r * row_ms + pan_offset[0], r * col_ms + pan_offset[1]
        n = r * size_ms
        if pr < 0 or pc < 0 or pr + n > self.pan.shape[0] or pc + n > self.pan.shape[1]:
            raise InputError(f"crop {name}: PAN window out of range for {self.name}")
        if row_ms + size_ms > self.ms.shape[1] or col_ms + size_ms > self.ms.shape[2]:
            raise InputError(f"crop {name}: MS window out of range for {self.name}")
        return replace(
            self,
            name=name,
            pan=self.pan[pr : pr + n, pc : pc + n],
            ms=self.ms[:, row_ms : row_ms + size_ms, col_ms : col_ms + size_ms],
            pan_transform=self.pan_transform @ Affine.translation(pc, pr),
            ms_transform=self.ms_transform @ Affine.translation(col_ms, row_ms),
        )


def _data(*parts: str):
    return resources.files("trapan_cloud").joinpath("data", *parts)


def load_sample(name: str) -> Sample:
    """Load a bundled sample: ``"sn6-1"``, ``"sn6-2"``, ``"sn6-3"`` (WorldView-2) or ``"l8-momotombo"`` (Landsat 8)."""
    if name.startswith("sn6-") and name[4:] in ("1", "2", "3"):
        k = name[4:]
        with _data("spacenet6_rotterdam_wv2", "sn6_native_pairs.npz").open("rb") as f:
            z = np.load(f, allow_pickle=False)
            pan, ms = z[f"pan_{k}"], z[f"ms_{k}"]
        geo = json.loads(_data("spacenet6_rotterdam_wv2", "georef.json").read_text())
        t = geo["tiles"][k]
        return Sample(name, pan, ms, "WV2", 4, geo["crs"], Affine(*t["pan_transform"]), Affine(*t["ms_transform"]), 0,
                      ("blue", "green", "red", "nir1"), SN6_ATTRIBUTION)
    if name == "l8-momotombo":
        with _data("landsat8_momotombo_2015", "l8_momotombo_pairs.npz").open("rb") as f:
            z = np.load(f, allow_pickle=False)
            pan, ms = z["pan"], z["ms"]
        # MTL: MS pixel (0,0) centre at E 543990, N 1378980 (30 m); PAN pixel (2i+1, 2j) shares that centre (15 m).
        ms_t = Affine(30.0, 0.0, 543990.0 - 15.0, 0.0, -30.0, 1378980.0 + 15.0)
        pan_t = Affine(15.0, 0.0, 543990.0 - 7.5, 0.0, -15.0, 1378980.0 + 15.0 + 7.5)
        return Sample(name, pan, ms, "Landsat8", 2, "EPSG:32616", pan_t, ms_t, 0,
                      ("blue", "green", "red", "nir08"), L8_ATTRIBUTION)
    raise InputError(f"sample: unknown sample {name!r}; known: sn6-1, sn6-2, sn6-3, l8-momotombo")


def bench_crops() -> list[Sample]:
    """The fully valid evaluation windows (PAN sides multiples of 32, as HQNR needs)."""
    return [
        load_sample("sn6-1").crop("SN6-t1", 0, 0, 128),
        load_sample("sn6-2").crop("SN6-t2", 86, 29, 64),
        load_sample("sn6-3").crop("SN6-t3", 86, 86, 64),
        # PAN row 2i+1 / column 2j carry MS (i, j); the toolbox wants 2u+1 on both axes: shift PAN one column left.
        load_sample("l8-momotombo").crop("L8-momotombo", 39, 106, 256, pan_offset=(0, -1)),
    ]


def write_sample_item(sample: Sample, out_dir: str) -> str:
    """Write ``sample`` as two COGs (PAN, multi-band MS) plus a STAC item JSON next to them; return the item path.

    The item follows the Maxar layout (``pan_analytic`` + ``ms_analytic`` with ``eo:bands``, ``raster:bands`` and
    projection fields), with relative asset hrefs, so the demo exercises the same loader as real catalogs.
    """
    import os

    from pyproj import CRS, Transformer

    os.makedirs(out_dir, exist_ok=True)
    stem = sample.name.lower()
    pan_path = write_cog(os.path.join(out_dir, f"{stem}-pan.tif"), sample.pan, sample.pan_transform, sample.crs,
                         sample.nodata, ("pan",))
    ms_path = write_cog(os.path.join(out_dir, f"{stem}-ms.tif"), sample.ms, sample.ms_transform, sample.crs,
                        sample.nodata, sample.band_names)
    H, W = sample.pan.shape
    t = sample.pan_transform
    x0, y0, x1, y1 = t.c, t.f + t.e * H, t.c + t.a * W, t.f
    to_ll = Transformer.from_crs(CRS.from_user_input(sample.crs), "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(x0, y0)
    lon1, lat1 = to_ll.transform(x1, y1)
    epsg = CRS.from_user_input(sample.crs).to_epsg()
    platform = {"WV2": "worldview-2", "Landsat8": "landsat-8"}.get(sample.sensor, sample.sensor.lower())

    def grid(arr: np.ndarray, tr: Affine) -> dict:
        h, w = arr.shape[-2:]
        return {"proj:shape": [h, w], "proj:transform": list(tr)[:6] + [0.0, 0.0, 1.0],
                "proj:bbox": [tr.c, tr.f + tr.e * h, tr.c + tr.a * w, tr.f]}

    raster = lambda n: [{"data_type": "uint16", "nodata": sample.nodata}] * n  # noqa: E731
    assets = {
            "pan_analytic": {"href": f"./{os.path.basename(pan_path)}", "type": "image/tiff; application=geotiff; "
                             "profile=cloud-optimized", "roles": ["data"],
                             "eo:bands": [{"name": "pan", "common_name": "pan"}], "raster:bands": raster(1),
                             **grid(sample.pan, sample.pan_transform)},
            "ms_analytic": {"href": f"./{os.path.basename(ms_path)}", "type": "image/tiff; application=geotiff; "
                            "profile=cloud-optimized", "roles": ["data"],
                            "eo:bands": [{"name": b, "common_name": _COMMON.get(b, b)}
                                         for b in sample.band_names],
                            "raster:bands": raster(len(sample.band_names)), **grid(sample.ms, sample.ms_transform)},
    }
    item = feature(f"trapan-sample-{stem}", datetime="2019-08-31T00:00:00Z", assets=assets,
                   properties={"platform": platform, "proj:epsg": epsg, "sci:citation": sample.attribution},
                   bbox=[min(lon0, lon1), min(lat0, lat1), max(lon0, lon1), max(lat0, lat1)],
                   extensions=(EO_V1, PROJ_V1, RASTER_V1))
    path = os.path.join(out_dir, f"{stem}.json")
    with open(path, "w") as f:
        json.dump(item, f, indent=1)
    return path
