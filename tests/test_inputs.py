"""Inputs by value range, nodata, fingerprints and limits (issue 15.2, 15.3, 15.9, 15.10), on a real WorldView-2 crop
converted to each pixel type and written as COGs; runs use a classical method on small tiles and one 2-worker cluster.

Expected values come from the uint16 run of the same crop and from the conversion itself: a float run is the uint16
run divided by the scale, an int16 run is the uint16 run, a uint8 run follows the uint16 run / 8 within quantisation.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scene_fixtures import write_cog

from trapan_cloud import metrics
from trapan_cloud.errors import InputError, ResumeMismatchError
from trapan_cloud.runner import RunOptions, check_run, resume, run
from trapan_cloud.runner.manifest import RunManifest
from trapan_cloud.runner.plan import check_memory, prepare
from trapan_cloud.samples import load_sample
from trapan_cloud.scene import open_scene
from trapan_cloud.store import open_result, open_store

SCALE = 2047.0
"""WorldView-2's max DN (11 bits): the float conversion divides by it (0-1 reflectance-like values)."""
RUN = {"tile": 64, "overlap": 32, "method": "mtf-glp-fs"}
CRASHABLE = RunOptions(tile_px=64, halo_px=32, method="mtf-glp-fs", keep_tiles=True)
"""`RUN` keeping the stage-A tiles, so `_forget_tiles` leaves what a crash mid-tiles leaves."""


@pytest.fixture(scope="module")
def crop():
    """PAN (128, 128) and MS (4, 32, 32) DN, fully valid."""
    return load_sample("sn6-1").crop("inputs", 0, 0, 32)


def write_pair(d, crop, pan, ms, nodata: float | None = 0) -> tuple[str, str]:
    """``pan``/``ms`` as COGs on the crop's grids in folder ``d``."""
    os.makedirs(d, exist_ok=True)
    return (str(write_cog(os.path.join(d, "pan.tif"), pan, crop.pan_transform, crop.crs, nodata)),
            str(write_cog(os.path.join(d, "ms.tif"), ms, crop.ms_transform, crop.crs, nodata)))


def run_pair(client, d, crop, pan, ms, nodata: float | None = 0, **kwargs) -> tuple[np.ndarray, dict]:
    """Run the pair in ``d``; the fused array and the store's attributes (with its per-tile QA under ``"qa"``)."""
    p, m = write_pair(d, crop, pan, ms, nodata)
    out = os.path.join(d, "run.zarr")
    res = run(open_scene(pan=p, ms=m, sensor="WV2"), out, client=client, **{**RUN, **kwargs})
    assert res.complete
    ds = open_result(out)
    store = open_store(out)
    return ds["fused"].values, {**store.info, "qa": store.qa()}


def hqnr(fused, pan, ms, k: float = 1.0) -> float:
    """Toolbox HQNR of the DN values ``k`` × (fused, pan, ms) (Q2n casts to uint16, so DN it must be)."""
    f, m, p = (np.asarray(a, dtype=np.float64) * k for a in (fused, ms, pan))
    return metrics.hqnr(f, m, p, "WV2", 4)[0]


@pytest.fixture(scope="module")
def by_dtype(client, crop, tmp_path_factory):
    """The crop run as uint16, int16, uint8 (DN / 8, rounded) and float32 (DN / 2047), default output dtype."""
    d = tmp_path_factory.mktemp("dtypes")
    pan, ms = crop.pan, crop.ms
    inputs = {"uint16": (pan, ms), "int16": (pan, ms), "uint8": (np.rint(pan / 8), np.rint(ms / 8)),
              "float32": (pan / SCALE, ms / SCALE)}
    out = {}
    for name, (p, m) in inputs.items():
        p, m = p.astype(name), m.astype(name)
        out[name] = (*run_pair(client, str(d / name), crop, p, m), p, m)
    return out


def test_output_keeps_the_input_dtype(by_dtype):
    for name, (fused, info, _, _) in by_dtype.items():
        assert fused.dtype == np.dtype(name), name
        assert info["dtype"] == name and info["manifest"]["dtype"] == name


