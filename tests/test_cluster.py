"""Clusters: an unreachable scheduler fails fast (issue 16.5), the embedded cluster's worker settings for a user's
own cluster (16.8), the dashboard link or how to get one (16.7), and which checks start no cluster (16.5)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from trapan_cloud.cli import main
from trapan_cloud.cluster import MALLOC_ENV, check_workers, configure_cluster, worker_config
from trapan_cloud.samples import load_sample, write_sample_item

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def item(tmp_path_factory) -> str:
    """A tiny STAC item, opened once here, and the preset loaded: what a first command imports (odc-stac, torch) is
    not what the fail-fast timing below measures."""
    from trapan_cloud.jobs import load_config
    from trapan_cloud.scene import open_scene

    load_config("default")
    sample = load_sample("sn6-1").crop("cl", 0, 0, 32)  # 128x128 PAN, 4 x 32x32 MS
    path = write_sample_item(sample, str(tmp_path_factory.mktemp("cl")))
    open_scene(path)
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["refused", "tcp://no-port-here", "ftp://127.0.0.1:8786"])
def test_unreachable_scheduler_fails_fast_in_one_line(item, tmp_path, address):
    address = f"tcp://127.0.0.1:{closed_port()}" if address == "refused" else address
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["run", "--stac", item, "--out", str(tmp_path / "o.zarr"), "--method", "exp",
                                       "--tile", "64", "--overlap", "32", "--scheduler", address])
    seconds = time.perf_counter() - t0
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()  # no progress yet: the error is all there is
    assert len(lines) == 1 and lines[0].startswith("Error: InputError: scheduler: cannot connect"), lines
    assert address in lines[0] and "--scheduler" in lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert seconds < 3.0, seconds
    assert not (tmp_path / "o.zarr").exists()


def test_unreachable_scheduler_from_the_environment_names_the_variable(item, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", f"tcp://127.0.0.1:{closed_port()}")
    result = CliRunner().invoke(main, ["batch", "--catalog", item, "--out-prefix", str(tmp_path / "b")])
    assert result.exit_code == 1 and "DASK_SCHEDULER_ADDRESS" in result.stderr and "Traceback" not in result.output


def test_status_and_dry_run_start_no_cluster(item, tmp_path, no_cluster):
    """`status` and `run --dry-run` need no cluster (a resume with nothing to do: tests/test_cli.py)."""
    from affine import Affine

    from trapan_cloud.store import create_store
    from trapan_cloud.tiling import plan_tiles

    url = str(tmp_path / "s.zarr")
    create_store(url, plan=plan_tiles((40, 36), 4, tile_px=16, halo_px=4), bands=("b", "g", "r"), crs="EPSG:32633",
                 transform=Affine(0.5, 0, 5e5, 0, -0.5, 4.1e6), manifest={"seed": 0})
    status = CliRunner().invoke(main, ["status", url, "--json", "-"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["tiles_total"] == 9
    dry = CliRunner().invoke(main, ["run", "--stac", item, "--out", str(tmp_path / "d.zarr"), "--preset", "fast",
                                    "--tile", "64", "--overlap", "16", "--dry-run", "--json", "-"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["tiles"]["total"] == 4 and not (tmp_path / "d.zarr").exists()
    assert "trapan " not in dry.stderr  # a dry run shows no run progress


def test_embedded_cluster_workers_have_every_setting(client):
    assert check_workers(client) and all(m == [] for m in check_workers(client).values())


def test_verbose_run_on_a_user_cluster_logs_its_settings_and_the_dashboard(item, tmp_path):
    """`trapan -v run --scheduler` says whether the workers have the settings (before and after
    `configure_cluster`), and gives the dashboard link or how to get one."""
    with dask.config.set(worker_config()), LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                                                        dashboard_address="127.0.0.1:0") as cluster:
        args = ["-v", "run", "--stac", item, "--method", "exp", "--tile", "64", "--overlap", "32",
                "--scheduler", cluster.scheduler_address]
        before = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a.zarr")])
        assert before.exit_code == 0, before.output
        assert "1 of 1 worker(s) lack trapan_cloud's worker settings" in before.stderr
        assert "torch thread count not set" in before.stderr and "configure_cluster" in before.stderr
        with Client(cluster) as user:
            assert all(m == [] for m in configure_cluster(user).values())  # started with worker_config: all set
        after = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b.zarr")])
        assert after.exit_code == 0, after.output
        assert "all 1 worker(s) have trapan_cloud's worker settings" in after.stderr
    if importlib.util.find_spec("bokeh"):
        assert "Dask dashboard: http" in after.stderr
    else:
        assert "Dask dashboard: not served" in after.stderr and "pip install 'trapan_cloud[dashboard]'" in after.stderr


def example(route: str, tmp_path) -> dict:
    """examples/user_cluster.py in a fresh process whose environment has no malloc settings."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "user_cluster.py"), "--route", route, "--workers",
                           "1", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["run_complete"], report
    return report


def test_user_cluster_example_plain_cluster_gets_what_a_running_worker_can_take(tmp_path):
    """A plain LocalCluster lacks every setting; `configure_cluster` applies all but the malloc ones, which need the
    worker process to start with them."""
    report = example("plain", tmp_path)
    before, after = report["before configure_cluster"], report["after configure_cluster"]
    assert {m.split("=")[0] for m in before if m.startswith("MALLOC")} == set(MALLOC_ENV)
    assert {"statistical profiler on", "torch thread count not set (no WorkerSettings plugin)"} <= set(before)
    assert any(m.startswith("event-loop tick 20 ms") for m in before)
    assert sorted(after) == sorted(m for m in before if m.startswith("MALLOC"))


def test_user_cluster_example_worker_config_route_has_every_setting(tmp_path):
    report = example("worker_config", tmp_path)
    assert report["before configure_cluster"] == ["torch thread count not set (no WorkerSettings plugin)"]
    assert report["after configure_cluster"] == []
