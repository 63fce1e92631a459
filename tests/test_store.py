"""The run store: one round-trip contract for a local directory (Zarr v3 and v2) and S3 on loopback, resume checks."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import rasterio
import zarr
from affine import Affine
from rio_cogeo.cogeo import cog_validate
from s3_server import ACCESS_KEY, SECRET_KEY, s3_server  # noqa: F401  (session fixture)

from trapan_cloud.errors import (CorruptStoreError, IncompleteRunError, InputError, ResumeMismatchError,
                                 StoreExistsError)
from trapan_cloud.store import create_store, export_cog, open_result, open_store, stac_item_for_result
from trapan_cloud.tiling import TilePlan, blend_weights, plan_tiles

CRS = "EPSG:32633"
TRANSFORM = Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 4_100_000.0)
BANDS = ("blue", "green", "red")
MANIFEST = {"sensor": "WV2", "seed": 0, "tile_px": 16, "prior": "abc123"}


@pytest.fixture(scope="module")
def plan() -> TilePlan:
    return plan_tiles((40, 36), 4, tile_px=16, halo_px=4)  # ragged edge tiles on both axes


@pytest.fixture(scope="module")
def image(plan) -> np.ndarray:
    """A known DN image with a nodata corner (NaN), the per-tile 'prediction' of every tile."""
    img = np.random.default_rng(0).uniform(1, 2047, size=(len(BANDS),) + plan.shape)
    img[:, :5, :6] = np.nan
    return img


def fill(store, plan: TilePlan, image: np.ndarray) -> None:
    for t in plan.tiles:
        store.write_tile(t, blend_weights(t, plan) * image[(slice(None),) + t.ext_slices])
        store.mark_done(t, {"hqnr": 0.9 + t.index / 100, "steps": 10})


def roundtrip(url: str, plan: TilePlan, image: np.ndarray, storage_options=None, **kwargs):
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST,
                         storage_options=storage_options, **kwargs)
    fill(store, plan, image)
    store.finalize(plan)
    return open_result(url, storage_options=storage_options)


def check_result(ds, plan: TilePlan, image: np.ndarray, dtype=np.uint16) -> None:
    assert ds.rio.crs == rasterio.crs.CRS.from_user_input(CRS)
    assert ds.rio.transform() == TRANSFORM
    assert ds["fused"].rio.crs == ds.rio.crs and ds["fused"].rio.transform() == TRANSFORM
    assert list(ds["band"].values) == list(BANDS)
    assert ds["fused"].rio.nodata == 0
    lazy = ds["fused"]
    assert lazy.dims == ("band", "y", "x") and lazy.shape == (len(BANDS),) + plan.shape and lazy.dtype == dtype
    fused = lazy.values
    assert fused.shape == lazy.shape and fused.dtype == lazy.dtype
    valid = np.isfinite(image)
    assert (fused[~valid] == 0).all() and (fused[valid] != 0).all()
    expected = np.rint(image[valid]) if dtype == np.uint16 else image[valid]
    np.testing.assert_allclose(fused[valid], expected, rtol=0, atol=1.0 if dtype == np.uint16 else 1e-3)
    np.testing.assert_allclose(ds["hqnr"].values, 0.9 + np.arange(len(plan.tiles)).reshape(ds["hqnr"].shape) / 100)
    assert np.isnan(ds["d_s"].values).all() and (ds["done"].values == 1).all()
    assert "tiles" not in ds


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_local_roundtrip_is_georeferenced(tmp_path, plan, image, zarr_format):
    ds = roundtrip(str(tmp_path / "out.zarr"), plan, image, zarr_format=zarr_format)
    check_result(ds, plan, image)
    meta = "zarr.json" if zarr_format == 3 else ".zgroup"
    assert (tmp_path / "out.zarr" / meta).exists()


def test_float32_output_keeps_values(tmp_path, plan, image):
    ds = roundtrip(str(tmp_path / "out.zarr"), plan, image, dtype="float32")
    check_result(ds, plan, image, dtype=np.float32)


def test_integer_output_rounds_clips_and_never_fakes_nodata(tmp_path):
    plan = plan_tiles((16, 16), 4, tile_px=16, halo_px=0)
    img = np.array([0.2, -5.0, 70_000.0, 41.6]).repeat(64).reshape(1, 16, 16)
    store = create_store(str(tmp_path / "o.zarr"), plan=plan, bands=["pan"], crs=CRS, transform=TRANSFORM,
                         manifest={})
    fill(store, plan, img)
    store.finalize(plan)
    assert sorted(np.unique(open_result(str(tmp_path / "o.zarr"))["fused"].values)) == [1, 42, 65535]


def test_tile_data_is_written_before_its_done_flag(tmp_path, plan, image):
    url = str(tmp_path / "out.zarr")
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST)
    t = plan.tile(1, 1)
    weighted = blend_weights(t, plan) * image[(slice(None),) + t.ext_slices]
    store.write_tile(t, weighted)  # ... and the worker dies here
    again = open_store(url)
    assert not again.done().any()
    slot = again.run["tiles"][(slice(None),) + plan.slot(t)]
    again.write_tile(t, weighted)  # the resumed run rewrites the same chunk: idempotent
    np.testing.assert_array_equal(again.run["tiles"][(slice(None),) + plan.slot(t)], slot)
    again.mark_done(t, {"hqnr": 0.5})
    assert again.done()[1, 1] and again.done().sum() == 1
    chunk = {"tiles": "run/tiles/0.1.1", "hqnr": "run/hqnr/1.1", "done": "run/done/1.1"}
    mtime = {k: os.stat(tmp_path / "out.zarr" / v).st_mtime_ns for k, v in chunk.items()}
    assert mtime["tiles"] <= mtime["hqnr"] <= mtime["done"]
    with pytest.raises(InputError, match="unknown fields \\['qnr'\\]; this store has hqnr"):
        again.mark_done(plan.tile(0, 0), {"qnr": 1.0})
    assert not again.done()[0, 0]
    assert pickle.loads(pickle.dumps(again)).done().sum() == 1  # workers get a handle by pickling


def test_incomplete_store_is_refused(tmp_path, plan, image):
    url = str(tmp_path / "out.zarr")
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST)
    t = plan.tiles[0]
    store.write_tile(t, blend_weights(t, plan) * image[(slice(None),) + t.ext_slices])
    store.mark_done(t, {})
    with pytest.raises(IncompleteRunError, match="8 of 9 tiles are not done"):
        store.finalize(plan)
    with pytest.raises(IncompleteRunError, match="'running' \\(1 of 9 tiles done\\), not 'complete'; resume it"):
        open_result(url)
    with pytest.raises(ResumeMismatchError, match="made for the tile plan"):
        store.finalize(plan_tiles(plan.shape, 4, tile_px=16, halo_px=8))


def test_existing_store_needs_overwrite(tmp_path, plan):
    url = str(tmp_path / "out.zarr")
    kwargs = dict(plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST)
    create_store(url, **kwargs).mark_done(plan.tiles[0], {})
    with pytest.raises(StoreExistsError, match="already exists; pass overwrite=True .* or resume"):
        create_store(url, **kwargs)
    assert not create_store(url, overwrite=True, **kwargs).done().any()


def test_resume_refuses_other_settings_and_foreign_stores(tmp_path, plan):
    url = str(tmp_path / "out.zarr")
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST)
    assert open_store(url).manifest == MANIFEST  # kept as given; `RunManifest` compares it on resume

    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["title"] = "someone else's"
    with pytest.raises(ResumeMismatchError, match="not a trapan_cloud store"):
        open_store(str(foreign))
    with pytest.raises(ResumeMismatchError, match="not a trapan_cloud store"):
        open_result(str(foreign))
    with pytest.raises(InputError, match="no Zarr store at"):
        open_store(str(tmp_path / "missing.zarr"))

    shutil.rmtree(tmp_path / "out.zarr" / "run" / "done")
    with pytest.raises(CorruptStoreError, match="corrupt trapan_cloud store.*done \\(expected \\(3, 3\\), found"):
        open_store(url)


@pytest.mark.parametrize("change,match", [
    (dict(transform=(0.5, 0.1, 0.0, 0.0, -0.5, 0.0)), "transform: expected a north-up grid"),
    (dict(transform=(1, 2, 3)), "transform: expected 6 affine coefficients"),
    (dict(crs="EPSG:999999"), "crs: expected a CRS"),
    (dict(bands=("a", "a", "b")), "bands: expected unique band names"),
    (dict(dtype="uint8", nodata=300), "nodata: 300 is not a value of the output dtype uint8"),
    (dict(zarr_format=4), "zarr_format: expected 2 or 3"),
    (dict(manifest={"x": object()}), "manifest: expected a JSON-ready dict"),
    (dict(manifest={"key": "SECRETVALUE"}, storage_options={"secret": "SECRETVALUE"}),
     "manifest: contains a credential"),
])
def test_bad_template_inputs_are_named(tmp_path, plan, change, match):
    kwargs = {**dict(plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST), **change}
    with pytest.raises(InputError, match=match) as err:
        create_store(str(tmp_path / "out.zarr"), **kwargs)
    assert "SECRETVALUE" not in str(err.value)
    assert not (tmp_path / "out.zarr").exists()


def test_cog_export_and_stac_item(tmp_path, plan, image):
    url = str(tmp_path / "out.zarr")
    ds = roundtrip(url, plan, image)
    path = export_cog(url, str(tmp_path / "fused.tif"))
    assert cog_validate(path)[0]
    with rasterio.open(path) as src:
        assert src.crs == ds.rio.crs and src.transform == TRANSFORM and src.nodata == 0
        assert src.descriptions == BANDS
        np.testing.assert_array_equal(src.read(), ds["fused"].values)
    item = stac_item_for_result(url, item_id="run-1", datetime="2020-05-10T00:00:00Z")
    west, south, east, north = item["bbox"]
    assert 14 < west < east < 15.1 and 37 < south < north < 37.1  # UTM 33N, near 500 km E / 4100 km N
    assert item["properties"]["proj:code"] == CRS and item["properties"]["proj:shape"] == list(plan.shape)
    assert item["properties"]["proj:transform"] == list(TRANSFORM)[:6]
    assert [item["assets"][b]["eo:bands"][0]["name"] for b in BANDS] == list(BANDS)
    assert item["id"] == "run-1" and item["properties"]["datetime"].startswith("2020-05-10T00:00:00")
    json.dumps(item)
    signed = "https://KEY:SECRET@bucket.host/run-1.zarr?X-Amz-Signature=abc&X-Amz-Credential=KEY"
    published = stac_item_for_result(url, item_id="run-1", datetime="2020-05-10T00:00:00Z", href=signed)
    assert published["assets"]["red"]["href"] == "https://bucket.host/run-1.zarr:2"  # no user-info, no signature
    assert "SECRET" not in json.dumps(published) and "Signature" not in json.dumps(published)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_s3_roundtrip_with_credentials_from_the_environment_only(s3_server, monkeypatch, plan, image,  # noqa: F811
                                                                  zarr_format):
    import s3fs

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    url = s3_server.url(f"runs/v{zarr_format}.zarr")
    options = s3_server.storage_options
    assert not any(v in json.dumps(options) for v in (ACCESS_KEY, SECRET_KEY))
    ds = roundtrip(url, plan, image, storage_options=options, zarr_format=zarr_format)
    check_result(ds, plan, image)
    with pytest.raises(StoreExistsError):
        create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST,
                     storage_options=options)
    store = open_store(url, options)
    assert store.manifest == MANIFEST
    assert store.done().all() and store.status == "complete"

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    keys = fs.find(url)
    assert any(k.endswith("zarr.json" if zarr_format == 3 else ".zattrs") for k in keys)
    for key in keys:  # metadata, attrs and chunks: no credential anywhere in the store
        blob = fs.cat(key)
        assert ACCESS_KEY.encode() not in blob and SECRET_KEY.encode() not in blob, key

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")  # the environment is what authenticates
    with pytest.raises((PermissionError, InputError, ResumeMismatchError)) as err:
        open_store(url, {**options, "skip_instance_cache": True})
    assert "wrong-secret" not in str(err.value) and SECRET_KEY not in str(err.value)


def test_a_qa_field_added_to_tileqa_reaches_the_store_and_status(tmp_path, plan, image):
    """One field on a `TileQA` subclass: the store gets its array, `store_status` its mean, worst value and tile."""
    from dataclasses import dataclass

    from trapan_cloud.qa import TileQA, qa_field, qa_specs
    from trapan_cloud.store import store_status

    @dataclass(frozen=True)
    class WithSharpness(TileQA):
        sharpness: float = qa_field(True, "edge energy of the fused tile")

    assert [s.name for s in qa_specs(WithSharpness)][-1] == "sharpness"
    url = str(tmp_path / "qa.zarr")
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST,
                         qa=WithSharpness)
    for t in plan.tiles:
        store.write_tile(t, blend_weights(t, plan) * image[(slice(None),) + t.ext_slices])
        store.mark_done(t, WithSharpness(d_s=0.1 * t.index, sharpness=10.0 - t.index).to_dict())
    info = store_status(url)
    last = len(plan.tiles) - 1
    assert info["sharpness_min"] == 10.0 - last and info["sharpness_worst_tile"] == last  # higher is better
    assert info["d_s_max"] == pytest.approx(0.1 * last) and info["d_s_worst_tile"] == last  # lower is better
    assert "hqnr_mean" not in info  # never measured: NaN everywhere
    assert open_store(url).run["sharpness"].attrs["long_name"] == "edge energy of the fused tile"


def test_older_store_format_is_refused_with_its_version(tmp_path, plan):
    url = str(tmp_path / "old.zarr")
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST)
    store.group.attrs["trapan_cloud"] = {**store.info, "format_version": 1}
    with pytest.raises(ResumeMismatchError, match="layout format 1, and this version reads format 2 only"):
        open_store(url)


def test_consolidated_snapshot_follows_every_status_change(tmp_path, plan, image):
    """No snapshot while running; `complete` in it at the end; `running` again as soon as a repair reopens it."""
    url = str(tmp_path / "out.zarr")
    store = create_store(url, plan=plan, bands=BANDS, crs=CRS, transform=TRANSFORM, manifest=MANIFEST)
    snapshot = tmp_path / "out.zarr" / ".zmetadata"
    assert not snapshot.exists()
    fill(store, plan, image)
    store.finalize(plan)
    status = lambda: json.loads(snapshot.read_text())["metadata"][".zattrs"]["trapan_cloud"]["status"]  # noqa: E731
    assert status() == "complete"
    os.remove(tmp_path / "out.zarr" / "fused" / "0.1.1")
    integrity = store.verify(plan)
    assert integrity.damaged_cores == (4,) and not integrity.ok
    assert store.prepare_repair(plan, integrity) == [0, 1, 2, 3, 4, 5, 6, 7, 8]  # the 3 x 3 around the centre
    assert status() == "running"
