"""The run layer's contracts: `RunManifest`, the scheduling policy (without torch), the method registry (a toy method
registered here and run through `tc.run`), and a resume under another `Runtime`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import cloudpickle
import numpy as np
import pytest
from distributed import Client

import trapan_cloud as tc
from trapan_cloud import registry
from trapan_cloud.errors import ResumeMismatchError
from trapan_cloud.registry import TileOutput
from trapan_cloud.runner import RunManifest, RunOptions
from trapan_cloud.runner.manifest import MANIFEST_VERSION
from trapan_cloud.runner.scheduling import drive, largest_first
from trapan_cloud.store import open_result, open_store
from trapan_cloud.tiling import plan_tiles

from scene_fixtures import make_scene

cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ----------------------------------------------------------------------------------------------- manifest
@pytest.fixture(scope="module")
def manifest(sample) -> RunManifest:
    from trapan_cloud.runner.plan import prepare

    pan, ms = sample
    return prepare(make_scene(pan, ms, "WV2", 4), RunOptions(tile_px=64, halo_px=16, method="exp")).manifest


def test_manifest_round_trips_and_refuses_other_versions(manifest):
    d = manifest.to_dict()
    assert d["manifest_version"] == MANIFEST_VERSION and RunManifest.from_dict(d) == manifest
    with pytest.raises(ResumeMismatchError, match=r"out.zarr: run manifest version 99, this trapan_cloud reads "
                                                  r"version 1"):
        RunManifest.from_dict({**d, "manifest_version": 99}, where="out.zarr")
    with pytest.raises(ResumeMismatchError, match="version None"):
        RunManifest.from_dict({k: v for k, v in d.items() if k != "manifest_version"})
    with pytest.raises(ResumeMismatchError, match=r"unknown keys \['colour'\]"):
        RunManifest.from_dict({**d, "colour": "red"})


def test_manifest_diff_lists_every_key_in_full(manifest):
    long_href = "/data/" + "x" * 200 + ".tif"
    other = dataclasses.replace(manifest, seed=5, inputs={**manifest.inputs, "pan": long_href},
                                tiling={**manifest.tiling, "tile_px": 128})
    diff = other.diff(manifest)
    assert [line.split(":")[0] for line in diff] == ["inputs.pan", "seed", "tiling.tile_px"]
    assert f'"{long_href}" vs null' in diff[0] and diff[1] == "seed: 5 vs 0" and diff[2] == "tiling.tile_px: 128 vs 64"
    assert manifest.diff(manifest) == []


def test_runtime_is_not_in_the_manifest(sample):
    from trapan_cloud.method.config import Runtime, TrapanConfig
    from trapan_cloud.runner.plan import prepare

    pan, ms = sample
    scene, cfg = make_scene(pan, ms, "WV2", 4), TrapanConfig.fast()
    a = prepare(scene, RunOptions(config=cfg, runtime=Runtime(device="cpu", threads=1))).manifest
    b = prepare(scene, RunOptions(config=cfg, runtime=Runtime(threads=4, trace_indices=True))).manifest
    assert a == b and "runtime" not in a.to_dict() and "device" not in a.to_dict()["config"]


# ----------------------------------------------------------------------------------------------- scheduling
def test_tiles_go_largest_first():
    plan = plan_tiles((240, 240), 4, tile_px=64, halo_px=16)
    order = largest_first(reversed(plan.tiles))
    areas = [t.ext_shape[0] * t.ext_shape[1] for t in order]
    assert areas == sorted(areas, reverse=True) and sorted(t.index for t in order) == list(range(16))
    assert [t.index for t in order[:4]] == [5, 6, 9, 10]  # the interior tiles have halos on all four sides


def timed_sleep(index: int) -> tuple[int, float, float]:
    """A stand-in tile: its index and when it started and ended."""
    t0 = time.monotonic()
    time.sleep(0.05)
    return index, t0, time.monotonic()


def test_drive_never_exceeds_the_free_slots():
    """The policy on a thread-based cluster with plain functions: in order, never more tiles in flight than slots."""
    plan = plan_tiles((240, 240), 4, tile_px=64, halo_px=16)
    tiles = largest_first(plan.tiles)
    with Client(processes=False, n_workers=1, threads_per_worker=4, dashboard_address=":0") as client:
        spans = {t.index: f.result() for t, f in drive(tiles, lambda t: client.submit(timed_sleep, t.index,
                                                                                         pure=False), lambda: 2)}
    assert sorted(spans) == list(range(16)) and all(i == spans[i][0] for i in spans)
    ends = sorted(end for _, _, end in spans.values())
    for k, t in enumerate(tiles[2:]):  # the k+3-th tile waits for k+1 tiles to finish: 2 slots, in order
        assert spans[t.index][1] >= ends[k], (t.index, k)


def test_slots_are_threads_or_gpu_workers():
    from trapan_cloud.runner.scheduling import free_slots, gpu_workers

    with Client(processes=False, n_workers=2, threads_per_worker=3, resources={"GPU": 1},
                dashboard_address=":0") as client:
        assert gpu_workers(client) == 2 and free_slots(client, gpu=True) == 2 and free_slots(client, gpu=False) == 6
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        assert gpu_workers(client) == 0 and free_slots(client, gpu=True) == 1  # never 0: the run refuses earlier


def test_scheduling_needs_no_torch():
    code = "import sys, trapan_cloud.runner.scheduling; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class ScaledPan:
    """A toy method with a prior: MS upsampled, times PAN / (the PAN mean over the prior's sample windows)."""

    name: str = "toy-scaled-pan"
    needs_prior: bool = True
    tileable: bool = True

    def resolve_config(self, config):
        return None

    def load_config(self, d):
        return None

    def describe(self, config, slot_px, prior_tiles):
        return registry.MethodPlan(steps_per_tile_max=1, prior={"tiles": prior_tiles})

    def fit_prior(self, pairs, sensor, config, seed, nodata, runtime):
        mean = float(np.mean([p.mean() for p, _ in pairs]))
        data = np.float64(mean).tobytes()
        return data, f"mean-{mean:.6f}"

    def load_prior(self, data):
        return float(np.frombuffer(data, dtype=np.float64)[0])

    def refine_tile(self, prior, pan, ms, *, sensor, ratio, seed, nodata, config, runtime):
        up = np.repeat(np.repeat(ms, ratio, axis=1), ratio, axis=2)
        return TileOutput(up * pan[None] / prior, steps=1)

    def fuse_pair(self, pan, ms, sensor, ratio, *, config, seed):
        raise NotImplementedError


@pytest.fixture()
def toy():
    method = registry.register(ScaledPan())
    yield method
    registry.unregister(method.name)


def test_a_registered_method_runs_through_tc_run(toy, client, sample, tmp_path):
    pan, ms = sample
    out = str(tmp_path / "toy.zarr")
    assert toy.name in registry.names(tileable=True)
    plan = tc.runner.plan_run(make_scene(pan, ms, "WV2", 4), tile=64, overlap=16, method=toy.name, prior_tiles=2)
    assert plan["steps_per_tile_max"] == 1 and plan["prior"] == {"tiles": 2}
    res = tc.run(make_scene(pan, ms, "WV2", 4), out, client=client, tile=64, overlap=16, method=toy.name,
                 dtype="float32", prior_tiles=2)
    assert res.complete and res.tiles_computed == 16 and res.prior_hash.startswith("mean-")
    store = open_store(out)
    assert store.manifest["method"] == toy.name and (store.qa()["steps"] == 1).all()
    prior = float(np.frombuffer(store.load_prior(), dtype=np.float64)[0])
    want = np.repeat(np.repeat(ms.astype(float), 4, axis=1), 4, axis=2) * pan[None] / prior
    np.testing.assert_allclose(open_result(out)["fused"].values, want, rtol=1e-5)


def test_unknown_and_untileable_methods_are_named():
    with pytest.raises(tc.InputError, match="unknown method 'nope'; choose one of trapan, exp"):
        registry.get_method("nope")
    with pytest.raises(tc.InputError, match="gdal-brovey runs on whole files and cannot be tiled"):
        registry.get_method("gdal-brovey", tiled=True)


# ----------------------------------------------------------------------------------------------- runtime
def test_resume_under_another_runtime(client, sample, tmp_path):
    """A run started with one `Runtime` resumes with another: the runtime is not in the manifest."""
    from trapan_cloud.method.config import Runtime, TrapanConfig

    pan, ms = sample
    scene, cfg = make_scene(pan[:128, :128], ms[:, :32, :32], "WV2", 4), TrapanConfig.fast()
    kwargs = dict(client=client, tile=64, overlap=16, prior_tiles=2, seed=3)
    whole = str(tmp_path / "whole.zarr")
    tc.run(scene, whole, cfg, runtime=Runtime(device="cpu", threads=1), **kwargs)

    def stop(*_):
        raise KeyboardInterrupt("stopped after the first tile")

    out = str(tmp_path / "stopped.zarr")
    with pytest.raises(KeyboardInterrupt):
        tc.run(scene, out, cfg, runtime=Runtime(device="cpu", threads=1), progress=stop, **kwargs)
    deadline = time.monotonic() + 60
    while any(client.processing().values()) and time.monotonic() < deadline:  # let the tiles in flight land
        time.sleep(0.2)
    assert 0 < int(open_store(out).done().sum()) < 4
    res = tc.run(scene, out, cfg, resume=True, runtime=Runtime(device="cpu", threads=2, trace_indices=True),
                 **kwargs)
    assert res.complete and res.tiles_done_before + res.tiles_computed == 4
    assert open_store(out).manifest == open_store(whole).manifest
    np.testing.assert_array_equal(open_result(out)["fused"].values, open_result(whole)["fused"].values)


def test_manifest_inputs_never_hold_credentials(sample):
    """A scene built by hand with a signed URL still records only the public href."""
    from trapan_cloud.runner.plan import prepare
    from trapan_cloud.scene import Source

    pan, ms = sample
    scene = dataclasses.replace(make_scene(pan, ms, "WV2", 4), source=Source(
        backend="rioxarray", pan="https://KEY:SECRET@host.org/pan.tif?X-Amz-Signature=abc",
        ms=("s3://bucket/ms.tif?token=xyz",)))
    inputs = prepare(scene, RunOptions(method="exp")).manifest.inputs
    assert inputs["pan"] == "https://host.org/pan.tif" and inputs["ms"] == ["s3://bucket/ms.tif"]
