"""The product the ecosystem reads (issue 16) and the store's integrity (issue 15), on real runs of the bundled
WorldView-2 crop with a classical method (3 x 3 tiles, a real 2-worker cluster).

Expected values come from the inputs (the sample's PAN grid, CRS, band names and nodata) and from an undisturbed run
of the same scene: a repaired store must hold byte-identical ``fused`` chunks.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from trapan_cloud.cli import main
from trapan_cloud.errors import CorruptStoreError
from trapan_cloud.runner import RunOptions, resume, run
from trapan_cloud.samples import load_sample, write_sample_item
from trapan_cloud.store import open_result, open_store

TILE, HALO = 80, 16  # 240 px = 3 x 3 tiles


@pytest.fixture(scope="module")
def sample():
    return load_sample("sn6-1").crop("prod", 0, 0, 60)  # PAN 240 x 240 at 0.5 m, MS 4 x 60 x 60


@pytest.fixture(scope="module")
def item(sample, tmp_path_factory) -> str:
    return write_sample_item(sample, str(tmp_path_factory.mktemp("inputs")))


@pytest.fixture(scope="module")
def stores(item, client, tmp_path_factory) -> dict[str, str]:
    """One run with the default settings (stage-A tiles removed) and one with ``keep_tiles``."""
    root = tmp_path_factory.mktemp("product")
    out = {}
    for name, keep in (("base", False), ("kept", True)):
        opts = RunOptions(tile_px=TILE, halo_px=HALO, method="mtf-glp-fs", keep_tiles=keep)
        out[name] = str(root / f"{name}.zarr")
        assert run(item, out[name], client=client, options=opts).complete
    return out


def fused_chunks(url: str) -> dict[str, bytes]:
    """Every stored object of the ``fused`` array, by name."""
    folder = os.path.join(url, "fused")
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


def copy(src: str, tmp_path, name: str) -> str:
    dst = str(tmp_path / name)
    shutil.copytree(src, dst)
    return dst


def verify_cli(url: str):
    return CliRunner().invoke(main, ["status", url, "--verify", "--json", "-"])


# ------------------------------------------------------------------------------------------------ reading the product


def test_gdal_reads_the_default_store_on_the_input_pan_grid(stores, sample):
    """GDAL 3.10 (rasterio's wheels) derives a Zarr array's geotransform from its x/y coordinate arrays only
    (``GDALMDArray::GuessGeoTransform``: start and (last - first) / (n - 1)), so the sample's 0.49999345509845870 m
    pixel comes back within float rounding of the coordinates, not bit-equal; xarray/rioxarray (``spatial_ref``
    ``GeoTransform``), the STAC item (``proj:transform``) and the COG carry the exact transform."""
    pan = Affine(*tuple(sample.pan_transform)[:6])
    ds = open_result(stores["base"])
    assert ds.rio.transform() == pan  # bit-equal
    with rasterio.open(f'ZARR:"{stores["base"]}":/fused') as src:
        assert src.crs == rasterio.crs.CRS.from_user_input(sample.crs)
        np.testing.assert_allclose(tuple(src.transform)[:6], tuple(pan)[:6], rtol=1e-12, atol=1e-9)
        assert src.shape == sample.pan.shape and src.count == len(sample.band_names)
        assert src.nodata == sample.nodata and src.dtypes[0] == "uint16"
        assert [src.tags(i + 1)["DIM_band_VALUE"] for i in range(src.count)] == list(sample.band_names)
        pixels = src.read()
    np.testing.assert_array_equal(pixels, ds["fused"].values)
    valid = np.all(sample.ms != sample.nodata, axis=0).repeat(4, 0).repeat(4, 1)
    assert (pixels[:, valid] != sample.nodata).all()


def test_xarray_and_zarr_read_a_clean_product(stores, tmp_path):
    import xarray as xr
    import zarr

    url = stores["base"]
    plain = xr.open_zarr(url)  # consolidated metadata, product variables only
    assert list(plain.data_vars) == ["fused"] and list(plain["band"].values) == ["blue", "green", "red", "nir1"]
    assert os.path.exists(os.path.join(url, ".zmetadata"))
    ds = open_result(url)
    assert ds["done"].dtype == np.uint8 and (ds["done"].values == 1).all()
    tif = str(tmp_path / "fused.tif")
    ds["fused"].rio.to_raster(tif, recalc_transform=False)  # the default recomputes it from x/y
    with rasterio.open(tif) as src:
        np.testing.assert_array_equal(src.read(), ds["fused"].values)
        assert src.nodata == 0 and src.transform == ds.rio.transform()
    group = zarr.open_group(url, mode="r")
    np.testing.assert_array_equal(group["fused"][...], ds["fused"].values)
    assert not [n for n in os.listdir(os.path.join(url, "run", "tiles")) if not n.startswith(".")]  # removed
    assert [n for n in os.listdir(os.path.join(stores["kept"], "run", "tiles")) if not n.startswith(".")]


def _item(url: str):
    import pystac

    return pystac.Item.from_file(os.path.join(url, "item.json"))


def test_odc_stac_loads_the_item_on_the_input_grid(stores, sample):
    import odc.stac
    from odc.geo.geobox import GeoBox

    item = _item(stores["base"])
    bands = list(sample.band_names)
    proj = item.assets[bands[0]].extra_fields
    geobox = GeoBox(tuple(proj["proj:shape"]), Affine(*proj["proj:transform"][:6]), proj["proj:code"])
    assert geobox.affine == Affine(*tuple(sample.pan_transform)[:6]) and geobox.shape == sample.pan.shape
    loaded = odc.stac.load([item], bands=bands, geobox=geobox)
    want = open_result(stores["base"])["fused"].values
    for i, band in enumerate(bands):
        np.testing.assert_array_equal(loaded[band].values[0], want[i])


def test_stackstac_loads_the_item_on_the_input_grid(stores, sample):
    import stackstac

    d = _item(stores["base"]).to_dict()
    bands = list(sample.band_names)
    epsg = rasterio.crs.CRS.from_user_input(sample.crs).to_epsg()
    for band in bands:  # stackstac 0.5 reads proj:epsg only (STACK.md §2.2 #1)
        d["assets"][band]["proj:epsg"] = epsg
    t = sample.pan_transform
    arr = stackstac.stack([d], assets=bands, epsg=epsg, resolution=t.a, snap_bounds=False, dtype="uint16",
                          fill_value=np.uint16(0), rescale=False, xy_coords="center")
    ds = open_result(stores["base"])
    np.testing.assert_array_equal(arr.values[0], ds["fused"].values)
    np.testing.assert_allclose(arr["x"].values, ds["x"].values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(arr["y"].values, ds["y"].values, rtol=0, atol=1e-6)


def test_item_describes_the_product(stores, sample):
    item = json.load(open(os.path.join(stores["base"], "item.json")))
    blue = item["assets"]["blue"]
    assert blue["eo:bands"] == [{"name": "blue", "common_name": "blue", "center_wavelength": 0.48}]
    raster = blue["raster:bands"][0]
    want = open_result(stores["base"])["fused"].values[0]
    valid = want[want != 0]
    assert raster["data_type"] == "uint16" and raster["nodata"] == 0
    assert raster["statistics"]["minimum"] == valid.min() and raster["statistics"]["maximum"] == valid.max()
    assert raster["statistics"]["mean"] == pytest.approx(valid.mean())
    assert item["properties"]["proj:transform"] == list(tuple(sample.pan_transform)[:6])
    assert item["assets"]["zarr"]["href"] == "./" and item["properties"]["datetime"].startswith("2019-08-31")


# ------------------------------------------------------------------------------------------------------ integrity


def test_missing_fused_chunk_is_reported_refused_and_repaired(stores, client, tmp_path):
    url = copy(stores["base"], tmp_path, "lost.zarr")
    os.remove(os.path.join(url, "fused", "0.0.0"))  # the corner tile's core
    report = verify_cli(url)
    assert report.exit_code == 1 and "tile 0 (fused core fused/0.0.0 missing)" in report.output
    with pytest.raises(CorruptStoreError, match=r"lost.zarr: 1 fused chunk\(s\) missing or cut, e.g. tile 0"):
        open_result(url)
    again = resume(url, client=client)
    assert again.complete and again.tiles_computed == 4  # the tiles whose windows overlap core 0: 0, 1, 3, 4
    assert fused_chunks(url) == fused_chunks(stores["base"])
    assert verify_cli(url).exit_code == 0 and os.path.exists(os.path.join(url, "item.json"))
    assert not [n for n in os.listdir(os.path.join(url, "run", "tiles")) if not n.startswith(".")]


def test_truncated_fused_chunk_is_reported_and_repaired(stores, client, tmp_path):
    url = copy(stores["base"], tmp_path, "cut.zarr")
    chunk = os.path.join(url, "fused", "0.2.1")
    with open(chunk, "r+b") as f:
        f.truncate(os.path.getsize(chunk) // 2)
    report = verify_cli(url)
    assert report.exit_code == 1 and "tile 7 (fused core fused/0.2.1 cut" in report.output
    with pytest.raises(CorruptStoreError, match=r"fused chunk\(s\) missing or cut, e.g. tile 7"):
        open_result(url)
    again = resume(url, client=client)
    assert again.complete and again.tiles_computed == 6  # tile 7 and its neighbours 3, 4, 5, 6, 8
    assert fused_chunks(url) == fused_chunks(stores["base"])


def test_lost_stage_a_slot_of_a_done_tile_is_recomputed(stores, client, tmp_path):
    url = copy(stores["kept"], tmp_path, "slot.zarr")
    slot = os.path.join(url, "run", "tiles", "0.1.2")
    before = open(slot, "rb").read()
    os.remove(slot)
    report = verify_cli(url)
    assert report.exit_code == 1 and json.loads(report.stdout)["integrity"]["damaged_slots"] == [5]
    again = resume(url, client=client)
    assert again.complete and again.tiles_computed == 1
    assert open(slot, "rb").read() == before
    assert fused_chunks(url) == fused_chunks(stores["base"])


def test_item_validates_offline_against_core_eo_raster_and_projection_schemas(stores):
    """Core Item v1.1.0 from pystac's bundled schemas, the extensions from tests/data/stac-schemas (README there):
    no network."""
    from pathlib import Path

    import jsonschema
    import pystac
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    bundled = Path(pystac.__file__).parent / "validation" / "jsonschemas"
    core_dir = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/"
    resources = {core_dir + p.name: p for p in (bundled / "stac-spec" / "v1.1.0").glob("*.json")}
    resources.update({f"https://geojson.org/schema/{p.name}": p for p in (bundled / "geojson").glob("*.json")})
    extensions = {f"https://stac-extensions.github.io/{name}/schema.json": Path(__file__).parent / "data" /
                  "stac-schemas" / f"{name.replace('/', '-')}.json"
                  for name in ("eo/v1.1.0", "raster/v1.1.0", "projection/v2.0.0")}
    resources.update(extensions)
    registry = Registry().with_resources(
        (uri, Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT7))
        for uri, path in resources.items())
    item = json.load(open(os.path.join(stores["base"], "item.json")))
    assert sorted(item["stac_extensions"]) == sorted(extensions)
    for uri in [core_dir + "item.json", *item["stac_extensions"]]:
        schema = registry.contents(uri)
        jsonschema.Draft7Validator(schema, registry=registry).validate(item)
    broken = {**item, "assets": {**item["assets"],
                                 "blue": {**item["assets"]["blue"], "raster:bands": [{"nodata": []}]}}}
    with pytest.raises(jsonschema.ValidationError):  # the validator does check the extension fields
        raster = registry.contents("https://stac-extensions.github.io/raster/v1.1.0/schema.json")
        jsonschema.Draft7Validator(raster, registry=registry).validate(broken)


def test_cli_run_reports_the_item_with_its_cog_asset_and_keeps_tiles(item, client, tmp_path, monkeypatch):
    import trapan_cloud.cluster as cluster

    monkeypatch.setattr(cluster, "get_client", lambda *args, **kwargs: (client, False))  # the module's cluster
    out, cog = tmp_path / "cli.zarr", tmp_path / "cli.tif"
    result = CliRunner().invoke(main, ["run", "--stac", item, "--out", str(out), "--method", "mtf-glp-fs", "--tile",
                                       str(TILE), "--overlap", str(HALO), "--keep-tiles", "--cog", str(cog),
                                       "--json", "-"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["item"] == str(out / "item.json")
    described = json.load(open(payload["item"]))
    assert described["assets"]["cog"]["href"] == "../cli.tif"  # relative to the item
    with rasterio.open(cog) as src:
        np.testing.assert_array_equal(src.read(), open_result(str(out))["fused"].values)
    assert [n for n in os.listdir(out / "run" / "tiles") if not n.startswith(".")]  # --keep-tiles


def test_resume_of_a_complete_store_restores_a_lost_item(stores, tmp_path):
    url = copy(stores["base"], tmp_path, "noitem.zarr")
    item = os.path.join(url, "item.json")
    want = json.load(open(item))
    os.remove(item)
    result = CliRunner().invoke(main, ["resume", url, "--json", "-"])  # nothing to compute: no cluster
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["item"] == item
    got = json.load(open(item))
    assert got["properties"] == want["properties"] and got["assets"]["zarr"] == want["assets"]["zarr"]
    assert got["assets"]["blue"]["href"] == f'ZARR:"{url}":/fused:0'  # the store where it is now


def test_batch_catalog_links_the_items_and_keeps_a_foreign_catalog(stores, tmp_path):
    import pystac

    from trapan_cloud.store import write_catalog

    prefix = tmp_path / "batch"
    prefix.mkdir()
    urls = [copy(stores[name], prefix, f"{name}.zarr") for name in ("base", "kept")]
    for url in urls:
        os.remove(os.path.join(url, "item.json"))
        CliRunner().invoke(main, ["resume", url])  # the item of the store where it now is
    path = write_catalog(str(prefix), urls)
    assert path == str(prefix / "catalog.json")
    items = list(pystac.Catalog.from_file(path).get_items())
    assert sorted(i.id for i in items) == ["base", "kept"]
    assert {i.assets["zarr"].get_absolute_href().rstrip("/") for i in items} == set(urls)
    mtime = os.stat(path).st_mtime_ns
    assert write_catalog(str(prefix), urls) == path and os.stat(path).st_mtime_ns == mtime  # unchanged: untouched
    (prefix / "catalog.json").write_text('{"type": "Catalog", "id": "mine"}')
    assert write_catalog(str(prefix), urls) is None
    assert json.loads((prefix / "catalog.json").read_text())["id"] == "mine"
