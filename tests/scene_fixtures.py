"""Tiny real COGs and real-shaped STAC items for tests (imported by the scene and pipeline tests).

Every item is a clone of a real one in ``tests/data/stac`` whose grid fields and hrefs are rewritten to point at tiny
COGs written here with rio-cogeo, on the item's own CRS, pixel sizes and grid layout (corner-aligned Maxar,
half-pixel-inset USGS/DEA PAN with 2n - 1 pixels, CBERS without any ``proj:`` field). Assets that a loader should
never open (thumbnails, QA bands, unused bands) are pointed at files that do not exist.

Main helpers: `write_cog(path, array, transform, crs, nodata)`, `load_item(stem)`, `write_sample_cogs(directory,
sample)`, and the item builders `maxar_item`, `usgs_item`, `dea_item`, `cbers_item`, `gf2_item`, each returning a
`SceneFiles`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from trapan_cloud import geotiff, samples

STAC_DIR = Path(__file__).parent / "data" / "stac"

MAXAR_RAW = "maxar_17_031331303211_10300100DB064000"
MAXAR_MIGRATED = "maxar_11_031311102001_103001010A705C00"
USGS = "usgs-landsat-c2l1_LC09_L1TP_166072_20220203_20220203_02_T1"
DEA = "dea_ga_ls8c_ard_3-1-0_088080_2020-05-25_final"
CBERS = "cbers-stac_CBERS_4A_WPM_20200730_209_139_L4"
GF2 = "terradue-stars_GF2_PMS1_W91.0_N17.6_20200510_L1A0004793969"


@dataclass(frozen=True)
class SceneFiles:
    """A rewritten item and the arrays written for it."""

    item: dict[str, Any]
    """The rewritten item (also saved at ``item_path``)."""
    item_path: Path
    pan: np.ndarray
    """(H, W) PAN as written (native grid, before any alignment crop)."""
    ms: np.ndarray
    """(B, h, w) MS as written, bands in the order the loader should return them."""
    pan_transform: Affine
    ms_transform: Affine
    crs: str


def write_cog(path: str | Path, array: np.ndarray, transform: Affine, crs: str, nodata: float | None = None,
              blocksize: int = 64) -> Path:
    """The package's COG writer with small internal tiles for tiny tests."""
    return Path(geotiff.write_cog(str(path), array, transform, crs, nodata, blocksize=blocksize))


def random_dn(shape: tuple[int, ...], seed: int, dtype: str = "uint16", high: int = 2047) -> np.ndarray:
    """Seeded DN in [1, high]: every pixel differs from its neighbours, so an offset by one pixel shows."""
    return np.random.default_rng(seed).integers(1, high + 1, size=shape).astype(dtype)


def load_item(stem: str) -> dict[str, Any]:
    """A fresh deep copy of the real item ``tests/data/stac/<stem>.json``."""
    return copy.deepcopy(json.loads((STAC_DIR / f"{stem}.json").read_text()))


def write_sample_cogs(directory: str | Path, sample: Any, split_ms: bool = False) -> tuple[Path, Path | list[Path]]:
    """Write a `trapan_cloud.samples.Sample` as ``pan.tif`` + ``ms.tif`` (or ``ms_<band>.tif`` per band)."""
    d = Path(directory)
    pan = write_cog(d / "pan.tif", sample.pan, sample.pan_transform, sample.crs, sample.nodata)
    if split_ms:
        ms = [write_cog(d / f"ms_{name}.tif", sample.ms[i], sample.ms_transform, sample.crs, sample.nodata)
              for i, name in enumerate(sample.band_names)]
        return pan, ms
    return pan, write_cog(d / "ms.tif", sample.ms, sample.ms_transform, sample.crs, sample.nodata)


def _save(d: Path, item: dict[str, Any], name: str = "item.json") -> Path:
    path = d / name
    path.write_text(json.dumps(item))
    return path


def _missing_everywhere(item: dict[str, Any], d: Path, keep: set[str]) -> None:
    """Point every asset not in ``keep`` at a file that does not exist (opening one would fail the test)."""
    for key, asset in item["assets"].items():
        if key not in keep:
            asset["href"] = str(d / "never-opened" / f"{key.replace(':', '_')}.tif")


