"""Faults with real processes: workers SIGKILLed during the prior fit and mid-tiles, the whole run (driver + cluster)
SIGKILLed during the prior fit, mid-tiles and in finalize, a ^C, inputs that cannot be read, and an S3 server down for
30 s mid-run.

Nothing is mocked: the kills are real signals to real worker / driver processes, the inputs real GeoTIFFs, the
outputs real Zarr stores, the S3 server a real SeaweedFS process. A disturbed run must end (directly or after
`resume`) with output identical to an undisturbed run's.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import cloudpickle
import dask
import numpy as np
import pytest
import rasterio

import trapan_cloud.runner.prior as prior_module
from trapan_cloud.cluster import MALLOC_ENV, QUIET_CONFIG, get_client
from trapan_cloud.errors import IncompleteRunError, InputError
from trapan_cloud.retry import Backoff, RetriesExhausted, retry_io
from trapan_cloud.runner import resume, run
from trapan_cloud.runner.worker import fit_prior_task
from trapan_cloud.samples import load_sample
from trapan_cloud.scene import open_scene
from trapan_cloud.store import open_result, open_store, store_status

from cli_output import message_lines
from s3_server import seaweedfs_s3

cloudpickle.register_pickle_by_value(sys.modules[__name__])

ARGS = {"tile": 64, "overlap": 16}
"""Tiling of every run here: 9 tiles of the 192 x 192 crop."""


@pytest.fixture(scope="module")
def cogs(tmp_path_factory):
    """The real WorldView-2 crop written as GeoTIFFs (PAN 192 x 192, MS 4 x 48 x 48)."""
    s = load_sample("sn6-1").crop("t", 0, 0, 48)
    d = tmp_path_factory.mktemp("cogs")
    paths = {}
    for name, arr, transform in (("pan", s.pan[None], s.pan_transform), ("ms", s.ms, s.ms_transform)):
        paths[name] = str(d / f"{name}.tif")
        with rasterio.open(paths[name], "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                           count=arr.shape[0], dtype=arr.dtype, crs=s.crs, transform=transform, nodata=0,
                           tiled=True, blockxsize=64, blockysize=64) as dst:
            dst.write(arr)
    return paths


def fast_config():
    from trapan_cloud.method.config import TrapanConfig

    return TrapanConfig.fast()


def scene_of(cogs):
    return open_scene(pan=cogs["pan"], ms=cogs["ms"], sensor="WV2")


def fused(out: str, storage_options: dict | None = None) -> np.ndarray:
    """A finished store's ``fused`` DN, read in this process (not on a cluster whose workers may lack credentials)."""
    with dask.config.set(scheduler="synchronous"):
        return np.asarray(open_result(out, storage_options)["fused"].values)


@pytest.fixture(scope="module")
def reference(cogs, client, tmp_path_factory):
    """The undisturbed TRA-PAN (fast preset) run every disturbed one must reproduce: its fused DN and prior hash."""
    out = str(tmp_path_factory.mktemp("reference") / "undisturbed.zarr")
    res = run(scene_of(cogs), out, client=client, config=fast_config(), **ARGS)
    assert res.complete and res.tiles_computed == 9 and res.prior_hash
    return fused(out), res.prior_hash


@pytest.fixture(scope="module")
def reference_mtf(cogs, client, tmp_path_factory):
    """The undisturbed MTF-GLP-FS run (no prior; for the faults where only the store matters): its fused DN."""
    out = str(tmp_path_factory.mktemp("reference") / "undisturbed-mtf.zarr")
    assert run(scene_of(cogs), out, client=client, method="mtf-glp-fs", **ARGS).complete
    return fused(out), None


