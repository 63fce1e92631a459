"""`run`, `resume` and `plan_run`: open → plan → scan → create the store → ensure the prior → drive the tiles
→ finalize.

Everything cheap is checked before a cluster is touched (scene, options, output, resume manifest). The store exists
before the prior is fitted (status "fitting prior"), so a run killed after the scan leaves a resumable store. The prior
is fitted once per scene and reaches every worker once, inside the run's `RunContext` plugin. Tiles are independent
futures whose seeds come from (run seed, tile index), so the output depends on neither the worker count nor the
completion order. The store's overlap-add runs only when every tile is done.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import IncompleteRunError, InputError
from ..progress import enter_phase
from ..redaction import redact, refuse_credentials
from ..retry import RetriesExhausted, retry_io
from ..scene.fingerprint import absolute
from .manifest import RunManifest, check_resume
from .options import RunOptions
from .plan import Job, check_memory, describe, prepare, worker_memory_bytes
from .prior import ensure_prior, scene_dask, valid_counts
from .result import RunResult, Tally, progress_adapter
from .scheduling import drive, free_slots, gpu_workers, largest_first
from .worker import RunContext, TileWork, input_names, tile_task, window

log = logging.getLogger(__name__)


def run(scene: Any, out: str, config: Any = None, client: Any = None, tile: int = 512, overlap: int | None = None,
        resume: bool = False, *, method: str | Callable[..., Any] = "trapan", seed: int = 0, gpu: bool = False,
        overwrite: bool = False, dtype: str = "auto", zarr_format: int = 2, storage_options: dict | None = None,
        prior_tiles: int = 4, progress: Any = None, dry_run: bool = False, runtime: Any = None,
        options: RunOptions | None = None) -> RunResult:
    """Pansharpen a whole scene tile by tile on Dask into a georeferenced, resumable Zarr store.

    ``scene``: a `Scene`, an `open_scene` Dataset or anything `open_scene` accepts; ``out``: a path or fsspec URL;
    ``client``: a `distributed.Client` (None: an embedded cluster, closed at the end); ``progress``: a tqdm-like object,
    a wrapper such as ``tqdm`` or a callable, advanced once per finished tile. The other keywords are the `RunOptions`
    fields of the same meaning (``tile`` is ``tile_px``, ``overlap`` is ``halo_px``); ``options`` replaces them all.
    """
    opts = options or RunOptions(config=config, tile_px=tile, halo_px=overlap, resume=resume, method=method,
                                 seed=seed, gpu=gpu, overwrite=overwrite, dtype=dtype, zarr_format=zarr_format,
                                 storage_options=storage_options, prior_tiles=prior_tiles, runtime=runtime,
                                 dry_run=dry_run)
    t_start, seconds = time.perf_counter(), {}
    refuse_credentials(str(out), "out")
    out = absolute(str(out))  # workers may run in another directory
    job = prepare(scene, opts)
    n_total = len(job.plan.tiles)
    if opts.dry_run:
        return RunResult(out, n_total, 0, 0, 0, 0, seconds={"total": time.perf_counter() - t_start})
    stored = _existing_store(out, job.manifest, opts)
    if stored is not None:  # missing or cut chunks (and, once complete, any that fail to decode) are redone
        stored.prepare_repair(job.plan, stored.verify(job.plan, decode=stored.status == "complete"))
    if stored is not None and stored.info["status"] == "complete":  # a resume with nothing to do starts no cluster
        return RunResult(out, n_total, n_total, 0, 0, 0, seconds={"total": time.perf_counter() - t_start},
                         prior_hash=stored.manifest.get("prior_hash"), complete=True)
    from ..cluster import client_for

    with client_for(client=client, gpu=opts.gpu) as cluster:
        if opts.gpu and gpu_workers(cluster) == 0:
            raise InputError("gpu: no worker of this cluster advertises the resource GPU; start workers with "
                             "`dask worker ... --resources GPU=1` or drop gpu")
        check_memory(job, worker_memory_bytes(cluster))  # the workers may have less memory than this machine
        enter_phase(progress, "scan")
        with _timed(seconds, "scan"):
            counts = valid_counts(job, cluster)
        store = stored or _create_store(out, job, opts)  # before the prior: a run killed while fitting it resumes
        with _timed(seconds, "prior"):
            prior_bytes, prior_hash = ensure_prior(job, cluster, opts, counts, store, progress)
        n_before = int(np.asarray(store.done(), dtype=bool).sum())
        with _timed(seconds, "tiles"):
            tally, fatal = drive_tiles(job, cluster, store, opts, prior_bytes, progress)
        enter_phase(progress, "finalize")
        with _timed(seconds, "finalize"):
            complete = _finalize(store, job, tally.errors, opts.keep_tiles)
    if fatal is not None:
        raise _stopped(fatal, out, len(tally.errors))
    seconds["total"] = time.perf_counter() - t_start
    return tally.result(out, n_total, n_before, seconds, prior_hash, complete)


def check_run(scene: Any, out: str, options: RunOptions) -> None:
    """Every check `run` makes before it needs a cluster: the scene, the options, the tile plan and the output (an
    existing output without overwrite or resume, a foreign one with overwrite, a resume with other settings).

    The CLI calls it before it starts a cluster, so such errors arrive in a second, not after the cluster is up.
    """
    refuse_credentials(str(out), "out")
    job = prepare(scene, options)
    if not options.dry_run:
        _existing_store(str(out), job.manifest, options)


@contextlib.contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Record the wall seconds of a phase."""
    t0 = time.perf_counter()
    yield
    seconds[phase] = time.perf_counter() - t0