def test_int16_run_equals_the_uint16_run(by_dtype):
    """Same values, same fusion; only the cast differs: uint16 clips the method's undershoots (and moves a valid 0,
    the nodata value, to 1), int16 keeps them."""
    i16, u16 = by_dtype["int16"][0].astype(np.int64), by_dtype["uint16"][0].astype(np.int64)
    above = u16 > 1
    assert above.mean() > 0.9
    np.testing.assert_array_equal(i16[above], u16[above])
    assert (i16[~above] <= 1).all()


def test_float_run_is_the_uint16_run_divided_by_the_scale(by_dtype):
    dn, f = by_dtype["uint16"][0].astype(np.float64), by_dtype["float32"][0].astype(np.float64)
    assert 0 < f.max() <= 1.5
    above = dn > 1  # where uint16 did not clip an undershoot
    np.testing.assert_allclose(f[above] * SCALE, dn[above], atol=0.5 + 1e-3)  # uint16 rounds to the nearest DN
    assert (f[~above] * SCALE < 1.5).all()
    q_dn = hqnr(dn, *by_dtype["uint16"][2:])
    q_float = hqnr(f, *by_dtype["float32"][2:], k=SCALE)
    assert abs(q_float - q_dn) < 0.01, (q_float, q_dn)  # the uint16 product clipped the undershoots


def test_tile_qa_is_on_the_sensor_scale_whatever_the_input_scale(by_dtype):
    """The store's per-tile HQNR scores the same image alike in DN, 8 bits or reflectance (Q2n casts to uint16)."""
    ref = by_dtype["uint16"][1]["qa"]["hqnr"]
    assert np.isfinite(ref).all() and ref.min() > 0.5
    for name in ("int16", "float32"):
        np.testing.assert_allclose(by_dtype[name][1]["qa"]["hqnr"], ref, atol=0.03, err_msg=name)
    # (uint8: this crop's DN < 4 round to 0, the nodata value, in every tile, so no uint8 tile is scored)


def test_baseline_cog_keeps_the_input_scale(by_dtype, crop, tmp_path):
    """`trapan baseline` on 0-1 reflectance writes float32 on that scale (not a uint16 COG rounded to 0 and 1)."""
    import rasterio

    from trapan_cloud.jobs import write_baseline

    cogs = {}
    for name, k in (("uint16", 1.0), ("float32", SCALE)):
        p, m = write_pair(str(tmp_path / name), crop, by_dtype[name][2], by_dtype[name][3])
        cogs[name] = write_baseline(open_scene(pan=p, ms=m, sensor="WV2"), "mtf-glp-fs", str(tmp_path / f"{name}.tif"))
    with rasterio.open(cogs["uint16"]) as a, rasterio.open(cogs["float32"]) as b:
        dn, f = a.read().astype(np.float64), b.read()
    assert f.dtype == np.float32 and 0 < f.max() <= 1.5
    inside = (dn > 1) & (dn < SCALE)  # the uint16 COG clips to 0..2047, the float one keeps over- and undershoots
    np.testing.assert_allclose(f[inside] * SCALE, dn[inside], atol=0.5 + 1e-2)
    assert (f[dn == SCALE] * SCALE > SCALE - 0.5).all()


def test_uint8_run_follows_the_uint16_run(by_dtype):
    dn, u8 = by_dtype["uint16"][0].astype(np.float64), by_dtype["uint8"][0].astype(np.float64)
    assert 0 < u8.max() <= 255
    assert np.abs(u8 * 8 - dn).mean() < 8.0  # within one uint8 step on average: input and output each round to one
    q_dn, q_u8 = hqnr(dn, *by_dtype["uint16"][2:]), hqnr(u8, *by_dtype["uint8"][2:], k=8)
    assert q_u8 > q_dn - 0.03, (q_u8, q_dn)


