"""A Dask `Client`: connected to an existing scheduler, or on an embedded `LocalCluster` sized to this machine.

Why a helper: the embedded cluster must bind loopback only, keep torch from oversubscribing the cores (every worker
process would otherwise start one torch thread per core) and Dask's own housekeeping off the torch threads
(`QUIET_CONFIG`), and advertise GPUs as the abstract resource ``GPU`` that the pipeline routes tile tasks with
(``reference/STACK.md`` §4.5).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import signal
from collections.abc import Iterator

import dask
from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin

from .errors import InputError

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
        client = Client(address)
        log.info("connected to the Dask scheduler at %s", address)
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
    threads = str(threads_per_worker)
    spawn_env = {**MALLOC_ENV, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                 "OPENBLAS_NUM_THREADS": threads}
    # Client(**cluster_kwargs) owns the LocalCluster it starts: client.close() also shuts the workers down.
    # glibc reads MALLOC_* once at process start, so they must be in the nanny's pre-spawn environment (read once, kept
    # for restarts). QUIET_CONFIG goes to the scheduler through the context and to the workers through the nanny's
    # ``config``: a nanny re-reads the global config when it restarts a worker, after the context has ended.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env, **QUIET_CONFIG}):
        client = Client(
            n_workers=n, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", resources={"GPU": 1} if gpu else None, config=dict(QUIET_CONFIG),
            preload=[__name__],  # `dask_setup`: the worker processes leave ^C to the driver
        )
    client.register_plugin(TorchThreads(threads_per_worker, gpu), name=TorchThreads.name)
    log.info("started an embedded Dask cluster: %d worker process(es) x %d thread(s)%s", n, threads_per_worker,
             ", GPU=1 each" if gpu else "")
    log_dashboard(client)
    return client, True


@contextlib.contextmanager
def client_for(address: str | None = None, *, client: Client | None = None, gpu: bool = False) -> Iterator[Client]:
    """``client`` as is, or `get_client` as a context: an embedded cluster started here is closed on exit (closing
    its client stops it), a remote one is left running."""
    if client is not None:
        yield client
        return
    client, owned = get_client(address, gpu=gpu)
    try:
        yield client
    finally:
        if owned:
            client.close()


def dashboard_link(client: Client) -> str | None:
    """The dashboard URL of the client's scheduler, or None when it serves none.

    The scheduler's HTTP server always runs (health and metrics routes); the dashboard pages need bokeh.
    """
    if importlib.util.find_spec("bokeh") is None:
        return None
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # noqa: BLE001 - a scheduler that cannot answer simply has no link to show
        return None
    return client.dashboard_link if "dashboard" in services else None


def log_dashboard(client: Client) -> str | None:
    """Log (INFO) and return the dashboard link, so a user can watch a long run."""
    link = dashboard_link(client)
    if link:
        log.info("Dask dashboard: %s", link)
    return link