def kill_later(delay_s: float, marker: str, fn, *args):
    """Run ``fn(*args)`` on a worker; the first time (no ``marker`` file yet, then holding its PID), SIGKILL this
    worker process ``delay_s`` into it."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return fn(*args)


def test_workers_killed_during_prior_fit_and_mid_tiles_complete_with_identical_output(cogs, client, reference,
                                                                                      tmp_path, monkeypatch):
    marker = tmp_path / "prior-killed"
    monkeypatch.setattr(prior_module, "fit_prior_task", functools.partial(kill_later, 0.3, str(marker),
                                                                          fit_prior_task))

    class KillOnFirstTile:
        """Progress object: when the first tile completes, SIGKILL a worker process (its tile is in flight)."""

        total = 9
        killed: list[int] = []

        def update(self, n: int) -> None:
            if not self.killed:
                pid = sorted(client.run(os.getpid).values())[0]
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)

    bar = KillOnFirstTile()
    out = str(tmp_path / "killed.zarr")
    res = run(scene_of(cogs), out, client=client, config=fast_config(), progress=bar, **ARGS)
    after = client.run(os.getpid)
    settings = client.run(lambda: ({k: dask.config.get(k) for k in QUIET_CONFIG},
                                   {k: os.environ.get(k) for k in MALLOC_ENV}))
    assert int(marker.read_text()) not in after.values()  # the worker fitting the prior really died
    assert bar.killed and bar.killed[0] not in after.values()  # so did one computing a tile (both were replaced)
    # the replacement workers got the embedded cluster's settings too
    assert settings and all(v == (QUIET_CONFIG, MALLOC_ENV) for v in settings.values()), settings
    assert res.complete and res.tiles_failed == 0 and res.tiles_computed == 9
    assert res.prior_hash == reference[1]
    np.testing.assert_array_equal(fused(out), reference[0])


DRIVER = textwrap.dedent("""
    import os, signal, sys, threading
    import trapan_cloud.runner.prior as prior
    import trapan_cloud.store.io as store_io
    from trapan_cloud.cli import main

    phase, pan, ms, out, method = sys.argv[1:6]

    def kill_group():  # the driver, its scheduler and its worker processes, at once
        os.killpg(os.getpgid(0), signal.SIGKILL)

    if phase == "prior":  # on the worker fitting the prior, 0.3 s into the fit
        fit = prior.fit_prior_task
        def fit_then_die(*args):
            threading.Timer(0.3, kill_group).start()
            return fit(*args)
        prior.fit_prior_task = fit_then_die
    elif phase == "finalize":  # on a worker casting the blended blocks of `fused`, at the third block
        cast = store_io.to_output_dtype
        def cast_then_die(values, out_dtype, nodata):
            with open(out + ".blocks", "a") as f:
                f.write("x")
            if os.path.getsize(out + ".blocks") >= 3:
                kill_group()
            return cast(values, out_dtype, nodata)
        store_io.to_output_dtype = cast_then_die
    main(["run", "--pan", pan, "--ms", ms, "--sensor", "WV2", "--out", out, "--tile", "64", "--overlap", "16",
          "--preset", "fast", "--method", method])
""")


def start_cli(args: list[str]) -> subprocess.Popen:
    """A ``trapan``-like process in a new process group (as a terminal runs a job)."""
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_done(proc: subprocess.Popen, out: str, n: int, timeout_s: float = 180) -> None:
    """Poll the store until ``n`` tiles are marked done (the process still running)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if any(os.path.exists(os.path.join(out, m)) for m in (".zattrs", "zarr.json")):  # v2 or v3 metadata
            try:
                if int(open_store(out).done().sum()) >= n:
                    return
            except Exception:  # noqa: BLE001 - the store may be half-created at this moment
                pass
        time.sleep(0.2)
    raise AssertionError(f"{n} tiles not done within {timeout_s} s")


@pytest.mark.parametrize("phase, method", [("prior", "trapan"), ("tiles", "trapan"), ("finalize", "mtf-glp-fs")])
def test_killed_run_resumes_to_identical_output(phase, method, cogs, client, request, tmp_path):
    reference = request.getfixturevalue("reference" if method == "trapan" else "reference_mtf")
    out = str(tmp_path / "crashed.zarr")
    proc = start_cli(["-c", DRIVER, phase, cogs["pan"], cogs["ms"], out, method])
    if phase == "tiles":
        wait_for_done(proc, out, 3)
        os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]

    store = open_store(out)
    done_before, total = int(store.done().sum()), store.done().size
    expected = {"prior": ("fitting prior", 0, 0), "tiles": ("running", 3, total - 1),
                "finalize": ("running", total, total)}[phase]
    assert store.status == expected[0] and expected[1] <= done_before <= expected[2], (store.status, done_before)
    assert store_status(out)["status"] == expected[0]
    with pytest.raises(IncompleteRunError, match="not 'complete'"):
        open_result(out)  # a killed run never looks finished

    ticks: list[int] = []
    res = resume(out, client=client, progress=lambda: ticks.append(1))
    assert res.complete and res.tiles_done_before == done_before and res.prior_hash == reference[1]
    assert res.tiles_computed + res.tiles_skipped_nodata == total - done_before == len(ticks)
    np.testing.assert_array_equal(fused(out), reference[0])


def test_sigint_exits_130_with_one_line_and_leaves_a_resumable_store(cogs, client, reference, tmp_path):
    out = str(tmp_path / "interrupted.zarr")
    proc = start_cli(["-m", "trapan_cloud.cli", "run", "--pan", cogs["pan"], "--ms", cogs["ms"], "--sensor", "WV2",
                      "--out", out, "--tile", "64", "--overlap", "16", "--preset", "fast"])
    wait_for_done(proc, out, 2)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's ^C does: the whole foreground process group
    _, err = proc.communicate(timeout=120)
    lines = message_lines(err)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and lines == [f"interrupted; continue with `trapan resume {out}`"], err[-3000:]
    assert open_store(out).status == "running"

    res = resume(out, client=client)
    assert res.complete and res.tiles_done_before >= 2
    np.testing.assert_array_equal(fused(out), reference[0])