def test_trapan_normalises_by_the_input_scale(crop):
    """TRA-PAN itself (no cluster): the prior's scale is the input's, and uint8 / 0-1 inputs score like uint16."""
    from dataclasses import replace

    from trapan_cloud.method.config import TrapanConfig
    from trapan_cloud.registry import get_method

    method = get_method("trapan")
    cfg = replace(TrapanConfig.fast(), dam_steps=60, rao_steps=6)  # fewer steps: the scale is what is tested
    scores, norms = {}, {}
    for name, k in (("uint16", 1.0), ("uint8", 8.0), ("float32", SCALE)):
        pan, ms = (np.rint(crop.pan / k) if name == "uint8" else crop.pan / k).astype(name), (
            np.rint(crop.ms / k) if name == "uint8" else crop.ms / k).astype(name)
        prior = method.load_prior(method.fit_prior([(pan, ms)], "WV2", cfg, 0, 0, None)[0])
        fused = method.refine_tile(prior, pan.astype(float), ms.astype(float), sensor="WV2", ratio=4, seed=0,
                                   nodata=0, config=cfg, runtime=None).fused
        norms[name] = prior.norm
        assert fused.max() <= prior.norm
        scores[name] = hqnr(fused, pan.astype(float), ms.astype(float), k=k)
    assert norms == {"uint16": 2047.0, "uint8": 255.0, "float32": 1.0}
    assert abs(scores["float32"] - scores["uint16"]) < 0.01, scores
    assert scores["uint8"] > scores["uint16"] - 0.05, scores


# ------------------------------------------------------------------------------------- NaN and negative values


def _close_elsewhere(fused: np.ndarray, clean: np.ndarray, invalid: np.ndarray) -> None:
    """Outside the nodata footprint the run follows the clean one (the filled pixels only shift each tile's
    statistics a little)."""
    a, b = fused[:, ~invalid].astype(np.float64), clean[:, ~invalid].astype(np.float64)
    assert np.abs(a - b).mean() < 0.02 * np.abs(b).mean()


def test_negative_int16_values_are_nodata(client, crop, tmp_path, by_dtype):
    pan, ms = crop.pan.astype(np.int16), crop.ms.astype(np.int16)
    ms[:, 10:12, 20:22] = -5  # a 2 x 2 MS block: its 8 x 8 PAN footprint is nodata
    fused, info = run_pair(client, str(tmp_path), crop, pan, ms, nodata=None)
    assert info["nodata"] == 0 and info["status"] == "complete" and fused.dtype == np.int16
    invalid = np.zeros(pan.shape, bool)
    invalid[40:48, 80:88] = True
    assert (fused[:, invalid] == 0).all()
    _close_elsewhere(fused, by_dtype["int16"][0], invalid)


def test_nan_values_are_nodata_with_a_classical_method(client, crop, tmp_path, by_dtype):
    pan, ms = (crop.pan / SCALE).astype(np.float32), (crop.ms / SCALE).astype(np.float32)
    ms[2, 5, 7] = np.nan
    pan[100:102, 3:5] = np.nan
    fused, info = run_pair(client, str(tmp_path), crop, pan, ms, nodata=float("nan"))
    assert info["nodata"] == 0 and info["status"] == "complete" and fused.dtype == np.float32
    assert np.isfinite(fused).all()
    invalid = np.zeros(pan.shape, bool)
    invalid[20:24, 28:32] = invalid[100:102, 3:5] = True
    assert (fused[:, invalid] == 0).all()
    _close_elsewhere(fused, by_dtype["float32"][0], invalid)


def test_nan_nodata_on_both_files_is_one_nodata(crop, tmp_path):
    pan, ms = (crop.pan / SCALE).astype(np.float32), (crop.ms / SCALE).astype(np.float32)
    p, m = write_pair(str(tmp_path), crop, pan, ms, nodata=float("nan"))
    ds = open_scene(pan=p, ms=m, sensor="WV2")
    assert ds.attrs["nodata"] == 0 and ds["pan"].dtype == np.float32


# ------------------------------------------------------------------------------------- fingerprints and resume


def _forget_tiles(out: str, tiles: list[tuple[int, int]]) -> None:
    """What a crash leaves: some done flags cleared, the store back to "running" (a run made with `CRASHABLE`)."""
    store = open_store(out)
    for r, c in tiles:
        store.run["done"][r, c] = 0
    store._set_info({**store.info, "status": "running"})


