"""A Dask `Client`: connected to an existing scheduler, or on an embedded `LocalCluster` sized to this machine.

Why a helper: the embedded cluster must bind loopback only, keep torch from oversubscribing the cores (every worker
process would otherwise start one torch thread per core) and Dask's own housekeeping off the torch threads
(`QUIET_CONFIG`), and advertise GPUs as the abstract resource ``GPU`` that the pipeline routes tile tasks with
(``reference/STACK.md`` §4.5).

A user's own cluster gets the same settings from `worker_config` (the environment and Dask settings its workers must
start with) and `configure_cluster` (the `WorkerSettings` plugin, applied at run time, and a check of every worker);
`trapan run --scheduler` logs which settings a connected cluster lacks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
import socket
from collections.abc import Iterator

import dask
from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

from .errors import InputError
from .redaction import redact

log = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


class TorchThreads(WorkerPlugin):
    """Sets torch's intra-op thread count (and the worker's CUDA device) once per worker, also on workers added later.

    ``OMP_NUM_THREADS`` alone is not enough: torch may already be imported when the worker starts, so the plugin calls
    ``torch.set_num_threads`` in the worker process itself.
    """

    name = "trapan-torch-threads"

    def __init__(self, threads: int, gpu: bool = False) -> None:
        self.threads = int(threads)
        self.gpu = bool(gpu)

    def setup(self, worker) -> None:  # noqa: ANN001 - distributed.Worker
        import torch

        torch.set_num_threads(self.threads)
        if self.gpu and torch.cuda.is_available():
            # LocalCluster names its workers 0, 1, ...: spread them over the visible devices.
            try:
                index = int(worker.name)
            except (TypeError, ValueError):
                index = 0
            torch.cuda.set_device(index % torch.cuda.device_count())


class WorkerSettings(TorchThreads):
    """Every worker setting of the embedded cluster that can be applied to a running worker: torch's thread count
    (and CUDA device), no statistical profiler and a 1-s event-loop tick (`QUIET_CONFIG`).

    Register it on any cluster (`configure_cluster` does); it also reaches workers that join later. The malloc
    settings (`MALLOC_ENV`) cannot be applied here: glibc reads them when the process starts, so the workers must be
    started with them (`worker_config`).
    """

    name = "trapan-worker-settings"

    def setup(self, worker) -> None:  # noqa: ANN001 - distributed.Worker
        super().setup(worker)
        # The profiler and the tick are periodic callbacks the worker created from its config when it started: stop
        # the profiler's, slow the tick's (tornado reads ``callback_time`` at each reschedule).
        for key in ("profile", "profile-cycle"):
            pc = worker.periodic_callbacks.pop(key, None)
            if pc is not None:
                pc.stop()
        tick = worker.periodic_callbacks.get("tick")
        if tick is not None:
            tick.callback_time = max(tick.callback_time, _tick_ms(QUIET_CONFIG["distributed.admin.tick.interval"]))


def dask_setup(worker) -> None:  # noqa: ANN001 - distributed.Worker
    """Worker preload of the embedded cluster: a SIGINT does not interrupt its worker processes.

    They share the terminal's process group with ``trapan``, so a ^C reaches them too. The driver alone acts on it:
    it stops the run and closes the cluster, which ends the workers. A worker only lowers distributed's log level to
    ERROR, so the tasks that the close cancels end without a warning each (instead of every worker dying with a
    traceback). A preload (``Nanny(preload=...)``) runs in the worker's main thread as it starts, also after a restart.
    """
    signal.signal(signal.SIGINT, lambda signum, frame: logging.getLogger("distributed").setLevel(logging.ERROR))


MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": "268435456", "MALLOC_MMAP_THRESHOLD_": "33554432",
              "MALLOC_TOP_PAD_": "67108864"}
"""glibc malloc settings for worker processes running torch.

distributed's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` by default; setting any malloc parameter also freezes
glibc's dynamic mmap threshold at 128 KiB, so every tensor of a refinement step would be mmap'd and unmapped again
(bench/RESULTS.md, decision log). These values keep allocations up to 32 MiB in the heap and trim only above 256 MiB.
The worker image sets the same values (``deploy/dask.yaml``, ``tests/test_deploy.py`` keeps them equal)."""


QUIET_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s"}
"""Dask settings for a cluster whose tasks are long single-thread torch loops: no statistical profiler, a 1-s event
loop tick.

By default every worker samples its task thread's stack every 10 ms and every process's event loop wakes every
20 ms; each wake takes the GIL from the torch loop, and on a machine with one core per worker that CPU comes out of the
torch threads too (the effect on ``bench/pipeline.py`` is in bench/RESULTS.md, decision log). The cost: the
dashboard's Profile page stays empty and an event loop blocked for less than a second goes unnoticed (the warning
limit is 3 s anyway). The worker image sets the same (``deploy/dask.yaml``; ``tests/test_deploy.py`` keeps them
equal)."""

PROBE_TIMEOUT_S = 2.0
"""Seconds a TCP connection to a scheduler given by address may take: a refused or unroutable address fails within
them instead of distributed's 30-s retry loop."""
CONNECT_TIMEOUT_S = 10.0
"""Seconds the Dask handshake may take once the scheduler's port answered (a busy scheduler answers slowly)."""


