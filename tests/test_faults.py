"""Faults with real processes: a worker SIGKILLed mid-run, and the whole run (driver + cluster) SIGKILLed mid-way.

Nothing is mocked: the kills are real signals to real worker / driver processes, the inputs real GeoTIFFs, the
outputs real Zarr stores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import cloudpickle
import dask
import numpy as np
import pytest
import rasterio

from trapan_cloud.cluster import MALLOC_ENV, QUIET_CONFIG, get_client
from trapan_cloud.errors import IncompleteRunError, InputError
from trapan_cloud.runner import resume, run
from trapan_cloud.samples import load_sample
from trapan_cloud.scene import open_scene
from trapan_cloud.store import open_result, open_store

from scene_fixtures import block_local, make_scene

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def slow_block_local(pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int) -> np.ndarray:
    """`scene_fixtures.block_local`, slow enough for a kill to land while a tile is computing."""
    time.sleep(0.4)
    return block_local(pan, ms, sensor, ratio)


@pytest.fixture(scope="module")
def cogs(tmp_path_factory):
    """The real WorldView-2 crop written as GeoTIFFs (PAN 240 x 240, MS 4 x 60 x 60)."""
    s = load_sample("sn6-1").crop("t", 0, 0, 60)
    d = tmp_path_factory.mktemp("cogs")
    paths = {}
    for name, arr, transform in (("pan", s.pan[None], s.pan_transform), ("ms", s.ms, s.ms_transform)):
        paths[name] = str(d / f"{name}.tif")
        with rasterio.open(paths[name], "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                           count=arr.shape[0], dtype=arr.dtype, crs=s.crs, transform=transform, nodata=0,
                           tiled=True, blockxsize=64, blockysize=64) as dst:
            dst.write(arr)
    return paths


def test_worker_killed_mid_run_completes_with_identical_output(tmp_path):
    s = load_sample("sn6-1").crop("t", 0, 0, 60)
    scene = make_scene(s.pan, s.ms, "WV2", 4)
    client, _ = get_client(n_workers=2)
    try:
        before = client.run(os.getpid)

        class KillOnFirstTile:
            """Progress object: when the first tile completes, SIGKILL a worker process (its tile is in flight)."""

            total = 16
            killed: list[int] = []

            def update(self, n: int) -> None:
                if not self.killed:
                    pid = sorted(before.values())[0]
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)

        bar = KillOnFirstTile()
        res = run(scene, str(tmp_path / "killed.zarr"), client=client, tile=64, overlap=16,
                  method=slow_block_local, dtype="float32", progress=bar)
        after = client.run(os.getpid)
        settings = client.run(lambda: ({k: dask.config.get(k) for k in QUIET_CONFIG},
                                       {k: os.environ.get(k) for k in MALLOC_ENV}))
    finally:
        client.close()
    assert bar.killed and bar.killed[0] not in after.values()  # the worker really died (and was replaced)
    # the replacement worker got the embedded cluster's settings too
    assert settings and all(v == (QUIET_CONFIG, MALLOC_ENV) for v in settings.values()), settings
    assert res.complete and res.tiles_failed == 0 and res.tiles_computed == 16
    want = block_local(s.pan.astype(np.float64), s.ms.astype(np.float64), "WV2", 4)  # = an undisturbed run
    np.testing.assert_allclose(np.asarray(open_result(str(tmp_path / "killed.zarr"))["fused"].values), want,
                               rtol=1e-5, atol=1e-3)


DRIVER = textwrap.dedent("""
    import os, signal, sys
    from trapan_cloud.cluster import get_client
    from trapan_cloud.runner import run
    from trapan_cloud.scene import open_scene

    class KillAfterThree:
        total = 0
        seen = 0
        def update(self, n):
            self.seen += n
            if self.seen == 3:
                os.killpg(0, signal.SIGKILL)  # the driver, its scheduler and its worker processes, at once

    client, _ = get_client(n_workers=1)
    scene = open_scene(pan=sys.argv[1], ms=sys.argv[2], sensor="WV2")
    run(scene, sys.argv[3], client=client, tile=64, overlap=16, method="exp", progress=KillAfterThree())
    print("NOT KILLED")
""")


def test_killed_run_resumes_only_unfinished_tiles(cogs, tmp_path):
    out = str(tmp_path / "crashed.zarr")
    proc = subprocess.run([sys.executable, "-c", DRIVER, cogs["pan"], cogs["ms"], out], capture_output=True,
                          text=True, timeout=240, start_new_session=True)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr[-3000:]
    store = open_store(out)
    done_before = int(store.done().sum())
    total = store.done().size
    assert 3 <= done_before < total and store.status == "running"
    with pytest.raises(IncompleteRunError, match="not 'complete'"):
        open_result(out)

    client, _ = get_client(n_workers=2)
    try:
        ticks: list[int] = []
        res = resume(out, client=client, progress=lambda: ticks.append(1))
        ref = str(tmp_path / "undisturbed.zarr")
        full = run(open_scene(pan=cogs["pan"], ms=cogs["ms"], sensor="WV2"), ref, client=client, tile=64,
                   overlap=16, method="exp")
    finally:
        client.close()
    assert res.complete and res.tiles_done_before == done_before
    assert res.tiles_computed + res.tiles_skipped_nodata == total - done_before == len(ticks)
    assert full.tiles_computed == total
    np.testing.assert_array_equal(open_result(out)["fused"].values, open_result(ref)["fused"].values)


def test_resume_refuses_foreign_store_and_in_memory_inputs(tmp_path):
    import zarr

    foreign = str(tmp_path / "foreign.zarr")
    zarr.open_group(foreign, mode="w").attrs["title"] = "not ours"
    from trapan_cloud.errors import ResumeMismatchError

    with pytest.raises(ResumeMismatchError, match="not a trapan_cloud store"):
        resume(foreign)
    with pytest.raises(InputError, match="no Zarr store"):
        resume(str(tmp_path / "missing.zarr"))
