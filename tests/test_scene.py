"""scene/: open_scene on real-shaped STAC items (tiny local COGs) and on COG paths, plus every bad-input case."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from affine import Affine

import scene_fixtures as sf
from trapan_cloud import open_scene
from trapan_cloud.errors import InputError
from trapan_cloud.samples import load_sample


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def maxar(tmp_path_factory):
    return sf.maxar_item(tmp_path_factory.mktemp("maxar"))


@pytest.fixture(scope="module")
def maxar_migrated(tmp_path_factory):
    return sf.maxar_item(tmp_path_factory.mktemp("maxar_mig"), nbands=4, migrated=True)


@pytest.fixture(scope="module")
def usgs(tmp_path_factory):
    return sf.usgs_item(tmp_path_factory.mktemp("usgs"))


@pytest.fixture(scope="module")
def dea(tmp_path_factory):
    return sf.dea_item(tmp_path_factory.mktemp("dea"))


@pytest.fixture(scope="module")
def cbers(tmp_path_factory):
    return sf.cbers_item(tmp_path_factory.mktemp("cbers"))


@pytest.fixture(scope="module")
def sn6(tmp_path_factory):
    s = load_sample("sn6-1")
    return s, sf.write_sample_cogs(tmp_path_factory.mktemp("sn6"), s)


def _save(tmp_path, item):
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    return path


def assert_contract(ds, ratio, nbands):
    """Dims, coords, dask backing and the PAN/MS shape relation the pipeline relies on."""
    assert ds["pan"].dims == ("y", "x") and ds["ms"].dims == ("band", "y_ms", "x_ms")
    assert isinstance(ds["pan"].data, da.Array) and isinstance(ds["ms"].data, da.Array)
    h, w = ds["ms"].shape[1:]
    assert ds["ms"].shape[0] == nbands and ds["pan"].shape == (ratio * h, ratio * w)
    assert ds.attrs["ratio"] == ratio and list(ds["band"].values) == ds.attrs["band_names"]
    pt, mt = Affine(*ds.attrs["pan_transform"]), Affine(*ds.attrs["ms_transform"])
    np.testing.assert_allclose(ds["x"].values[:2], [pt.c + pt.a * 0.5, pt.c + pt.a * 1.5])
    np.testing.assert_allclose(ds["y"].values[-1], pt.f + pt.e * (ds["pan"].shape[0] - 0.5))
    np.testing.assert_allclose(ds["x_ms"].values[0], mt.c + mt.a * 0.5)
    np.testing.assert_allclose(ds["y_ms"].values[0], mt.f + mt.e * 0.5)
    # PAN block (i, j) and MS block (i, j) cover the same ground
    assert ds["pan"].chunks[0] == tuple(ratio * c for c in ds["ms"].chunks[1])
    for dy_dx in ds.attrs["subpixel_shift_px"]:
        assert -0.5 <= dy_dx < 0.5


# ---------------------------------------------------------------------------------------------------- STAC layouts


def test_maxar_multiband_item(maxar):
    ds = open_scene(str(maxar.item_path))
    assert_contract(ds, 4, 8)
    assert ds.attrs["sensor"] == "WV2" and ds.attrs["crs"] == "EPSG:32617"
    assert ds.attrs["band_names"] == ["coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2"]
    assert ds.attrs["subpixel_shift_px"] == [-0.5, -0.5]  # corner-aligned: MS centre on PAN 4u + 1.5
    assert ds.attrs["pan_transform"] == list(maxar.pan_transform)[:6]
    assert ds["pan"].dtype == np.uint16 and ds["ms"].dtype == np.uint16
    np.testing.assert_array_equal(ds["pan"].values, maxar.pan)
    np.testing.assert_array_equal(ds["ms"].values, maxar.ms)
    src = ds.attrs["source"]
    assert src["backend"] == "odc" and src["pan_asset"] == "pan_analytic" and src["ms_assets"] == ["ms_analytic"]
    assert src["item"] == maxar.item["id"] == "17/031331303211/10300100DB064000"
    assert src["ms"] == [str(maxar.item_path.parent / "10300100DB064000-ms.tif")]
    # the visual and data-mask assets point at files that were never written: they were never opened
    assert not (maxar.item_path.parent / "10300100DB064000-visual.tif").exists()


def test_maxar_migrated_proj_code_relative_hrefs_4_bands(maxar_migrated):
    # proj:code only, an absolute https self link, relative hrefs resolved next to the item file, no raster:bands
    # and eo:bands listing 8 bands while the file holds 4: the band count comes from the file
    assert "proj:epsg" not in maxar_migrated.item["properties"]
    ds = open_scene(maxar_migrated.item_path)
    assert_contract(ds, 4, 4)
    assert ds.attrs["crs"] == "EPSG:32611" and ds.attrs["band_names"] == ["blue", "green", "red", "nir1"]
    np.testing.assert_array_equal(ds["ms"].values, maxar_migrated.ms)
    np.testing.assert_array_equal(ds["pan"].values, maxar_migrated.pan)


def test_usgs_per_band_inset_pan(usgs):
    # item-level 30 m grid with a 6-element transform, pan override 2n - 1 pixels inset by 7.5 m
    ds = open_scene(str(usgs.item_path))
    assert_contract(ds, 2, 4)
    assert ds.attrs["sensor"] == "Landsat9" and ds.attrs["band_names"] == ["blue", "green", "red", "nir08"]
    assert ds.attrs["subpixel_shift_px"] == [0.0, 0.0]
    # one MS row/col and one PAN row/col dropped: MS centre (i, j) is PAN (2i + 1, 2j + 1) exactly
    np.testing.assert_array_equal(ds["pan"].values, usgs.pan[1:, 1:])
    np.testing.assert_array_equal(ds["ms"].values, usgs.ms[:, 1:, 1:])
    assert ds.attrs["pan_transform"] == list(usgs.pan_transform * Affine.translation(1, 1))[:6]
    assert ds.attrs["ms_transform"] == list(usgs.ms_transform * Affine.translation(1, 1))[:6]
    np.testing.assert_allclose(ds["x_ms"].values[0], ds["x"].values[1])
    np.testing.assert_allclose(ds["y_ms"].values[0], ds["y"].values[1])
    assert ds.attrs["source"]["ms_assets"] == ["blue", "green", "red", "nir08"]
    # thumbnail, QA, angle and unused band assets point at files that do not exist: never opened
    for key in ("thumbnail", "qa_pixel", "VZA", "coastal", "swir16"):
        assert not Path(usgs.item["assets"][key]["href"]).exists()


def test_dea_per_asset_grids_matched_by_key(dea):
    ds = open_scene(str(dea.item_path))
    assert_contract(ds, 2, 4)
    assert ds.attrs["sensor"] == "Landsat8" and ds.attrs["nodata"] == 0  # files: -999 (nodata rule)
    assert ds.attrs["source"]["pan_asset"] == "nbart_panchromatic"
    assert ds.attrs["source"]["ms_assets"] == ["nbart_blue", "nbart_green", "nbart_red", "nbart_nir"]
    assert ds["pan"].dtype == np.int16
    np.testing.assert_array_equal(ds["pan"].values, dea.pan[1:, 1:])
    np.testing.assert_array_equal(ds["ms"].values, dea.ms[:, 1:, 1:])


def test_cbers_without_proj_fields_reads_grids_from_files(cbers):
    with pytest.raises(InputError, match=r"'cbers-4a'.*pass sensor="):
        open_scene(str(cbers.item_path))
    ds = open_scene(str(cbers.item_path), sensor="generic")
    assert_contract(ds, 4, 4)
    assert ds.attrs["crs"] == "EPSG:32722" and ds.attrs["nodata"] == 0
    assert ds.attrs["source"]["ms_assets"] == ["B1", "B2", "B3", "B4"]  # the role-less PNG thumbnail is skipped
    np.testing.assert_array_equal(ds["pan"].values, cbers.pan)
    np.testing.assert_array_equal(ds["ms"].values, cbers.ms)


def test_gf2_l1a_refused_before_opening(tmp_path):
    with pytest.raises(InputError, match=r"not orthorectified.*PAN-rpb.*gdalwarp -rpc"):
        open_scene(str(sf.gf2_item(tmp_path)))


def test_stackstac_backend_bit_exact_on_per_band(usgs):
    ref = open_scene(str(usgs.item_path))
    ds = open_scene(str(usgs.item_path), backend="stackstac", chunks=16)
    assert_contract(ds, 2, 4)
    assert ds.attrs["source"]["backend"] == "stackstac" and ds["pan"].dtype == np.uint16
    for name in ("pan", "ms"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
        np.testing.assert_array_equal(ds[name].coords[ds[name].dims[-1]], ref[name].coords[ref[name].dims[-1]])
    assert ds.attrs == {**ref.attrs, "source": {**ref.attrs["source"], "backend": "stackstac"}}


def test_stackstac_refuses_multiband(maxar):
    with pytest.raises(InputError, match='multi-band.*ms_analytic.*backend="odc"'):
        open_scene(str(maxar.item_path), backend="stackstac")


def test_item_as_dict_and_pystac(usgs, maxar):
    import pystac

    ds = open_scene(copy.deepcopy(usgs.item))  # absolute hrefs: no location needed
    np.testing.assert_array_equal(ds["ms"].values, usgs.ms[:, 1:, 1:])
    ds = open_scene(pystac.Item.from_file(str(maxar.item_path)))
    np.testing.assert_array_equal(ds["pan"].values, maxar.pan)
    with pytest.raises(InputError, match=r"relative href.*pass the item's path"):
        open_scene(copy.deepcopy(maxar.item))  # relative hrefs and no self link


def test_sensor_argument_wins_and_asset_overrides(maxar, usgs):
    assert open_scene(str(maxar.item_path), sensor="WV3").attrs["sensor"] == "WV3"
    ds = open_scene(str(usgs.item_path), ms_assets=["blue", "green", "red"], pan_asset="pan")
    assert ds.attrs["band_names"] == ["blue", "green", "red"]
    np.testing.assert_array_equal(ds["ms"].values, usgs.ms[:3, 1:, 1:])


def test_missing_assets_list_what_is_there(usgs, tmp_path):
    with pytest.raises(InputError, match=r"no asset 'B8' for pan_asset.*ANG\.txt.*blue"):
        open_scene(str(usgs.item_path), pan_asset="B8")
    with pytest.raises(InputError, match=r"no asset 'nir' for ms_assets"):
        open_scene(str(usgs.item_path), ms_assets=["blue", "nir"])
    item = copy.deepcopy(usgs.item)
    del item["assets"]["pan"]
    with pytest.raises(InputError, match=r"no PAN asset found.*pan_asset="):
        open_scene(item)
    item = copy.deepcopy(usgs.item)
    del item["assets"]["blue"]
    with pytest.raises(InputError, match=r"no MS assets found for Landsat9.*ms_assets="):
        open_scene(item)


def test_needed_asset_unreadable_is_named(usgs):
    item = copy.deepcopy(usgs.item)
    item["assets"]["red"]["href"] = "/nonexistent/red.TIF"
    with pytest.raises(InputError, match=r"asset 'red'.*cannot open '/nonexistent/red\.TIF'"):
        open_scene(item)


def test_item_grid_quirks_checked(usgs):
    item = copy.deepcopy(usgs.item)
    item["assets"]["pan"]["proj:shape"] = [64, 64]  # stale metadata: the file has 63 x 63
    with pytest.raises(InputError, match=r"asset 'pan' metadata says grid \(64, 64\).*\(63, 63\)"):
        open_scene(item)
    item = copy.deepcopy(usgs.item)
    item["assets"]["pan"]["proj:transform"] = item["assets"]["pan"]["proj:transform"][:5] + [0, 1]
    with pytest.raises(InputError, match="proj:transform of 7 elements"):
        open_scene(item)


def test_band_count_unlike_sensor(maxar):
    with pytest.raises(InputError, match=r"QB products have 4 MS bands, found 8"):
        open_scene(str(maxar.item_path), sensor="QB")


# ---------------------------------------------------------------------------------------------------- COG paths


def test_cog_paths_spacenet_georeferencing(sn6, tmp_path):
    s, (pan, ms) = sn6
    ds = open_scene(pan=pan, ms=ms, sensor="WV2", chunks=256)
    assert_contract(ds, 4, 4)
    assert ds.attrs["subpixel_shift_px"] == [-0.5, -0.5]  # pixel sizes 0.49999345 / 2.00009663, ratio 4.0003
    assert ds.attrs["crs"] == s.crs and ds.attrs["nodata"] == 0
    assert ds.attrs["band_names"] == list(s.band_names)
    source = dict(ds.attrs["source"])
    fingerprints = source.pop("fingerprints")
    assert source == {"backend": "rioxarray", "item": None, "item_href": None, "pan_asset": None,
                      "ms_assets": None, "pan": str(pan), "ms": [str(ms)]}
    assert sorted(fingerprints) == ["ms", "pan"] and fingerprints["pan"]["size"] == Path(pan).stat().st_size
    assert ds["pan"].chunks[0][0] == 256 and ds["ms"].chunks[1][0] == 64
    np.testing.assert_array_equal(ds["pan"].values, s.pan)
    np.testing.assert_array_equal(ds["ms"].values, s.ms)
    pan1, ms_list = sf.write_sample_cogs(tmp_path, s, split_ms=True)
    ds = open_scene(pan=pan1, ms=[str(p) for p in ms_list], sensor="WV2")
    np.testing.assert_array_equal(ds["ms"].values, s.ms)


def test_cog_paths_landsat_centre_aligned(tmp_path):
    # Momotombo: MS centre (i, j) = PAN centre (2i + 1, 2j): rows already on phase, columns lose one pixel
    s = load_sample("l8-momotombo")
    pan, ms = sf.write_sample_cogs(tmp_path, s)
    ds = open_scene(pan=str(pan), ms=str(ms), sensor="Landsat8")
    assert_contract(ds, 2, 4)
    assert ds.attrs["subpixel_shift_px"] == [0.0, 0.0]
    h, w = ds["ms"].shape[1:]
    np.testing.assert_array_equal(ds["ms"].values, s.ms[:, :h, 1 : 1 + w])
    np.testing.assert_array_equal(ds["pan"].values, s.pan[: 2 * h, 1 : 1 + 2 * w])


def _pair(tmp_path, pan_t, ms_t, ms_crs="EPSG:32631", nbands=4, pan_nodata=None, ms_nodata=None):
    pan = sf.write_cog(tmp_path / "p.tif", sf.random_dn((64, 64), 1), pan_t, "EPSG:32631", pan_nodata)
    ms = sf.write_cog(tmp_path / "m.tif", sf.random_dn((nbands, 16, 16), 2), ms_t, ms_crs, ms_nodata)
    return str(pan), str(ms)


PAN_T = Affine(1.0, 0, 500000, 0, -1.0, 5000000)
MS_T = Affine(4.0, 0, 500000, 0, -4.0, 5000000)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"ms_crs": "EPSG:32632"}, r"different CRSs \(EPSG:32631 vs EPSG:32632\)"),
        ({"ms_t": Affine(2.5, 0, 500000, 0, -2.5, 5000000)}, r"ratio is 2\.5 .*expected an integer"),
        ({"ms_t": Affine(4.0, 0, 600000, 0, -4.0, 5000000)}, r"do not overlap"),
        ({"pan_t": Affine(1.0, 0.1, 500000, 0, -1.0, 5000000)}, r"rotated or sheared"),
        ({"nbands": 3}, r"WV2 products have 4 or 8 MS bands, found 3"),
        ({"pan_nodata": 0, "ms_nodata": 65535}, r"different nodata values.*nodata="),
    ],
)
def test_cog_paths_bad_pairs(tmp_path, kwargs, pattern):
    pan, ms = _pair(tmp_path, **{"pan_t": PAN_T, "ms_t": MS_T, **kwargs})
    with pytest.raises(InputError, match=pattern):
        open_scene(pan=pan, ms=ms, sensor="WV2")


def test_nodata_argument_wins(tmp_path):
    pan, ms = _pair(tmp_path, PAN_T, MS_T, pan_nodata=0, ms_nodata=65535)
    assert open_scene(pan=pan, ms=ms, sensor="WV2", nodata=7).attrs["nodata"] == 7


def test_unreadable_inputs_are_named_without_credentials(tmp_path):
    pan, ms = _pair(tmp_path, PAN_T, MS_T)
    with pytest.raises(InputError, match=r"ms: cannot open '.*nope\.tif'"):
        open_scene(pan=pan, ms=str(tmp_path / "nope.tif"), sensor="WV2")
    with pytest.raises(InputError, match=r"pan: 'http://127\.0\.0\.1:9/pan\.tif' carries credentials") as err:
        open_scene(pan="http://user:secret@127.0.0.1:9/pan.tif?sig=abc", ms=ms, sensor="WV2")
    assert "secret" not in str(err.value) and "sig=" not in str(err.value)
    with pytest.raises(InputError, match=r"ms: cannot open 'http://127\.0\.0\.1:9/ms\.tif'") as err:
        open_scene(pan=pan, ms="http://127.0.0.1:9/ms.tif?X-Amz-Signature=abc", sensor="WV2")
    assert "X-Amz-Signature" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"backend": "gdal"}, r"unknown backend 'gdal'.*odc, stackstac"),
        ({"chunks": 0}, r"chunks: expected"),
        ({"sensor": None}, r"sensor: required"),
        ({"ms": None}, r"both pan= and ms="),
        ({"item": "x.json"}, r"not both"),
        ({"sensor": "WV9"}, r"unknown sensor 'WV9'"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, pattern):
    pan, ms = _pair(tmp_path, PAN_T, MS_T)
    with pytest.raises(InputError, match=pattern):
        open_scene(**{"pan": pan, "ms": ms, "sensor": "WV2", **kwargs})


def test_missing_file_behind_complete_metadata_fails_before_loading(tmp_path):
    """An item whose proj:/raster: metadata is complete still has each needed file's header read up front."""
    import os

    from trapan_cloud.samples import load_sample, write_sample_item

    item = write_sample_item(load_sample("sn6-1").crop("gone", 0, 0, 16), str(tmp_path))
    os.remove(tmp_path / "gone-ms.tif")
    with pytest.raises(InputError, match=r"asset 'ms_analytic'.*gone-ms\.tif"):
        open_scene(item)
