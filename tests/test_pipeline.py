"""`trapan_cloud.run` on a real local Dask cluster (worker processes) writing real Zarr stores, on real WorldView-2 pixels.

The tiled-equals-untiled check uses a method with no spatial reach (each MS pixel's PAN block is fused from that
block alone), so any halo, any blend weights that sum to one and any tile layout must reproduce the whole-image result;
a wrong window, an off-by-one MS alignment, weights that do not sum to one or a lost tile would show.
"""

from __future__ import annotations

import os
import sys

import cloudpickle
import numpy as np
import pytest
import zarr
from distributed.diagnostics.plugin import SchedulerPlugin

from trapan_cloud.cluster import get_client
from trapan_cloud.errors import InputError, ResumeMismatchError, StoreExistsError
from trapan_cloud.runner import plan_run, run, tile_seed
from trapan_cloud.store import open_result, open_store
from trapan_cloud.tiling import plan_tiles

from scene_fixtures import block_local, make_scene

# workers import nothing from tests/: ship this module's functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def fused_of(out: str) -> np.ndarray:
    return np.asarray(open_result(out)["fused"].values)


def test_tiled_equals_untiled(client, sample, tmp_path):
    pan, ms = sample
    scene = make_scene(pan, ms, "WV2", 4)
    out = str(tmp_path / "tiled.zarr")
    # 240 = 3 x 64 + 48: the last row/column of tiles is smaller (edge tiles)
    res = run(scene, out, client=client, tile=64, overlap=16, method=block_local, dtype="float32")
    assert res.complete and res.tiles_total == 16 and res.tiles_computed == 16 and res.tiles_failed == 0
    got = fused_of(out)
    want = block_local(pan.astype(np.float64), ms.astype(np.float64), "WV2", 4)
    assert got.shape == want.shape and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    ds = open_result(out)
    assert ds.rio.crs.to_epsg() == 32631
    assert tuple(ds.rio.transform())[:6] == (0.5, 0.0, 594000.0, 0.0, -0.5, 5753000.0)


def test_tiled_exp_equals_whole_image_when_the_halo_covers_its_reach(client, sample, tmp_path):
    """EXP (23-tap interpolation, reach ±33 PAN px at ratio 4) run tile-safe: with an 80-px halo the blend ramps lie
    40 px inside every ext window, beyond the interpolator's reach, so every pixel equals the whole-image result."""
    from trapan_cloud.baselines import exp

    pan, ms = sample
    out = str(tmp_path / "exp.zarr")
    # 240 = 160 + 80: a full and a smaller edge tile on each axis
    res = run(make_scene(pan, ms, "WV2", 4), out, client=client, tile=160, overlap=80, method="exp", dtype="float32")
    assert res.complete and res.tiles_computed == 4
    want = exp(pan.astype(np.float64), ms.astype(np.float64), "WV2", 4, interp_mode="reflect")
    np.testing.assert_allclose(fused_of(out), want, rtol=1e-5, atol=1e-3)


def test_nodata_tiles_skipped_and_masked(client, sample, tmp_path):
    pan, ms = (a.copy() for a in sample)
    pan[:96, :96] = 0  # tile 0's whole ext window (0:80, 0:80) is nodata; its neighbours partly
    ms[:, :24, :24] = 0
    ms[:, 50, 50] = 0  # one MS pixel: its PAN block must come out nodata
    out = str(tmp_path / "nodata.zarr")
    res = run(make_scene(pan, ms, "WV2", 4), out, client=client, tile=64, overlap=16, method=block_local)
    assert res.complete and res.tiles_skipped_nodata == 1 and res.tiles_computed == 15
    got = fused_of(out)
    assert got.dtype == np.uint16
    assert (got[:, :96, :96] == 0).all() and (got[:, 200:204, 200:204] == 0).all()
    want = np.rint(block_local(pan.astype(float), ms.astype(float), "WV2", 4))
    diff = np.abs(got[:, 100:190, 10:190] - np.clip(want, 1, 65535)[:, 100:190, 10:190])
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # float32 blend, then rounding: .5 ties may flip
    assert np.isnan(open_store(out).qa()["hqnr"][0, 0]) and open_store(out).done().all()


