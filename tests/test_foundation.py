"""Sensor table, shared input validation, bundled samples and the import rules between rooms."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import trapan_cloud as tc
from trapan_cloud.errors import InputError
from trapan_cloud.samples import bench_crops, load_sample
from trapan_cloud.sensors import KNOWN, get_sensor, sensor_from_platform
from trapan_cloud.validate import check_pair

PKG = pathlib.Path(tc.__file__).parent


def test_sensor_names_case_insensitive_and_unknown_lists_known():
    assert get_sensor("wv3") is get_sensor("WV3")
    with pytest.raises(InputError) as err:
        get_sensor("SPOT6")
    for name in KNOWN:
        assert name in str(err.value)


def test_sensor_gains_follow_the_toolbox_table():
    # METRICS.md §4.1: WV3 per-band gains, WV2 [0.35]*7 + [0.27]; with 4 bands the toolbox takes the first four.
    assert get_sensor("WV3").ms_gnyq(8) == (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315)
    assert get_sensor("WV2").ms_gnyq(8)[-1] == 0.27 and get_sensor("WV2").ms_gnyq(4) == (0.35,) * 4
    assert get_sensor("QB").gnyq_pan == 0.15 and get_sensor("WV2").gnyq_pan == 0.11
    assert get_sensor("GF2").ms_gnyq(4) == (0.3,) * 4 and "fallback" in get_sensor("GF2").gains_source
    assert get_sensor("GF2").max_dn == 1023 and get_sensor("WV3").max_dn == 2047


def test_band_count_unlike_the_sensor_is_refused():
    with pytest.raises(InputError, match="WV3 products have 8 MS bands, found 4"):
        get_sensor("WV3").check_bands(4)
    get_sensor("generic").check_bands(5)


def test_platform_lookup():
    assert sensor_from_platform("WV02").name == "WV2"
    assert sensor_from_platform("landsat-8").name == "Landsat8"
    assert sensor_from_platform("sentinel-2a") is None


@pytest.mark.parametrize(
    "pan, ms, match",
    [
        (np.ones((64, 64)), np.ones((4, 15, 16)), "not an integer multiple"),
        (np.ones((64, 64)), np.ones((4, 16, 16)) * np.nan, "NaN"),
        (-np.ones((64, 64)), np.ones((4, 16, 16)), "negative"),
        (np.ones((2, 64, 64)), np.ones((4, 16, 16)), "single band"),
        (np.ones((64, 64)), np.ones((16, 16)), "band-first"),
    ],
)
def test_check_pair_rejects_bad_input_naming_it(pan, ms, match):
    with pytest.raises(InputError, match=match):
        check_pair(pan, ms)


def test_check_pair_ratio_given_must_match_shapes():
    with pytest.raises(InputError, match="ratio: 2 was given but the shapes imply 4"):
        check_pair(np.ones((64, 64)), np.ones((4, 16, 16)), ratio=2)


def test_bundled_samples_are_real_and_aligned():
    s = load_sample("sn6-1")
    assert s.pan.shape == (600, 600) and s.ms.shape == (4, 150, 150) and s.pan.dtype == np.uint16
    assert 1000 < s.pan.max() <= 2047  # 11-bit DN
    for crop in bench_crops():
        assert crop.pan.shape[0] % 32 == 0 and crop.pan.shape == tuple(crop.ratio * n for n in crop.ms.shape[1:])
        assert (crop.pan > 0).all() and (crop.ms > 0).all()  # fully valid windows
        # the crop's transform origin is the source origin moved by the window offset
        assert crop.pan_transform.a == pytest.approx(s.pan_transform.a) or crop.sensor == "Landsat8"


def test_landsat_crop_is_on_the_toolbox_phase():
    # The README measured: centre of MS (i, j) == centre of PAN (2i+1, 2j). After the crop, MS u must sit on 2u+1.
    crop = next(c for c in bench_crops() if c.sensor == "Landsat8")
    ms_centre = crop.ms_transform @ (0.5, 0.5)
    col, row = ~crop.pan_transform @ ms_centre
    assert (row - 0.5, col - 0.5) == pytest.approx((1.0, 1.0))


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_method_room_imports_no_distributed_or_storage_library():
    forbidden = {"dask", "distributed", "xarray", "zarr", "pystac", "rioxarray", "odc", "stackstac"}
    for path in (PKG / "method").glob("*.py"):
        assert not (_imports(path) & forbidden), path.name


def test_nothing_imports_the_run_layer_or_cli():
    for path in PKG.rglob("*.py"):
        entry = path.name in ("cli.py", "jobs.py", "batch.py") or path == PKG / "__init__.py"
        if entry or path.parent.name == "runner":
            continue  # the composition roots and the lazy re-export table
        text = path.read_text()
        assert "from .cli" not in text and "runner" not in text, path


def test_public_api_names_exist():
    for name in ("pansharpen", "open_scene", "run", "run_batch", "open_result", "TrapanConfig", "Prior"):
        assert name in tc.__all__
    assert callable(tc.metrics.sam) and callable(tc.physics.interp23tap)


def test_every_public_error_is_exported():
    from trapan_cloud import errors

    classes = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert classes == set(errors.__all__) and classes <= set(tc.__all__)
    assert all(getattr(tc, n) is getattr(errors, n) for n in classes)
    assert issubclass(tc.CorruptStoreError, tc.ResumeMismatchError)  # what a corrupt store raised before


def test_every_lazy_name_resolves():
    assert all(getattr(tc, name) is not None for name in tc.__all__)
    assert callable(tc.run) and callable(tc.register_method)


def test_modules_and_functions_stay_small():
    """No module over 400 lines and no function over 60 outside method/."""
    import ast

    for path in PKG.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, path
        if "method" in path.relative_to(PKG).parts:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 60, f"{path.name}:{node.name}"