def _existing_store(out: str, manifest: RunManifest, opts: RunOptions) -> Any:
    """The store to resume into (its manifest checked against ``manifest``), or None for a new run; refuses an
    existing output without ``overwrite`` or ``resume``."""
    from ..store import check_overwrite, exists_error, open_store, output_exists

    if not output_exists(out, opts.storage()):
        return None
    if not opts.resume:
        if not opts.overwrite:
            raise exists_error(out)
        check_overwrite(out, opts.storage())  # only a store of ours may go; refused before any work
        return None
    store = open_store(out, storage_options=opts.storage())
    stored = RunManifest.from_dict(store.manifest, where=redact(out))
    check_resume(stored, manifest.with_prior(stored.prior_hash), redact(out))
    return store


def _create_store(out: str, job: Job, opts: RunOptions) -> Any:
    """A new store for the run, holding its manifest (no prior yet: status "fitting prior" when the method needs
    one)."""
    from ..store.layout import FITTING_PRIOR, RUNNING, create_store

    m = job.manifest
    store = create_store(out, plan=job.plan, bands=m.bands, crs=m.grid.crs, transform=m.grid.pan_transform,
                         manifest=m.to_dict(), dtype=m.dtype, nodata=job.nodata, zarr_format=opts.zarr_format,
                         storage_options=opts.storage(), overwrite=opts.overwrite,
                         status=FITTING_PRIOR if job.method.needs_prior else RUNNING)
    return store


def drive_tiles(job: Job, client: Any, store: Any, opts: RunOptions, prior_bytes: bytes | None,
                progress: Any) -> tuple[Tally, BaseException | None]:
    """Compute every tile not marked done (`scheduling.drive`), the run's context shipped once to each worker.

    Returns the tally and the error that stopped the run early, if any: a tile failing with an `InputError` (an
    input that cannot be read or holds no valid DN) or `RetriesExhausted` (storage away for longer than the retry
    budget) would fail every tile after it, so no new tile is submitted then and the ones in flight finish.
    """
    done = np.asarray(store.done(), dtype=bool)
    todo = largest_first(t for t in job.plan.tiles if not done[t.row, t.col])
    log.info("%d tile(s) in the plan, %d already done, %d to compute", len(job.plan.tiles), int(done.sum()),
             len(todo))
    name = f"trapan-run-{uuid.uuid4().hex[:12]}"
    work = TileWork(store.url, opts.storage(), job.plan, job.method, job.sensor, job.nodata, int(opts.seed),
                    job.config, opts.runtime, prior_bytes)
    _register(client, RunContext(name, work))
    pan, ms = scene_dask(job)
    names = input_names(job.scene.source)

    def submit(t: Any) -> Any:
        return client.submit(tile_task, name, t.index, window(pan, ms, t, names),
                             key=f"trapan-tile-{t.index}-{name}", resources=opts.resources, retries=1, pure=False)

    tally, fatal = Tally(), None
    try:
        finished, tick = progress_adapter(progress, drive(todo, submit, lambda: free_slots(client, opts.gpu),
                                                          stop=lambda: fatal is not None), len(todo))
        for t, f in finished:
            if f.status == "finished":
                tally.add(f.result())
            else:
                exc = _exception(f)
                tally.errors[t.index] = redact(f"{type(exc).__name__}: {exc}")
                log.warning("tile %d (core %s) failed: %s", t.index, t.core, tally.errors[t.index])
                if fatal is None and isinstance(exc, (InputError, RetriesExhausted)):
                    fatal = exc
                    log.warning("stopping the run: no new tile is submitted, those in flight finish")
            f.release()
            tick()
    finally:
        try:
            client.unregister_worker_plugin(name)
        except OSError as exc:  # a worker died during the broadcast; the scheduler has dropped the plugin already
            log.warning("removing the run context from the workers: %s", redact(str(exc)))
    return tally, fatal