def maxar_item(directory: str | Path, nbands: int = 8, migrated: bool = False, size_ms: int = 32,
               seed: int = 0) -> SceneFiles:
    """Maxar ARD tile: ``pan_analytic`` + multi-band ``ms_analytic`` (no raster:bands), corner-aligned, ratio 4.

    ``migrated=True`` clones the pystac-migrated item (``proj:code`` only, absolute self link, relative hrefs).
    Hrefs stay relative (``./<id>-pan.tif``) and the COGs sit next to the saved item.
    """
    d = Path(directory)
    item = load_item(MAXAR_MIGRATED if migrated else MAXAR_RAW)
    pan_t = Affine(*item["assets"]["pan_analytic"]["proj:transform"][:6])
    ms_t = Affine(*item["assets"]["ms_analytic"]["proj:transform"][:6])
    crs = item["properties"].get("proj:code") or f"EPSG:{item['properties']['proj:epsg']}"
    pan = random_dn((4 * size_ms, 4 * size_ms), seed)
    ms = random_dn((nbands, size_ms, size_ms), seed + 1)
    for key, arr, t in (("pan_analytic", pan, pan_t), ("ms_analytic", ms, ms_t)):
        asset = item["assets"][key]
        write_cog(d / asset["href"], arr, t, crs)
        shape = arr.shape[-2:]
        asset["proj:shape"] = list(shape)
        asset["proj:bbox"] = [t.c, t.f + t.e * shape[0], t.c + t.a * shape[1], t.f]
    return SceneFiles(item, _save(d, item), pan, ms, pan_t, ms_t, crs)


def _landsat_grids(item: dict[str, Any], pan_key: str) -> tuple[Affine, Affine]:
    props = item["properties"]
    pan_t = Affine(*(item["assets"][pan_key].get("proj:transform") or props["proj:transform"])[:6])
    return pan_t, Affine(*props["proj:transform"][:6])


def usgs_item(directory: str | Path, size_ms: int = 32, seed: int = 10) -> SceneFiles:
    """USGS Landsat 9 C2 L1: per-band assets, item-level 30 m grid (6-element transform), PAN override inset by
    7.5 m with 2n - 1 pixels. Only pan/blue/green/red/nir08 exist on disk."""
    d = Path(directory)
    item = load_item(USGS)
    pan_t, ms_t = _landsat_grids(item, "pan")
    crs = f"EPSG:{item['properties']['proj:epsg']}"
    item["properties"]["proj:shape"] = [size_ms, size_ms]
    item["assets"]["pan"]["proj:shape"] = [2 * size_ms - 1, 2 * size_ms - 1]
    pan = random_dn((2 * size_ms - 1, 2 * size_ms - 1), seed, high=65535)
    ms = random_dn((4, size_ms, size_ms), seed + 1, high=65535)
    write_cog(d / "B8.TIF", pan, pan_t, crs)
    item["assets"]["pan"]["href"] = str(d / "B8.TIF")
    for i, key in enumerate(("blue", "green", "red", "nir08")):
        item["assets"][key]["href"] = str(write_cog(d / f"{key}.TIF", ms[i], ms_t, crs))
    _missing_everywhere(item, d, {"pan", "blue", "green", "red", "nir08"})
    return SceneFiles(item, _save(d, item), pan, ms, pan_t, ms_t, crs)


