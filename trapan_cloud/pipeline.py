"""`run` / `resume`: the composition root — validate → plan → one Stage-1 prior → tiles on Dask → blend → Zarr.

Why it is shaped this way (``reference/STACK.md`` §4.4, §4.5, §5.3):

* Everything cheap is checked before a cluster is touched: scene attributes, tile and halo sizes, the output (an
  existing store is refused unless ``overwrite`` or ``resume``; a resume into a store with another manifest is refused).
* The prior is fitted **once** per scene, on a worker (a GPU one when asked), from a deterministic sample of the most
  valid tiles, and reaches every worker **once**, inside a `WorkerPlugin` together with the plan and the store URL.
  A plugin is re-applied to workers that join later (or are restarted after a crash), which a scattered future is not.
* Tiles are independent futures. Each reads only its ext window of the lazy scene, refines it with a seed derived
  from (run seed, tile index) by SHA-256 (so the output does not depend on worker count or completion order), writes
  ``weight × prediction`` into its own stage-A slot and only then marks itself done. Tiles go out largest first, one
  per worker thread and only when a thread frees up, each task reading its own window (a small culled graph), so
  driver and worker memory stay flat in scene size and no tile or read waits behind a busy worker while another
  idles; `as_completed` drives progress and the failure report. Tile tasks carry ``resources={"GPU": 1}`` on the
  submit itself, which no graph optimisation drops.
* The store's cheap overlap-add (`RunStore.finalize`) runs only when every tile is done.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from . import __version__
from .errors import InputError, StoreExistsError
from .tiling import Tile, TilePlan, blend_weights, plan_tiles
from .validate import validity

log = logging.getLogger(__name__)

QA_BLOCK = 32
"""HQNR needs window sides that are multiples of 32 (the Q2n block)."""


# ----------------------------------------------------------------------------------------------- results
@dataclass
class RunResult:
    """What a `run` or `resume` did; ``tiles_failed`` > 0 means the store is not complete (resume to retry)."""

    out: str
    """The output store (path or URL, as given)."""
    tiles_total: int
    """Tiles in the plan."""
    tiles_done_before: int
    """Tiles already marked done when this call started (resume)."""
    tiles_computed: int
    """Tiles refined and written by this call."""
    tiles_skipped_nodata: int
    """Tiles whose whole window is nodata: written as nodata without refinement (also marked done)."""
    tiles_failed: int
    """Tiles whose task raised (after retries); they stay not-done."""
    errors: dict[int, str] = field(default_factory=dict)
    """Tile index → error message of each failed tile."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per phase: scan, prior, tiles, finalize, total."""
    prior_hash: str | None = None
    """SHA-256 of the shared Stage-1 prior (None for classical methods)."""
    qa: dict[str, Any] = field(default_factory=dict)
    """Summary of the per-tile QA of the tiles computed by this call (HQNR, D_λ^K, D_s, steps, seconds)."""
    complete: bool = False
    """True when every tile is done and the blended ``fused`` array is written."""

    @property
    def seconds_total(self) -> float:
        """Wall seconds of the whole call."""
        return float(self.seconds.get("total", 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (``trapan run --json``)."""
        d = asdict(self)
        d["errors"] = {str(k): v for k, v in self.errors.items()}
        return d

    def summary(self) -> str:
        """One human line for the CLI."""
        state = "complete" if self.complete else f"INCOMPLETE ({self.tiles_failed} failed: resume to retry)"
        hq = self.qa.get("hqnr_mean")
        hq_text = f", mean tile HQNR {hq:.4f}" if isinstance(hq, float) and math.isfinite(hq) else ""
        return (f"{self.out}: {state}; {self.tiles_total} tiles: {self.tiles_done_before} done before, "
                f"{self.tiles_computed} computed, {self.tiles_skipped_nodata} nodata-only{hq_text}; "
                f"{self.seconds_total:.1f} s")


# ----------------------------------------------------------------------------------------------- helpers
def tile_seed(run_seed: int, index: int) -> int:
    """Seed of one tile: SHA-256 of (run seed, tile index), so it never depends on the worker or on ``hash()``.

    >>> tile_seed(0, 3) == tile_seed(0, 3), tile_seed(0, 3) != tile_seed(1, 3), 0 <= tile_seed(7, 9) < 2**32
    (True, True, True)
    """
    digest = hashlib.sha256(f"trapan-tile:{int(run_seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _method_name(method: str | Callable[..., Any]) -> str:
    """Manifest spelling of a method: its name, or ``module:qualname`` for a callable."""
    if callable(method):
        return f"{getattr(method, '__module__', '?')}:{getattr(method, '__qualname__', repr(method))}"
    return str(method).lower()


def _resolve_method(method: str | Callable[..., Any]) -> tuple[str, Callable[..., Any] | None]:
    """``("trapan", None)``, or a classical name and its tile-safe function, or a user callable."""
    from .fusion import CLASSICAL

    if callable(method):
        return _method_name(method), method
    key = str(method).lower()
    if key == "trapan":
        return key, None
    if key == "gdal-brovey":
        raise InputError("method: gdal-brovey runs GDAL on whole files and cannot be tiled; use `trapan baseline` "
                         "for it, or one of the other methods here")
    if key not in CLASSICAL:
        raise InputError(f"method: unknown method {method!r}; choose trapan or one of "
                         f"{', '.join(m for m in CLASSICAL if m != 'gdal-brovey')}")
    from .baselines import METHODS

    return key, METHODS[key]


def _classical_kwargs(fn: Callable[..., Any]) -> dict[str, str]:
    """Tile-safe boundaries for a baseline: the toolbox's circular interpolation would wrap a tile's opposite edges."""
    import inspect

    params = inspect.signature(fn).parameters
    return {"interp_mode": "reflect"} if "interp_mode" in params else {}


def _as_scene(scene: Any) -> Any:
    """An `open_scene` Dataset: passed through, or opened from whatever `open_scene` accepts."""
    import xarray as xr

    if isinstance(scene, xr.Dataset):
        return scene
    from .scene import open_scene

    return open_scene(scene)


def _check_scene(ds: Any) -> None:
    """The attributes and layout the pipeline relies on; a message names what is missing."""
    missing = [k for k in ("pan", "ms") if k not in ds]
    if missing:
        raise InputError(f"scene: expected variables 'pan' and 'ms' (from open_scene), missing {missing}")
    need = ("sensor", "ratio", "crs", "pan_transform")
    absent = [k for k in need if k not in ds.attrs]
    if absent:
        raise InputError(f"scene: attributes {absent} are missing; open the scene with trapan_cloud.open_scene")
    pan, ms, r = ds["pan"], ds["ms"], int(ds.attrs["ratio"])
    if pan.ndim != 2 or ms.ndim != 3:
        raise InputError(f"scene: expected pan (y, x) and ms (band, y_ms, x_ms), found pan {pan.dims} and ms {ms.dims}")
    if tuple(pan.shape) != (r * ms.shape[1], r * ms.shape[2]):
        raise InputError(f"scene: pan shape {tuple(pan.shape)} is not ratio {r} x the ms grid {tuple(ms.shape[1:])}")


def _dask(arr: Any, chunks: Any) -> Any:
    """The dask array behind a DataArray (a numpy-backed one is wrapped, chunked like the tiles)."""
    import dask.array as da

    data = arr.data
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=chunks)


def _json_value(v: Any) -> Any:
    """A manifest-safe copy of an attribute value (numpy scalars and tuples become plain JSON)."""
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in list(v)]
    if isinstance(v, np.generic):
        return v.item()
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


@dataclass(frozen=True)
class _Job:
    """Everything `run` decided before touching a cluster."""

    ds: Any
    plan: TilePlan
    method: str
    fn: Callable[..., Any] | None
    config: Any
    sensor: str
    nodata: float | None
    bands: int
    manifest: dict[str, Any]


def _prepare(scene: Any, config: Any, tile: int, overlap: int | None, method: str | Callable[..., Any], seed: int,
             dtype: str, zarr_format: int, prior_tiles: int) -> _Job:
    """Validate the inputs and build the plan and the manifest (no prior hash yet); no cluster, no store."""
    ds = _as_scene(scene)
    _check_scene(ds)
    name, fn = _resolve_method(method)
    if name == "trapan":
        from .method.config import TrapanConfig

        config = TrapanConfig.default() if config is None else config
        if not isinstance(config, TrapanConfig):
            raise InputError(f"config: expected a TrapanConfig, found {type(config).__name__}")
        if int(prior_tiles) < 1:
            raise InputError(f"prior_tiles: expected an integer >= 1, found {prior_tiles!r}")
    else:
        config = None  # a TrapanConfig (e.g. the CLI's preset) has no meaning for other methods
    if str(dtype) not in ("uint16", "float32"):
        raise InputError(f"dtype: expected 'uint16' or 'float32', found {dtype!r}")
    if int(zarr_format) not in (2, 3):
        raise InputError(f"zarr_format: expected 2 or 3, found {zarr_format!r}")
    from .sensors import get_sensor

    sen = get_sensor(ds.attrs["sensor"])
    bands = int(ds["ms"].shape[0])
    sen.check_bands(bands, "scene ms")
    ratio = int(ds.attrs["ratio"])
    plan = plan_tiles(tuple(ds["pan"].shape), ratio, tile_px=tile, halo_px=overlap)
    nodata = ds.attrs.get("nodata")
    nodata = None if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)) else float(nodata)
    band_names = [str(b) for b in ds.attrs.get("band_names", ds["ms"].coords["band"].values
                                               if "band" in ds["ms"].coords else sen.bands_for(bands))]
    manifest = {
        "trapan_cloud_version": __version__,
        "inputs": _json_value(ds.attrs.get("source", {})),
        "sensor": sen.name,
        "bands": band_names,
        "nodata": nodata,
        "grid": {"crs": str(ds.attrs["crs"]), "pan_transform": _json_value(ds.attrs["pan_transform"])[:6],
                 "ms_transform": _json_value(ds.attrs.get("ms_transform", []))[:6],
                 "subpixel_shift_px": _json_value(ds.attrs.get("subpixel_shift_px")),
                 "pan_shape": list(plan.shape), "ratio": ratio},
        "tiling": plan.to_dict(),
        "method": name,
        "config": config.to_dict() if config is not None else None,
        "config_hash": config.hash() if config is not None else None,
        "prior_tiles": int(prior_tiles) if name == "trapan" else 0,
        "seed": int(seed),
        "dtype": str(dtype),
        "zarr_format": int(zarr_format),
    }
    return _Job(ds, plan, name, fn, config, sen.name, nodata, bands, manifest)


def _task_memory_bytes(job: _Job) -> int:
    """Rough peak memory of one tile task: inputs, float64 working copies, output, weights, network activations."""
    he = we = job.plan.slot_px
    B, r = job.bands, job.plan.ratio
    px = he * we
    base = px * 8 * 2 + B * px // (r * r) * 8 + B * px * (4 + 4 + 8 * 4)  # pan/weights, ms, fused/weighted/workspace
    if job.method != "trapan":
        return int(base)
    cfg = job.config
    infer = cfg.width * px * 4 * 4  # a few live feature maps at full tile size
    crop = (cfg.crop_px or he) ** 2 * (cfg.batch if cfg.crop_px else 1)
    train = crop * cfg.width * 4 * (2 * cfg.depth + 2) * 3  # activations, gradients, Adam moments (order of)
    return int(base + infer + train)


def plan_run(scene: Any, out: str | None = None, config: Any = None, tile: int = 512, overlap: int | None = None, *,
             method: str | Callable[..., Any] = "trapan", seed: int = 0, dtype: str = "uint16", zarr_format: int = 3,
             prior_tiles: int = 4) -> dict[str, Any]:
    """The plan of a run without running it (``trapan run --dry-run``): tiles, halo, memory per task, steps per tile.

    Validates exactly what `run` validates, opens no cluster and writes nothing.
    """
    job = _prepare(scene, config, tile, overlap, method, seed, dtype, zarr_format, prior_tiles)
    p = job.plan
    return {
        "out": out,
        "method": job.method,
        "sensor": job.sensor,
        "pan_shape": list(p.shape),
        "ratio": p.ratio,
        "bands": job.bands,
        "tile_px": p.tile_px,
        "halo_px": p.halo_px,
        "tiles": {"rows": p.n_rows, "cols": p.n_cols, "total": len(p.tiles)},
        "overlap_overhead": round(sum(t.ext_shape[0] * t.ext_shape[1] for t in p.tiles) / (p.shape[0] * p.shape[1])
                                  - 1.0, 4),
        "memory_per_task_mb_estimate": round(_task_memory_bytes(job) / 2**20, 1),
        "steps_per_tile_max": job.config.rao_steps if job.method == "trapan" else 0,
        "prior": {"tiles": job.manifest["prior_tiles"], "dam_steps": job.config.dam_steps,
                  "warmup_steps": job.config.warmup_steps} if job.method == "trapan" else None,
        "config_hash": job.manifest["config_hash"],
    }


def _output_exists(out: str, storage_options: dict | None) -> bool:
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
    return bool(fs.exists(path))


def _resume_check(manifest: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The manifest a resume must match: everything, the package version included (another version may refine tiles
    differently); the prior's hash is the stored one (the resume loads that prior instead of refitting it)."""
    return {**manifest, "prior_hash": stored.get("prior_hash")}


def _valid_counts(job: _Job, client: Any) -> np.ndarray:
    """Valid MS pixels per tile core, ``(n_rows, n_cols)``, computed on the cluster from the MS grid only (cheap).

    A pixel is valid where no MS band equals nodata (the rule of `validate.validity`, at MS scale).
    """
    plan = job.plan
    if job.nodata is None:
        return np.array([[t.core_shape[0] * t.core_shape[1] // plan.ratio**2 for t in plan.tiles]]).reshape(
            plan.n_rows, plan.n_cols)
    ms = _dask(job.ds["ms"], (job.bands, plan.tile_px // plan.ratio, plan.tile_px // plan.ratio))
    ys, xs = plan.core_chunks
    valid = (ms != job.nodata).all(axis=0).astype(np.int64)
    valid = valid.rechunk((tuple(v // plan.ratio for v in ys), tuple(v // plan.ratio for v in xs)))
    counts = valid.map_blocks(lambda b: np.array([[b.sum()]], dtype=np.int64), dtype=np.int64,
                              chunks=((1,) * plan.n_rows, (1,) * plan.n_cols))
    return np.asarray(client.compute(counts).result())


def _prior_sample(plan: TilePlan, counts: np.ndarray, k: int) -> list[Tile]:
    """``k`` tiles for Stage 1: the fully valid ones spread evenly over the scene, topped up by the most valid.

    Deterministic in the plan and the data, so a rerun fits the same prior.
    """
    frac = np.array([counts.flat[t.index] / max(t.core_shape[0] * t.core_shape[1] // plan.ratio**2, 1)
                     for t in plan.tiles])
    full = [t for t in plan.tiles if frac[t.index] >= 1.0]
    if len(full) >= k:
        picks = np.unique(np.linspace(0, len(full) - 1, k).round().astype(int))
        return [full[i] for i in picks]
    rest = sorted((t for t in plan.tiles if 0 < frac[t.index] < 1.0), key=lambda t: (-frac[t.index], t.index))
    return full + rest[: k - len(full)]


class LazyWindow:
    """A tile's ext window of PAN (H, W) and MS (B, h, w) as a small culled dask graph, read by the task that uses it.

    Why not separate read tasks: neighbouring windows share COG chunks and the scene's open/config keys, so the
    scheduler placed a window's reads where those keys lived, often on a worker busy with a tile; the read, and the
    tile waiting on it, sat there while the other worker idled (seen in task-stream timelines of 2-worker runs, before
    most tiles). Read in the task, a window needs nothing from any other worker. A plain class (not a dataclass or
    tuple), so that distributed ships the graph as data instead of computing it as a dependency.
    """

    def __init__(self, pan: Any, ms: Any) -> None:
        import dask

        self.pan, self.ms = dask.optimize(pan, ms)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's pixels, read in this thread (a worker's task thread must not wait on the cluster)."""
        import dask

        return dask.compute(self.pan, self.ms, scheduler="sync")


def _window(pan: Any, ms: Any, tile: Tile) -> LazyWindow:
    """The lazy ext window of one tile."""
    ys, xs = tile.ext_slices
    mys, mxs = tile.ms_ext_slices
    return LazyWindow(pan[ys, xs], ms[:, mys, mxs])


# ----------------------------------------------------------------------------------------------- worker side
class RunContext(WorkerPlugin):
    """What every tile task needs, shipped once per worker as a plugin (prior bytes, plan, store, method).

    Registered under a per-run name; distributed also applies it to workers that join or restart mid-run.
    """

    def __init__(self, name: str, out: str, storage_options: dict | None, plan: TilePlan, method: str,
                 fn: Callable[..., Any] | None, sensor: str, nodata: float | None, seed: int, config: Any,
                 prior_bytes: bytes | None) -> None:
        self.name, self.out, self.storage_options = name, out, storage_options
        self.plan, self.method, self.fn, self.sensor, self.nodata = plan, method, fn, sensor, nodata
        self.seed, self.config, self.prior_bytes = seed, config, prior_bytes
        self._prior: Any = None
        self._store: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_prior=None, _store=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def setup(self, worker: Any = None) -> None:
        """Deserialise the prior once on this worker (and check it is the one the manifest names)."""
        if self.prior_bytes is not None:
            from .method.prior import Prior

            self._prior = Prior.from_bytes(self.prior_bytes)

    def store(self) -> Any:
        """The run's store, opened once per worker."""
        with self._lock:
            if self._store is None:
                from .store import open_store

                self._store = open_store(self.out, storage_options=self.storage_options)
            return self._store

    def process(self, index: int, pan: np.ndarray, ms: np.ndarray) -> dict[str, Any]:
        """Refine one tile, write ``weight × prediction`` (NaN where nodata) and only then mark it done with its QA.

        Returns the tile's QA record (the store keeps the fields it has a layer for).
        """
        tile = self.plan.tiles[index]
        pan = np.asarray(pan, dtype=np.float64)
        ms = np.asarray(ms, dtype=np.float64)
        valid, _ = validity(pan, ms, self.plan.ratio, self.nodata)
        weights = blend_weights(tile, self.plan)
        store = self.store()
        if not valid.any():  # NaN is the store's nodata marker: finalize writes the nodata value there
            store.write_tile(tile, np.full((ms.shape[0],) + pan.shape, np.nan, np.float32))
            store.mark_done(tile, {})
            return {"index": index, "status": "nodata"}
        t0 = time.perf_counter()
        seed = tile_seed(self.seed, index)
        qa: dict[str, Any] = {"index": index, "status": "ok", "seed": seed}
        if self.method == "trapan":
            from .method.stage2 import refine_tile

            res = refine_tile(self._prior, pan, ms, seed=seed, nodata=self.nodata, config=self.config)
            fused = np.asarray(res.fused, dtype=np.float64)
            qa.update(steps=int(res.trace.get("steps_run", 0)), stop_reason=str(res.trace.get("stop_reason", "")))
        else:
            fused = np.asarray(self.fn(pan, ms, self.sensor, self.plan.ratio, **_classical_kwargs(self.fn)),
                               dtype=np.float64)
        qa["seconds"] = time.perf_counter() - t0
        qa.update(_tile_indices(fused, pan, ms, tile, self.sensor, valid))
        fused[:, ~valid] = np.nan
        store.write_tile(tile, (fused * weights).astype(np.float32))
        store.mark_done(tile, {k: float(v) for k, v in qa.items() if k in store.qa_fields})
        return qa


def _tile_indices(fused: np.ndarray, pan: np.ndarray, ms: np.ndarray, tile: Tile, sensor: str,
                  valid: np.ndarray) -> dict[str, Any]:
    """HQNR, D_λ^K and D_s on the largest window of the core whose sides are multiples of 32 (NaN if none or if
    it holds nodata: the indices are not defined there).

    Scored on the fused values clipped at 0, as the stored DN are. A metric that refuses the window gives NaN and a
    ``qa_error`` message: quality control must never fail a tile whose result is fine.
    """
    from . import metrics

    r = tile.ratio
    step = math.lcm(QA_BLOCK, r)
    y0, y1, x0, x1 = tile.core_in_ext
    h, w = (y1 - y0) // step * step, (x1 - x0) // step * step
    out: dict[str, Any] = {"hqnr": float("nan"), "d_lambda_k": float("nan"), "d_s": float("nan")}
    if h == 0 or w == 0 or not valid[y0:y0 + h, x0:x0 + w].all():
        return out
    try:
        q, dl, ds = metrics.hqnr(np.clip(fused[:, y0:y0 + h, x0:x0 + w], 0.0, None),
                                 ms[:, y0 // r:(y0 + h) // r, x0 // r:(x0 + w) // r], pan[y0:y0 + h, x0:x0 + w],
                                 sensor, r)
    except InputError as exc:
        return {**out, "qa_error": str(exc)}
    return {"hqnr": float(q), "d_lambda_k": float(dl), "d_s": float(ds)}


def _tile_task(name: str, index: int, window: LazyWindow) -> dict[str, Any]:
    """Dask task: read one tile's window and process it with the run context this worker received once as plugin
    ``name``."""
    from distributed import get_worker

    return get_worker().plugins[name].process(index, *window.read())


def _fit_prior_task(windows: list[LazyWindow], sensor: str, config: Any, seed: int,
                    nodata: float | None) -> tuple[bytes, str]:
    """Dask task: Stage 1 on the sample windows; returns the prior's bytes and hash (the driver needs no torch)."""
    from .method.stage1 import fit_prior

    prior = fit_prior([w.read() for w in windows], sensor, config, seed=seed, nodata=nodata)
    return prior.to_bytes(), prior.hash


# ----------------------------------------------------------------------------------------------- driver side
def _progress(progress: Any, iterable: Iterable[Any], total: int) -> tuple[Iterable[Any], Callable[[], None]]:
    """Adapt ``progress``: a tqdm-like object (``update``), a wrapper class/function (``tqdm``), or a plain callable."""
    if progress is None:
        return iterable, lambda: None
    if hasattr(progress, "update"):
        if getattr(progress, "total", 0) is None:
            progress.total = total
        return iterable, lambda: progress.update(1)
    try:
        wrapped = progress(iterable, total=total)
    except TypeError:
        wrapped = None
    if wrapped is not None and hasattr(wrapped, "__iter__"):
        return wrapped, lambda: None
    return iterable, lambda: progress()


def _gpu_workers(client: Any) -> int:
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(1 for w in workers if w.get("resources", {}).get("GPU", 0) >= 1)


def _summarise(qas: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean/min/max of the per-tile indices and the mean steps and seconds of the computed tiles."""
    out: dict[str, Any] = {"tiles": len(qas)}
    qa_errors = [q["qa_error"] for q in qas if "qa_error" in q]
    if qa_errors:
        out.update(qa_errors=len(qa_errors), qa_error_example=qa_errors[0])
    for key in ("hqnr", "d_lambda_k", "d_s", "seconds", "steps"):
        vals = np.array([q[key] for q in qas if isinstance(q.get(key), (int, float))], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            out.update({f"{key}_mean": float(vals.mean()), f"{key}_min": float(vals.min()),
                        f"{key}_max": float(vals.max())})
    return out


def run(scene: Any, out: str, config: Any = None, client: Any = None, tile: int = 512, overlap: int | None = None,
        resume: bool = False, *, method: str | Callable[..., Any] = "trapan", seed: int = 0, gpu: bool = False,
        overwrite: bool = False, dtype: str = "uint16", zarr_format: int = 3, storage_options: dict | None = None,
        prior_tiles: int = 4, progress: Any = None, dry_run: bool = False) -> RunResult:
    """Pansharpen a whole scene tile by tile on Dask into a georeferenced, resumable Zarr store.

    Parameters
    ----------
    scene
        An `open_scene` Dataset, or anything `open_scene` accepts (STAC item path/URL/dict, ...).
    out
        Output store: local path or fsspec URL; credentials come from ``storage_options`` or the environment.
    config
        `TrapanConfig` for method "trapan" (default ``TrapanConfig.default()``); ignored by other methods.
    client
        A `distributed.Client`; None starts an embedded cluster (`cluster.get_client`) and closes it at the end.
    tile, overlap
        Core tile side and halo per side in PAN pixels (halo default: `tiling.default_halo_px`).
    resume
        Continue into an existing store made with the same settings: only tiles not marked done are computed.
    method
        "trapan", a classical method name (run with tile-safe boundaries), or a callable
        ``f(pan (H, W), ms (B, h, w), sensor, ratio) -> (B, H, W)`` DN.
    seed
        Run seed; the prior uses it and each tile uses `tile_seed` (seed, tile index).
    gpu
        Route prior and tile tasks to workers with the resource ``GPU`` (refused when the cluster has none).
    overwrite
        Replace an existing output store.
    dtype, zarr_format, storage_options
        Output value type ("uint16" rounds and clips DN, "float32" keeps them), Zarr format, fsspec options.
    prior_tiles
        Tiles the Stage-1 prior is fitted on (the most valid ones, spread over the scene). The prior is kept in the
        store, so a resume reuses it (checked against the manifest's hash) instead of refitting it.
    progress
        tqdm-like object (``update(1)`` per tile), wrapper (``tqdm``), or callable called once per finished tile.
    dry_run
        Validate and plan only: returns a `RunResult` with no tile computed and nothing written (see `plan_run`).

    Returns
    -------
    RunResult
    """
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}
    job = _prepare(scene, config, tile, overlap, method, seed, dtype, zarr_format, prior_tiles)
    n_total = len(job.plan.tiles)
    if dry_run:
        return RunResult(str(out), n_total, 0, 0, 0, 0, seconds={"total": time.perf_counter() - t_start})
    existing = None
    if _output_exists(out, storage_options):
        if resume:
            from .store import open_store

            existing = open_store(out, storage_options=storage_options)
            existing.check_manifest(_resume_check(job.manifest, existing.manifest))
        elif not overwrite:
            raise StoreExistsError(f"out: {out!r} already exists; pass overwrite=True (--overwrite) to replace it or "
                                   "resume=True (trapan resume) to finish it")
    owned = client is None
    if owned:
        from .cluster import get_client

        client, owned = get_client(gpu=gpu)
    try:
        if gpu and _gpu_workers(client) == 0:
            raise InputError("gpu: no worker of this cluster advertises the resource GPU; start workers with "
                             "`dask worker ... --resources GPU=1` or drop gpu")
        return _execute(job, str(out), client, existing, gpu=gpu, overwrite=overwrite, dtype=dtype,
                        zarr_format=zarr_format, storage_options=storage_options, prior_tiles=prior_tiles,
                        progress=progress, seed=seed, seconds=seconds, t_start=t_start)
    finally:
        if owned:
            client.close()


def _execute(job: _Job, out: str, client: Any, existing: Any, *, gpu: bool, overwrite: bool, dtype: str,
             zarr_format: int, storage_options: dict | None, prior_tiles: int, progress: Any, seed: int,
             seconds: dict[str, float], t_start: float) -> RunResult:
    """The cluster part of `run`: scan, prior, store, tiles, finalize."""
    from distributed import as_completed

    from .store import create_store

    plan = job.plan
    resources = {"GPU": 1} if gpu else None
    t0 = time.perf_counter()
    counts = _valid_counts(job, client)
    seconds["scan"] = time.perf_counter() - t0
    if counts.sum() == 0:
        raise InputError(f"scene: every pixel is nodata ({job.nodata:g}); there is nothing to pansharpen "
                         "(check the nodata value and the input windows)")
    pan = _dask(job.ds["pan"], (plan.tile_px, plan.tile_px))
    ms = _dask(job.ds["ms"], (job.bands, plan.tile_px // plan.ratio, plan.tile_px // plan.ratio))

    prior_bytes = prior_hash = None
    t0 = time.perf_counter()
    if job.method == "trapan" and existing is not None and existing.manifest.get("prior_hash"):
        prior_bytes, prior_hash = existing.load_prior(), existing.manifest["prior_hash"]
        log.info("resuming with the stored Stage-1 prior %s", prior_hash[:12])
    if job.method == "trapan" and prior_bytes is None:
        sample = _prior_sample(plan, counts, int(prior_tiles))
        log.info("fitting the Stage-1 prior on %d tile(s): %s", len(sample), [t.index for t in sample])
        windows = [_window(pan, ms, t) for t in sample]
        fut = client.submit(_fit_prior_task, windows, job.sensor, job.config, int(seed), job.nodata,
                            resources=resources, pure=False, retries=1)
        prior_bytes, prior_hash = fut.result()
        del fut, windows
    seconds["prior"] = time.perf_counter() - t0

    manifest = {**job.manifest, "prior_hash": prior_hash}
    if existing is None:
        store = create_store(out, plan=plan, bands=manifest["bands"], crs=manifest["grid"]["crs"],
                             transform=manifest["grid"]["pan_transform"], manifest=manifest, dtype=dtype,
                             nodata=job.nodata, zarr_format=zarr_format,
                             storage_options=storage_options, overwrite=overwrite)
    else:
        store = existing
    if prior_bytes is not None and existing is None:
        store.save_prior(prior_bytes, prior_hash)
    done = np.asarray(store.done(), dtype=bool)
    # largest first (LPT): the small edge tiles fill the gaps at the end instead of leaving one worker alone with a
    # full tile; seeds come from tile indices, so the order changes no output
    todo = sorted((t for t in plan.tiles if not done[t.row, t.col]),
                  key=lambda t: (-t.ext_shape[0] * t.ext_shape[1], t.index))
    n_before = int(done.sum())
    log.info("%d tile(s) in the plan, %d already done, %d to compute", len(plan.tiles), n_before, len(todo))

    name = f"trapan-run-{uuid.uuid4().hex[:12]}"
    ctx = RunContext(name, out, storage_options, plan, job.method, job.fn, job.sensor, job.nodata, int(seed),
                     job.config, prior_bytes)
    client.register_plugin(ctx, name=name)
    computed = skipped = 0
    errors: dict[int, str] = {}
    qas: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        pending = iter(todo)
        in_flight: dict[Any, Tile] = {}
        ac = as_completed()

        def fill() -> None:
            """Submit tiles until every thread (every GPU worker with --gpu) has one.

            Never more: a tile queued on a busy 1-thread worker waits there until its current tile ends, however idle
            the others are (measured: the last tile of a 16-tile run waited 14 s behind a busy worker while the other
            sat idle; distributed's work stealing did not move it). Submitted only when a thread frees up, so the
            largest-first order holds. Slots are counted anew each time, so workers that join mid-run get tiles too.
            """
            slots = max(sum(client.nthreads().values()) if not gpu else _gpu_workers(client), 1)
            while len(in_flight) < slots and (t := next(pending, None)) is not None:
                f = client.submit(_tile_task, name, t.index, _window(pan, ms, t), key=f"trapan-tile-{t.index}-{name}",
                                  resources=resources, retries=1, pure=False)
                in_flight[f] = t
                ac.add(f)

        fill()
        iterable, tick = _progress(progress, ac, len(todo))
        for f in iterable:
            t = in_flight.pop(f)
            if f.status == "finished":
                qa = f.result()
                if qa.get("status") == "nodata":
                    skipped += 1
                else:
                    computed += 1
                    qas.append(qa)
            else:
                try:
                    exc: BaseException = f.exception()
                except BaseException as cancelled:  # noqa: BLE001 - a cancelled future has no exception to give
                    exc = cancelled
                errors[t.index] = f"{type(exc).__name__}: {exc}"
                log.warning("tile %d (core %s) failed: %s", t.index, t.core, errors[t.index])
            f.release()
            tick()
            fill()
    finally:
        client.unregister_worker_plugin(name)
    seconds["tiles"] = time.perf_counter() - t0

    complete = False
    t0 = time.perf_counter()
    store.record_failures(errors)  # also clears entries of tiles that succeeded this time (`trapan status`)
    if not errors:
        store.finalize(plan)
        complete = True
    else:
        log.warning("%d tile(s) failed; the store is not finalised: run `trapan resume %s` to retry them",
                    len(errors), out)
    seconds["finalize"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start
    return RunResult(out, len(plan.tiles), n_before, computed, skipped, len(errors), errors, seconds, prior_hash,
                     _summarise(qas), complete)


def _reopen_scene(manifest: dict[str, Any], out: str) -> Any:
    """Open the scene a manifest names again (STAC item or COG paths, as recorded without credentials)."""
    from .scene import open_scene

    src = manifest.get("inputs") or {}
    sensor, nodata = manifest.get("sensor"), manifest.get("nodata")
    if src.get("item_href"):
        return open_scene(src["item_href"], sensor=sensor, backend=src.get("backend") or "odc",
                          pan_asset=src.get("pan_asset"), ms_assets=src.get("ms_assets"), nodata=nodata)
    if src.get("pan") and src.get("ms"):
        return open_scene(pan=src["pan"], ms=src["ms"], sensor=sensor, nodata=nodata)
    raise InputError(f"out: the manifest of {out!r} records no input files (the scene was built in memory); "
                     "resume it with run(scene, out, resume=True)")


def resume(out: str, client: Any = None, storage_options: dict | None = None, progress: Any = None,
           gpu: bool = False) -> RunResult:
    """Finish an interrupted run from its store alone: re-open the inputs the manifest names, compute the tiles not
    marked done, blend. Refuses (`ResumeMismatchError`) a store that is not a trapan run store."""
    from .store import open_store

    manifest = open_store(out, storage_options=storage_options).manifest
    method = manifest.get("method")
    if not isinstance(method, str) or ":" in method:
        raise InputError(f"out: the run in {out!r} used a Python callable ({method!r}); resume it with "
                         "run(scene, out, method=<the callable>, resume=True)")
    scene = _reopen_scene(manifest, out)
    config = None
    if method == "trapan":
        from .method.config import TrapanConfig

        config = TrapanConfig.from_dict(manifest["config"])
    tiling = manifest["tiling"]
    return run(scene, out, config=config, client=client, tile=tiling["tile_px"], overlap=tiling["halo_px"],
               resume=True, method=method, seed=manifest["seed"], gpu=gpu, dtype=manifest["dtype"],
               zarr_format=manifest["zarr_format"], storage_options=storage_options,
               prior_tiles=manifest["prior_tiles"] or 4, progress=progress)