def test_existing_output_refused_before_any_tile(client, sample, tmp_path):
    pan, ms = sample
    out = tmp_path / "exists.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    ticks = []
    with pytest.raises(StoreExistsError, match="exists.zarr"):
        run(make_scene(pan, ms, "WV2", 4), str(out), client=client, tile=64, overlap=16, method=block_local,
            progress=lambda: ticks.append(1))
    assert ticks == [] and os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_all_nodata_scene_is_refused_without_a_store(client, sample, tmp_path):
    pan, ms = sample
    out = tmp_path / "empty.zarr"
    with pytest.raises(InputError, match="nodata"):
        run(make_scene(np.zeros_like(pan), np.zeros_like(ms), "WV2", 4), str(out), client=client, tile=64,
            overlap=16, method="exp")
    assert not out.exists()


def test_resume_refuses_other_settings_and_foreign_stores(client, sample, tmp_path):
    pan, ms = sample
    scene = make_scene(pan, ms, "WV2", 4)
    out = str(tmp_path / "a.zarr")
    run(scene, out, client=client, tile=64, overlap=16, method=block_local)
    with pytest.raises(ResumeMismatchError, match="tiling"):
        run(scene, out, client=client, tile=128, overlap=16, method=block_local, resume=True)
    again = run(scene, out, client=client, tile=64, overlap=16, method=block_local, resume=True)
    assert again.tiles_done_before == 16 and again.tiles_computed == 0 and again.complete

    foreign = str(tmp_path / "foreign.zarr")
    zarr.open_group(foreign, mode="w").attrs["title"] = "someone else's data"
    with pytest.raises(ResumeMismatchError, match="not a trapan_cloud store"):
        run(scene, foreign, client=client, tile=64, overlap=16, method=block_local, resume=True)
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{not json")
    with pytest.raises(ResumeMismatchError):
        run(scene, str(corrupt), client=client, tile=64, overlap=16, method=block_local, resume=True)


def test_dry_run_plans_and_writes_nothing(sample, tmp_path):
    pan, ms = sample
    scene = make_scene(pan, ms, "WV2", 4)
    plan = plan_run(scene, str(tmp_path / "x.zarr"), tile=64, overlap=16)
    assert plan["tiles"] == {"rows": 4, "cols": 4, "total": 16} and plan["halo_px"] == 16
    assert plan["memory_per_task_mb_estimate"] > 0 and plan["steps_per_tile_max"] > 0
    res = run(scene, str(tmp_path / "x.zarr"), tile=64, overlap=16, dry_run=True)
    assert res.tiles_total == 16 and res.tiles_computed == 0 and not (tmp_path / "x.zarr").exists()
    with pytest.raises(InputError, match="tile_px"):
        plan_run(scene, tile=30, overlap=16)
    with pytest.raises(InputError, match="method"):
        plan_run(scene, method="nope")


def test_tile_seed_is_stable():
    # fixed values: a change of the derivation would silently change every run's output
    assert [tile_seed(0, i) for i in range(3)] == [152025901, 294123830, 145618213]
    assert len({tile_seed(s, i) for s in range(4) for i in range(64)}) == 256


def test_trapan_bit_identical_on_1_and_2_workers(client, sample, tmp_path):
    from trapan_cloud.method.config import TrapanConfig

    pan, ms = sample
    scene = make_scene(pan[:128, :128], ms[:, :32, :32], "WV2", 4)
    cfg = TrapanConfig.fast()
    one, owned = get_client(n_workers=1)
    try:
        r1 = run(scene, str(tmp_path / "one.zarr"), cfg, client=one, tile=64, overlap=16, prior_tiles=2, seed=3)
    finally:
        one.close()
    r2 = run(scene, str(tmp_path / "two.zarr"), cfg, client=client, tile=64, overlap=16, prior_tiles=2, seed=3)
    assert r1.complete and r2.complete and r1.tiles_computed == r2.tiles_computed == 4
    assert r1.prior_hash == r2.prior_hash is not None
    a, b = zarr.open_group(str(tmp_path / "one.zarr"), mode="r"), zarr.open_group(str(tmp_path / "two.zarr"), mode="r")
    for name in ("fused", "run/tiles", "run/done", "run/hqnr", "run/steps"):
        np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)
    assert np.isfinite(a["run/hqnr"][...]).all() and (a["run/steps"][...] == cfg.rao_steps).all()
    assert open_store(str(tmp_path / "one.zarr")).manifest["prior_hash"] == r1.prior_hash
    assert open_store(str(tmp_path / "one.zarr")).load_prior() is not None  # kept for resume
    ds = open_result(str(tmp_path / "one.zarr"))  # a store with a prior opens as a plain georeferenced dataset
    assert set(ds.data_vars) >= {"fused", "hqnr"} and "prior" not in ds and ds.rio.crs.to_epsg() == 32631