def test_relative_paths_resume_from_another_cwd(client, crop, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    write_pair(str(a), crop, crop.pan, crop.ms)
    b.mkdir()
    monkeypatch.chdir(a)
    assert run(open_scene(pan="pan.tif", ms="ms.tif", sensor="WV2"), "run.zarr", client=client,
               options=CRASHABLE).complete
    want = open_result("run.zarr")["fused"].values
    inputs = open_store("run.zarr").manifest["inputs"]
    assert inputs["pan"] == str(a / "pan.tif") and inputs["ms"] == [str(a / "ms.tif")]
    assert inputs["fingerprints"]["pan"]["size"] == (a / "pan.tif").stat().st_size
    _forget_tiles("run.zarr", [(0, 1), (1, 0)])
    monkeypatch.chdir(b)
    again = resume("../a/run.zarr", client=client)
    assert again.complete and again.tiles_computed == 2
    np.testing.assert_array_equal(open_result("../a/run.zarr")["fused"].values, want)


def test_resume_refuses_an_ms_overwritten_in_place(client, crop, tmp_path):
    p, m = write_pair(str(tmp_path), crop, crop.pan, crop.ms)
    out = str(tmp_path / "run.zarr")
    run(open_scene(pan=p, ms=m, sensor="WV2"), out, client=client, options=CRASHABLE)
    _forget_tiles(out, [(1, 1)])
    write_cog(m, crop.ms[::-1].copy(), crop.ms_transform, crop.crs, 0)  # same size, other bytes
    with pytest.raises(ResumeMismatchError, match=rf"ms '{m}' \(.*header bytes.*\) changed since the run started"):
        resume(out, client=client)
    assert open_store(out).status == "running"


def test_resume_refusal_lists_every_differing_setting_in_full(client, crop, tmp_path):
    p, m = write_pair(str(tmp_path), crop, crop.pan, crop.ms)
    out = str(tmp_path / "run.zarr")
    scene = open_scene(pan=p, ms=m, sensor="WV2")
    run(scene, out, client=client, **RUN)
    stored = RunManifest.from_dict(open_store(out).manifest).to_dict()
    other = RunOptions(resume=True, method="exp", tile_px=128, halo_px=48, seed=9, dtype="float32", zarr_format=3)
    with pytest.raises(ResumeMismatchError) as err:
        check_run(scene, out, other)
    message = str(err.value)
    now = {"method": "exp", "seed": 9, "dtype": "float32", "zarr_format": 3}
    for key, value in now.items():
        assert f"{key}: {json.dumps(stored[key])} vs {json.dumps(value)}" in message, key
    for key, value in (("tile_px", 128), ("halo_px", 48)):
        assert f"tiling.{key}: {stored['tiling'][key]} vs {value}" in message, key


# ------------------------------------------------------------------------------------- limits


def test_tile_memory_is_checked_against_a_limit(crop, tmp_path):
    p, m = write_pair(str(tmp_path), crop, crop.pan, crop.ms)
    job = prepare(open_scene(pan=p, ms=m, sensor="WV2"), RunOptions(method="exp", tile_px=64, halo_px=32))
    check_memory(job)  # a 64-px tile fits in this machine
    with pytest.raises(InputError, match=r"tile: a 64 px tile \(slot 128 px.*more than the 0\.0 GiB"):
        check_memory(job, limit_bytes=1024)


def test_halo_below_the_reach_is_refused_for_registered_methods_only(crop, tmp_path):
    from scene_fixtures import block_local

    p, m = write_pair(str(tmp_path), crop, crop.pan, crop.ms)
    scene = open_scene(pan=p, ms=m, sensor="WV2")
    with pytest.raises(InputError, match=r"overlap: 8 PAN px is narrower than the 16 px"):
        prepare(scene, RunOptions(method="mtf-glp-fs", tile_px=64, halo_px=8))
    assert prepare(scene, RunOptions(method="mtf-glp-fs", tile_px=64, halo_px=16)).plan.halo_px == 16
    assert prepare(scene, RunOptions(method=block_local, tile_px=64, halo_px=4)).plan.halo_px == 4


def test_run_checks_the_tile_against_the_workers_memory(crop, tmp_path):
    """A tile that fits this machine but not the cluster's workers is refused once the cluster is known, before a
    store is written."""
    from distributed import Client, LocalCluster

    p, m = write_pair(str(tmp_path), crop, crop.pan, crop.ms)
    scene = open_scene(pan=p, ms=m, sensor="WV2")
    opts = RunOptions(method="exp", tile_px=1024, halo_px=32)
    check_memory(prepare(scene, opts))  # ~0.2 GiB: fits here
    with LocalCluster(n_workers=1, processes=False, memory_limit="128MiB", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(InputError, match=r"more than the 0\.1 GiB a worker has"):
            run(scene, str(tmp_path / "run.zarr"), client=client, options=opts)
    assert not (tmp_path / "run.zarr").exists()