def _register(client: Any, context: RunContext) -> None:
    """Ship the run context to every worker. The scheduler keeps it for workers that join or restart; a worker that
    dies during the broadcast fails the call (its stream closes), so the broadcast is repeated for the others."""
    retry_io(lambda: client.register_plugin(context, name=context.name), "shipping the run context to the workers",
             transient=lambda exc: isinstance(exc, OSError))


def _exception(future: Any) -> BaseException:
    """The error of a failed or cancelled future."""
    try:
        return future.exception()
    except BaseException as cancelled:  # noqa: BLE001 - a cancelled future has no exception to give
        return cancelled


def _stopped(fatal: BaseException, out: str, n_failed: int) -> Exception:
    """The error a run stopped early by ``fatal`` ends with: the input error as is (exit 1), or storage that stayed
    away as an incomplete run (exit 3); both leave a resumable store."""
    if isinstance(fatal, InputError):
        return InputError(redact(str(fatal)))
    return IncompleteRunError(f"{redact(str(fatal))}; {n_failed} tile(s) failed and the rest were not started: run "
                              f"`trapan resume {redact(out)}` once the storage answers again")


def _finalize(store: Any, job: Job, errors: dict[int, str], keep_tiles: bool = False) -> bool:
    """Record the failures (clearing earlier ones that now succeeded), check the done tiles' chunks, blend when every
    tile is done and intact, and write the product's STAC item; each rewrite is retried through transient storage
    errors."""
    from ..store import write_item

    where = redact(store.url)
    retry_io(lambda: store.record_failures(errors), f"recording the failed tiles in {where}")
    if errors:
        log.warning("%d tile(s) failed; the store is not finalised: run `trapan resume %s` to retry them",
                    len(errors), where)
        return False
    if store.prepare_repair(job.plan, store.verify(job.plan, decode=False)):  # a slot lost since its tile was done
        log.warning("the store is not finalised: run `trapan resume %s` to recompute the damaged tiles", where)
        return False
    retry_io(lambda: store.finalize(job.plan, keep_tiles=keep_tiles), f"blending the tiles of {where}")
    retry_io(lambda: write_item(store), f"writing the STAC item of {where}")
    return True


def plan_run(scene: Any, out: str | None = None, config: Any = None, tile: int = 512, overlap: int | None = None, *,
             method: str | Callable[..., Any] = "trapan", seed: int = 0, dtype: str = "auto", zarr_format: int = 2,
             prior_tiles: int = 4) -> dict[str, Any]:
    """The plan of a run without running it (``trapan run --dry-run``): tiles, halo, memory per task, steps per tile.

    Validates exactly what `run` validates, opens no cluster and writes nothing.
    """
    opts = RunOptions(config=config, tile_px=tile, halo_px=overlap, method=method, seed=seed, dtype=dtype,
                      zarr_format=zarr_format, prior_tiles=prior_tiles)
    return describe(prepare(scene, opts), out)


def resume_plan(out: str, storage_options: dict | None = None, gpu: bool = False,
                runtime: Any = None) -> tuple[Any, RunOptions]:
    """The scene and options that finish the run in ``out``, from its store alone: the inputs the manifest names are
    opened again (and refused if they changed since, `Source.reopen`). Needs no cluster, so the CLI calls it first."""
    from ..registry import get_method
    from ..scene.model import Source
    from ..store import open_store

    refuse_credentials(str(out), "out")
    m = RunManifest.from_dict(open_store(out, storage_options=storage_options).manifest, where=redact(out))
    if ":" in m.method:
        raise InputError(f"out: the run in {redact(out)!r} used a Python callable ({m.method!r}); resume it with "
                         "run(scene, out, method=<the callable>, resume=True)")
    method = get_method(m.method, tiled=True)
    opts = RunOptions(config=method.load_config(m.config), tile_px=m.tiling["tile_px"],
                      halo_px=m.tiling["halo_px"], resume=True, method=method, seed=m.seed, gpu=gpu, dtype=m.dtype,
                      zarr_format=m.zarr_format, storage_options=storage_options, prior_tiles=m.prior_tiles or 4,
                      runtime=runtime)
    return Source.from_dict(m.inputs).reopen(m.sensor, m.nodata), opts


def resume(out: str, client: Any = None, storage_options: dict | None = None, progress: Any = None,
           gpu: bool = False, runtime: Any = None) -> RunResult:
    """Finish an interrupted run from its store alone (`resume_plan`): compute the tiles not marked done (or whose
    chunks are damaged), blend. ``runtime`` may differ from the one the run started with (it changes no output)."""
    scene, opts = resume_plan(out, storage_options, gpu, runtime)
    return run(scene, out, client=client, progress=progress, options=opts)