def test_scene_smaller_than_one_tile(client, sample, tmp_path):
    """A 240-px scene with the default 512-px tile: one clipped tile, chunk-aligned output, complete store."""
    pan, ms = sample
    out = str(tmp_path / "small.zarr")
    res = run(make_scene(pan, ms, "WV2", 4), out, client=client, method=block_local, dtype="float32")
    assert res.complete and res.tiles_total == 1
    np.testing.assert_allclose(fused_of(out), block_local(pan.astype(float), ms.astype(float), "WV2", 4),
                               rtol=1e-5, atol=1e-3)


class TileQueueRecorder(SchedulerPlugin):
    """Records, each time a tile task is assigned to a worker, how many tile tasks that worker then holds."""

    name = "tile-queue-recorder"

    def __init__(self) -> None:
        self.assigned: list[tuple[str, str, int]] = []  # (tile key, worker, tile tasks on that worker)

    async def start(self, scheduler) -> None:
        self.scheduler = scheduler

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "processing" and str(key).startswith("trapan-tile-"):
            ws = self.scheduler.tasks[key].processing_on
            held = sum(1 for ts in ws.processing if str(ts.key).startswith("trapan-tile-"))
            self.assigned.append((str(key), ws.address, held))


def slow_block_local(pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int) -> np.ndarray:
    """`block_local` taking long enough that a second tile would queue behind a busy worker if one were sent."""
    import time

    time.sleep(0.3)
    return block_local(pan, ms, sensor, ratio)


def test_tiles_go_largest_first_and_only_to_free_threads(client, sample, tmp_path):
    """A tile queued on a busy 1-thread worker waits there however idle the others are, so the pipeline hands out
    one tile per thread, largest ext window first (the small edge tiles fill the end)."""
    pan, ms = sample
    recorder = TileQueueRecorder()
    client.register_plugin(recorder)
    try:
        res = run(make_scene(pan, ms, "WV2", 4), str(tmp_path / "q.zarr"), client=client, tile=64, overlap=16,
                  method=slow_block_local, dtype="float32")
        assigned = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins[TileQueueRecorder.name]
                                           .assigned)
    finally:
        client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.remove_plugin(TileQueueRecorder.name))
    assert res.complete and len(assigned) == res.tiles_total == 16
    threads = client.nthreads()
    assert all(held <= threads[worker] for _, worker, held in assigned), assigned
    area = {t.index: t.ext_shape[0] * t.ext_shape[1] for t in plan_tiles(pan.shape, 4, 64, 16).tiles}
    order = [area[int(key.split("-")[2])] for key, _, _ in assigned]
    assert order == sorted(order, reverse=True), order