def test_unreadable_input_stops_the_run_at_once_naming_the_file(cogs, client, tmp_path):
    truncated = tmp_path / "pan_truncated.tif"
    data = open(cogs["pan"], "rb").read()
    truncated.write_bytes(data)
    scene = open_scene(pan=str(truncated), ms=cogs["ms"], sensor="WV2")
    truncated.write_bytes(data[: len(data) // 2])  # cut after opening: the header is intact, the last tiles are gone
    with pytest.raises(InputError, match=r"pan: cannot open '.*pan_truncated\.tif'.*truncated"):
        open_scene(pan=str(truncated), ms=cogs["ms"], sensor="WV2")  # opened now, it is refused up front
    out = str(tmp_path / "truncated.zarr")
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"pan: cannot read '.*pan_truncated\.tif'.*TIFFReadEncodedTile"):
        run(scene, out, client=client, method="mtf-glp-fs", **ARGS)
    assert time.monotonic() - t0 < 30  # a decode error is not retried
    store = open_store(out)  # what was done stays, resumable once the file is fixed
    assert store.status == "running" and store.failed() and not store.done().all()


def test_retry_io_rides_out_transient_errors_only():
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "ok"

    quick = Backoff(first_s=0.01, max_s=0.02, budget_s=5)
    assert retry_io(flaky, "flaky", quick) == "ok" and len(calls) == 3
    with pytest.raises(FileNotFoundError):  # not transient: raised at once
        retry_io(lambda: open("/nonexistent/x.tif"), "missing", quick)
    with pytest.raises(RetriesExhausted, match=r"down: still failing after .* ConnectionResetError"):
        retry_io(lambda: (_ for _ in ()).throw(ConnectionResetError("reset")), "down",
                 Backoff(first_s=0.01, max_s=0.02, budget_s=0.1))


def test_resume_refuses_foreign_store_and_in_memory_inputs(tmp_path):
    import zarr

    foreign = str(tmp_path / "foreign.zarr")
    zarr.open_group(foreign, mode="w").attrs["title"] = "not ours"
    from trapan_cloud.errors import ResumeMismatchError

    with pytest.raises(ResumeMismatchError, match="not a trapan_cloud store"):
        resume(foreign)
    with pytest.raises(InputError, match="no Zarr store"):
        resume(str(tmp_path / "missing.zarr"))


@pytest.mark.slow
def test_s3_outage_of_30_s_mid_run_leaves_no_failed_tile(cogs, tmp_path, monkeypatch):
    from urllib.parse import urlparse

    import s3fs

    with seaweedfs_s3(tmp_path / "seaweedfs") as s3:
        env = {**s3.env, "AWS_S3_ENDPOINT": urlparse(s3.endpoint).netloc, "AWS_HTTPS": "NO",
               "AWS_VIRTUAL_HOSTING": "FALSE"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        fs = s3fs.S3FileSystem(**s3.storage_options, skip_instance_cache=True)
        fs.put(cogs["pan"], s3.url("in/pan.tif"))
        fs.put(cogs["ms"], s3.url("in/ms.tif"))
        scene = open_scene(pan=s3.url("in/pan.tif"), ms=s3.url("in/ms.tif"), sensor="WV2")
        options = s3.storage_options
        client, _ = get_client(n_workers=2)  # after the environment is set: the workers inherit it
        try:
            undisturbed = run(scene, s3.url("undisturbed.zarr"), client=client, method="mtf-glp-fs",
                              storage_options=options, **ARGS)
            want = fused(s3.url("undisturbed.zarr"), options)
            out = s3.url("outage.zarr")
            done_at_restart: list[int] = []

            def restart() -> None:
                s3.start()
                done_at_restart.append(retry_io(lambda: int(open_store(out, options).done().sum()), "done flags"))

            class OutageAtFirstTile:
                """Progress object: at the first finished tile, stop the server; bring it back 30 s later."""

                total = 9
                timer: threading.Timer | None = None

                def update(self, n: int) -> None:
                    if self.timer is None:
                        s3.stop()
                        self.timer = threading.Timer(30, restart)
                        self.timer.start()

            bar = OutageAtFirstTile()
            res = run(scene, out, client=client, method="mtf-glp-fs", storage_options=options, progress=bar, **ARGS)
            bar.timer.join()
        finally:
            client.close()
        assert undisturbed.complete and done_at_restart[0] < 9  # tiles were waiting for the server when it came back
        assert res.complete and res.tiles_failed == 0 and res.tiles_computed == 9, res.errors
        np.testing.assert_array_equal(fused(out, options), want)
