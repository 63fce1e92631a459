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
            pan_transform=self.pan_transform * Affine.translation(pc, pr),
            ms_transform=self.ms_transform * Affine.translation(col_ms, row_ms),
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