def _tick_ms(interval: str) -> float:
    """An event-loop tick interval in milliseconds.

    >>> _tick_ms("1s")
    1000.0
    """
    from dask.utils import parse_timedelta

    return float(parse_timedelta(interval, default="ms")) * 1000.0


def worker_env(threads: int = 1) -> dict[str, str]:
    """The environment a worker process must start with: `MALLOC_ENV` and ``threads`` for OpenMP/MKL/OpenBLAS.

    >>> worker_env(2)["OMP_NUM_THREADS"], worker_env()["MALLOC_MMAP_THRESHOLD_"]
    ('2', '33554432')
    """
    t = str(int(threads))
    return {**MALLOC_ENV, "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t}


def worker_config(threads: int = 1) -> dict[str, object]:
    """The Dask settings to start a user's cluster with, so its workers match the embedded cluster's.

    ``distributed.nanny.pre-spawn-environ`` is the one place a nanny puts variables into the worker's environment
    before the process starts (``LocalCluster(env=...)`` and ``distributed.nanny.environ`` come too late for glibc);
    `QUIET_CONFIG` is also in it. Use ``with dask.config.set(worker_config()): LocalCluster(...)``, or the same keys in
    a YAML file for ``dask worker`` (``deploy/dask.yaml``). A nanny also copies these variables into its own process's
    environment, where they take precedence over the config of any cluster started later in that process: start a
    cluster with other settings in a fresh process.

    >>> sorted(worker_config())[0]
    'distributed.admin.tick.interval'
    """
    return {"distributed.nanny.pre-spawn-environ": worker_env(threads), **QUIET_CONFIG}


def missing_settings(dask_worker) -> list[str]:  # noqa: ANN001 - distributed.Worker, passed by Client.run
    """What a worker lacks of the embedded cluster's settings (empty: it has them all); runs on the worker."""
    missing = [f"{k}={os.environ.get(k, 'unset')} (want {v})" for k, v in MALLOC_ENV.items()
               if os.environ.get(k) != v]
    if "profile" in dask_worker.periodic_callbacks:
        missing.append("statistical profiler on")
    tick = dask_worker.periodic_callbacks.get("tick")
    if tick is not None and tick.callback_time < _tick_ms(QUIET_CONFIG["distributed.admin.tick.interval"]):
        missing.append(f"event-loop tick {tick.callback_time:g} ms")
    if not any(isinstance(p, TorchThreads) for p in dask_worker.plugins.values()):
        missing.append("torch thread count not set (no WorkerSettings plugin)")
    return missing


def check_workers(client: Client) -> dict[str, list[str]]:
    """Worker address → the settings it lacks (`missing_settings`), for every worker of ``client``'s cluster."""
    return client.run(missing_settings)


def configure_cluster(client: Client, threads: int = 1, gpu: bool = False) -> dict[str, list[str]]:
    """Give a user's cluster the embedded cluster's worker settings and return what each worker still lacks.

    Registers `WorkerSettings` (torch on ``threads`` threads per task, profiler off, 1-s tick), also for workers that
    join later. What it cannot apply to a running worker, the malloc settings, shows up in the returned check until
    the workers are started with `worker_config`.
    """
    client.register_plugin(WorkerSettings(threads, gpu), name=WorkerSettings.name)
    return check_workers(client)


def log_worker_settings(client: Client) -> dict[str, list[str]]:
    """Log (INFO) whether the workers of a connected cluster have the embedded cluster's settings; return the check."""
    try:
        check = check_workers(client)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run must not stop the run
        log.info("could not check the workers' settings (%s)", redact(f"{type(exc).__name__}: {exc}"))
        return {}
    if not check:
        log.info("the cluster has no worker yet; its workers' settings are checked when they join the run")
        return check
    lacking = {addr: m for addr, m in check.items() if m}
    if not lacking:
        log.info("all %d worker(s) have trapan_cloud's worker settings (malloc, torch threads, quiet housekeeping)",
                 len(check))
    else:
        first = next(iter(lacking.values()))
        log.info("%d of %d worker(s) lack trapan_cloud's worker settings, e.g. %s; start them with "
                 "trapan_cloud.worker_config() and call trapan_cloud.configure_cluster(client) (README, 'Your own "
                 "cluster')", len(lacking), len(check), "; ".join(first))
    return check


def _probe(address: str, timeout_s: float) -> None:
    """Open and close a TCP connection to a ``tcp://`` or ``tls://`` scheduler address (others are left to Dask)."""
    from distributed.comm import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme in ("tcp", "tls"):
        socket.create_connection(parse_host_port(location), timeout=timeout_s).close()


def connect(address: str, probe_timeout_s: float = PROBE_TIMEOUT_S,
            timeout_s: float = CONNECT_TIMEOUT_S) -> Client:
    """A `Client` of the scheduler at ``address``; an `InputError` within ``probe_timeout_s`` when nothing answers
    there, or within ``timeout_s`` when what answers is no scheduler."""
    try:
        _probe(address, probe_timeout_s)
        return Client(address, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - refused, timed out, malformed address, TLS misconfigured, garbage reply
        raise InputError(
            f"scheduler: cannot connect to a Dask scheduler at {redact(address)!r} "
            f"({redact(f'{type(exc).__name__}: {exc}')}); check the address and that the scheduler is running, or "
            f"drop --scheduler (and unset {SCHEDULER_ENV}) to use an embedded cluster") from None


def default_n_workers(threads_per_worker: int = 1, gpu: bool = False) -> int:
    """Workers for an embedded cluster: one per GPU when ``gpu``, else one per ``threads_per_worker`` cores.

    >>> default_n_workers(threads_per_worker=10**6)
    1
    """
    if gpu:
        import torch

        return max(torch.cuda.device_count(), 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(cores // max(int(threads_per_worker), 1), 1)


def get_client(address: str | None = None, *, n_workers: int | None = None, threads_per_worker: int = 1,
               gpu: bool = False) -> tuple[Client, bool]:
    """A connected `Client` and whether it is ``owned`` (an embedded cluster was started: close the client when done,
    which also stops that cluster).

    Parameters
    ----------
    address
        Scheduler address (``tcp://host:8786``). None falls back to ``$DASK_SCHEDULER_ADDRESS``, then to an embedded
        `LocalCluster` of worker processes on 127.0.0.1.
    n_workers
        Worker processes of the embedded cluster; default one per ``threads_per_worker`` cores, or one per GPU.
    threads_per_worker
        Task threads per worker, also used as torch's thread count there (avoids oversubscription).
    gpu
        Advertise ``GPU=1`` per embedded worker (tile tasks ask for it); an error when torch sees no CUDA device.
    """
    address = address or os.environ.get(SCHEDULER_ENV) or None
    if address:
        client = connect(address)
        log.info("connected to the Dask scheduler at %s", redact(address))
        log_worker_settings(client)
        log_dashboard(client)
        return client, False
    if threads_per_worker < 1:
        raise InputError(f"threads_per_worker: expected an integer >= 1, found {threads_per_worker!r}")
    if n_workers is not None and n_workers < 1:
        raise InputError(f"n_workers: expected an integer >= 1, found {n_workers!r}")
    if gpu:
        import torch

        if not torch.cuda.is_available():
            raise InputError("gpu: --gpu was asked for but torch sees no CUDA device on this machine; "
                             "drop --gpu, or pass --scheduler with the address of a cluster that has GPU workers")
    n = n_workers or default_n_workers(threads_per_worker, gpu)
    # Client(**cluster_kwargs) owns the LocalCluster it starts: client.close() also shuts the workers down.
    # glibc reads MALLOC_* once at process start, so they must be in the nanny's pre-spawn environment (read once, kept
    # for restarts). QUIET_CONFIG goes to the scheduler through the context and to the workers through the nanny's
    # ``config``: a nanny re-reads the global config when it restarts a worker, after the context has ended.
    with dask.config.set(worker_config(threads_per_worker)):
        client = Client(
            n_workers=n, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", resources={"GPU": 1} if gpu else None, config=dict(QUIET_CONFIG),
            preload=[__name__],  # `dask_setup`: the worker processes leave ^C to the driver
        )
    client.register_plugin(WorkerSettings(threads_per_worker, gpu), name=WorkerSettings.name)
    log.info("started an embedded Dask cluster: %d worker process(es) x %d thread(s)%s", n, threads_per_worker,
             ", GPU=1 each" if gpu else "")
    log_dashboard(client)
    return client, True


@contextlib.contextmanager
def client_for(address: str | None = None, *, client: Client | None = None, gpu: bool = False) -> Iterator[Client]:
    """``client`` as is, or `get_client` as a context whose client is closed on exit: an embedded cluster started
    here stops with it, a remote one keeps running (only this connection ends)."""
    if client is not None:
        yield client
        return
    client, _ = get_client(address, gpu=gpu)
    try:
        yield client
    finally:
        client.close()


def dashboard_link(client: Client) -> str | None:
    """The dashboard URL of the client's scheduler, or None when it serves none.

    The scheduler's HTTP server always runs (health and metrics routes); the dashboard pages need bokeh installed
    where the scheduler runs (``pip install 'trapan_cloud[dashboard]'``).
    """
    try:
        # a lambda travels by value: the scheduler need not have trapan_cloud installed
        has_bokeh = client.run_on_scheduler(lambda: importlib.util.find_spec("bokeh") is not None)
        served = has_bokeh and "dashboard" in client.scheduler_info().get("services", {})
    except Exception:  # noqa: BLE001 - a scheduler that cannot answer simply has no link to show
        return None
    return client.dashboard_link if served else None


def log_dashboard(client: Client) -> str | None:
    """Log (INFO, shown with ``trapan -v``) the dashboard link, or how to get one; return the link."""
    link = dashboard_link(client)
    if link:
        log.info("Dask dashboard: %s", link)
    else:
        log.info("Dask dashboard: not served (no bokeh where the scheduler runs); install it there with "
                 "pip install 'trapan_cloud[dashboard]' to watch runs in a browser")
    return link