def dea_item(directory: str | Path, size_ms: int = 32, seed: int = 20) -> SceneFiles:
    """DEA Landsat 8 ARD: per-band ``nbart_*`` assets without common names, every asset with its own 9-element
    grid, PAN inset by 7.5 m with 2n - 1 pixels. Only panchromatic/blue/green/red/nir exist on disk."""
    d = Path(directory)
    item = load_item(DEA)
    pan_t, ms_t = _landsat_grids(item, "nbart_panchromatic")
    crs = f"EPSG:{item['properties']['proj:epsg']}"
    item["properties"]["proj:shape"] = [size_ms, size_ms]
    for key, asset in item["assets"].items():
        if "proj:shape" in asset:
            asset["proj:shape"] = [size_ms, size_ms]
    item["assets"]["nbart_panchromatic"]["proj:shape"] = [2 * size_ms - 1, 2 * size_ms - 1]
    pan = random_dn((2 * size_ms - 1, 2 * size_ms - 1), seed, dtype="int16", high=10000)
    ms = random_dn((4, size_ms, size_ms), seed + 1, dtype="int16", high=10000)
    item["assets"]["nbart_panchromatic"]["href"] = str(write_cog(d / "pan.tif", pan, pan_t, crs, nodata=-999))
    keep = {"nbart_panchromatic"}
    for i, key in enumerate(("nbart_blue", "nbart_green", "nbart_red", "nbart_nir")):
        item["assets"][key]["href"] = str(write_cog(d / f"{key}.tif", ms[i], ms_t, crs, nodata=-999))
        keep.add(key)
    _missing_everywhere(item, d, keep)
    return SceneFiles(item, _save(d, item), pan, ms, pan_t, ms_t, crs)


def cbers_item(directory: str | Path, size_ms: int = 32, seed: int = 30) -> SceneFiles:
    """CBERS-4A WPM: per-band B0 (pan, 2 m) + B1..B4 (8 m), no proj:shape/transform anywhere, no roles, a PNG
    thumbnail; the grids exist only in the files (corner-aligned, ratio 4)."""
    d = Path(directory)
    item = load_item(CBERS)
    crs = f"EPSG:{item['properties']['proj:epsg']}"
    pan_t = Affine(2.0, 0.0, 300000.0, 0.0, -2.0, 7400000.0)
    ms_t = Affine(8.0, 0.0, 300000.0, 0.0, -8.0, 7400000.0)
    pan = random_dn((4 * size_ms, 4 * size_ms), seed, dtype="uint8", high=255)
    ms = random_dn((4, size_ms, size_ms), seed + 1, dtype="uint8", high=255)
    item["assets"]["B0"]["href"] = str(write_cog(d / "B0.tif", pan, pan_t, crs, nodata=0))
    for i in range(4):
        item["assets"][f"B{i + 1}"]["href"] = str(write_cog(d / f"B{i + 1}.tif", ms[i], ms_t, crs, nodata=0))
    _missing_everywhere(item, d, {"B0", "B1", "B2", "B3", "B4"})
    return SceneFiles(item, _save(d, item), pan, ms, pan_t, ms_t, crs)


def gf2_item(directory: str | Path) -> Path:
    """GaoFen-2 L1A item (``proj:epsg: null``, no transform, RPC sidecars), saved unchanged; no files exist."""
    return _save(Path(directory), load_item(GF2))


def make_scene(pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int, nodata: float | None = 0,
               chunks: int = 64) -> Any:
    """An in-memory `Scene` (dask-backed, PAN/MS blocks aligned) on a UTM 31N grid, corner-aligned at ratio ``ratio``
    with 0.5-m PAN pixels."""
    import dask.array as da
    import xarray as xr

    from trapan_cloud.scene import Scene, SceneMeta

    bands = tuple(f"b{i + 1}" for i in range(ms.shape[0]))
    meta = SceneMeta(sensor=sensor, ratio=ratio, crs="EPSG:32631",
                     pan_transform=(0.5, 0.0, 594000.0, 0.0, -0.5, 5753000.0),
                     ms_transform=(0.5 * ratio, 0.0, 594000.0, 0.0, -0.5 * ratio, 5753000.0), band_names=bands,
                     nodata=nodata)
    return Scene(xr.DataArray(da.from_array(pan, chunks=chunks), dims=("y", "x")),
                 xr.DataArray(da.from_array(ms, chunks=(1, chunks // ratio, chunks // ratio)),
                              dims=("band", "y_ms", "x_ms"), coords={"band": list(bands)}), meta)


def block_local(pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int) -> np.ndarray:
    """Zero-reach fusion: each MS pixel's value times PAN / (mean of PAN over that MS pixel's block)."""
    B, h, w = ms.shape
    blocks = pan.reshape(h, ratio, w, ratio)
    gain = (blocks / (blocks.mean(axis=(1, 3), keepdims=True) + 1.0)).reshape(h * ratio, w * ratio)
    return np.repeat(np.repeat(ms, ratio, axis=1), ratio, axis=2) * gain[None]
