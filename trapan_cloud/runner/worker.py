"""The worker side of a run: the lazy tile windows, the per-worker run context (a `WorkerPlugin`) and the tasks."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import InputError
from ..qa import TileQA, score_window
from ..redaction import redact
from ..registry import TileMethod
from ..retry import RetriesExhausted, error_chain, is_transient, is_transient_remote, retry_io
from ..tiling import Tile, TilePlan, blend_weights
from ..validate import validity

T = TypeVar("T")


def tile_seed(run_seed: int, index: int) -> int:
    """Seed of one tile: SHA-256 of (run seed, tile index), so it never depends on the worker or on ``hash()``.

    >>> tile_seed(0, 3) == tile_seed(0, 3), tile_seed(0, 3) != tile_seed(1, 3), 0 <= tile_seed(7, 9) < 2**32
    (True, True, True)
    """
    digest = hashlib.sha256(f"trapan-tile:{int(run_seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class LazyWindow:
    """A tile's ext window of PAN (H, W) and MS (B, h, w) as a small culled dask graph, read by the task that uses it.

    Read in the task rather than by separate read tasks: neighbouring windows share COG chunks and the scene's
    open/config keys, so the scheduler would place a window's reads where those keys live, often on a worker busy
    with a tile, while another idles. A plain class (not a dataclass or tuple), so that distributed ships the graph as
    data instead of computing it as a dependency. ``names`` says where PAN and MS come from, for error messages.
    """

    def __init__(self, pan: Any, ms: Any, names: tuple[str, str] = ("PAN", "MS")) -> None:
        import dask

        self.pan, self.ms = dask.optimize(pan, ms)
        self.names = names

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's pixels, read in this thread (a worker's task thread must not wait on the cluster); transient
        failures are retried (`retry.retry_io`), anything else is an `InputError` naming the input."""
        return self._read(self.pan, "pan", self.names[0]), self._read(self.ms, "ms", self.names[1])

    @staticmethod
    def _read(arr: Any, role: str, name: str) -> np.ndarray:
        import dask

        return read_input(lambda: dask.compute(arr, scheduler="sync")[0], role, name)


def read_input(fn: Callable[[], T], role: str, name: str) -> T:
    """``fn()``, a read of input ``role`` ("pan" or "ms") from ``name``: transient failures are retried
    (`retry.retry_io`; for a remote ``name``, a URL or ``/vsi`` path, any I/O error but a 4xx answer, since GDAL reports
    a dropped connection as a decode error); a read that still fails is an `InputError` naming the input and the fix."""
    from rasterio.errors import RasterioError

    remote = re.search(r"://|/vsi", name) is not None
    try:
        return retry_io(fn, f"{role}: reading {name}", transient=is_transient_remote if remote else is_transient)
    except RetriesExhausted as exc:
        message = f"{exc}; check the connection to the input and its credentials, then resume the run"
    except (OSError, RasterioError) as exc:
        message = (f"{role}: cannot read {name} ({error_chain(exc)[:400]}); check that the file is complete (a "
                   "truncated or corrupt COG fails here) and readable, then resume the run")
    raise InputError(message)  # raised outside the handler: no chained library error to pickle back to the driver


def input_names(source: Any) -> tuple[str, str]:
    """Where a scene's PAN and MS pixels come from (a `scene.model.Source`, hrefs already redacted), for errors."""
    if source.pan and source.ms:
        return repr(source.pan), ", ".join(repr(h) for h in source.ms)
    if source.item_href or source.item:
        item = repr(source.item_href or source.item)
        return f"asset {source.pan_asset!r} of {item}", f"assets {list(source.ms_assets or ())} of {item}"
    return "the in-memory PAN", "the in-memory MS"


def window(pan: Any, ms: Any, tile: Tile, names: tuple[str, str] = ("PAN", "MS")) -> LazyWindow:
    """The lazy ext window of one tile of the dask arrays ``pan`` (H, W) and ``ms`` (B, h, w)."""
    ys, xs = tile.ext_slices
    mys, mxs = tile.ms_ext_slices
    return LazyWindow(pan[ys, xs], ms[:, mys, mxs], names)


@dataclass(frozen=True)
class TileReport:
    """What one tile task returns to the driver."""

    index: int
    nodata_only: bool = False
    """The whole window is nodata: written as nodata without fusion."""
    qa: TileQA = field(default_factory=TileQA)
    qa_error: str | None = None
    """Why the QA indices could not be computed (the tile itself is fine)."""


@dataclass
class TileWork:
    """What every tile task of a run needs on a worker (the plugin ships it once)."""

    out: str
    storage_options: dict | None
    plan: TilePlan
    method: TileMethod
    sensor: str
    nodata: float | None
    seed: int
    config: Any
    runtime: Any
    prior_bytes: bytes | None


class RunContext(WorkerPlugin):
    """A run's `TileWork` on every worker, shipped once as a plugin registered under a per-run name.

    distributed also applies a plugin to workers that join or restart mid-run, which a scattered future is not.
    """

    def __init__(self, name: str, work: TileWork) -> None:
        self.name, self.work = name, work
        self._prior: Any = None
        self._store: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "work": self.work}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"], state["work"])

    def setup(self, worker: Any = None) -> None:
        """Deserialise the prior once on this worker."""
        if self.work.prior_bytes is not None:
            self._prior = self.work.method.load_prior(self.work.prior_bytes)

    def store(self) -> Any:
        """The run's store, opened once per worker."""
        with self._lock:
            if self._store is None:
                from ..store import open_store

                w = self.work
                self._store = retry_io(lambda: open_store(w.out, storage_options=w.storage_options),
                                       f"opening the store {redact(w.out)}")
            return self._store

    def process(self, index: int, pan: np.ndarray, ms: np.ndarray) -> TileReport:
        """Fuse one tile, write ``weight × prediction`` (NaN where nodata), and only then mark it done with its QA."""
        w = self.work
        tile = w.plan.tiles[index]
        pan = np.asarray(pan, dtype=np.float64)
        ms = np.asarray(ms, dtype=np.float64)
        valid, _ = validity(pan, ms, w.plan.ratio, w.nodata)
        store = self.store()
        if not valid.any():  # NaN is the store's nodata marker: finalize writes the nodata value there
            self._save(store, tile, np.full((ms.shape[0],) + pan.shape, np.nan, np.float32), {})
            return TileReport(index, nodata_only=True)
        t0 = time.perf_counter()
        res = w.method.refine_tile(self._prior, pan, ms, sensor=w.sensor, ratio=w.plan.ratio,
                                   seed=tile_seed(w.seed, index), nodata=w.nodata, config=w.config, runtime=w.runtime)
        seconds = time.perf_counter() - t0
        fused = res.fused
        indices, qa_error = score_window(fused, pan, ms, w.sensor, w.plan.ratio, tile.core_in_ext, valid)
        qa = TileQA(**indices, steps=res.steps, seconds=seconds)
        fused[:, ~valid] = np.nan
        self._save(store, tile, (fused * blend_weights(tile, w.plan)).astype(np.float32), qa.to_dict())
        return TileReport(index, qa=qa, qa_error=qa_error)

    @staticmethod
    def _save(store: Any, tile: Tile, weighted: np.ndarray, qa: dict[str, float]) -> None:
        """Write the tile, then its QA and done flag, each retried through transient storage errors (both writes
        are idempotent, so a retry or a duplicate task is harmless)."""
        where = redact(store.url)
        retry_io(lambda: store.write_tile(tile, weighted), f"tile {tile.index}: writing to {where}")
        retry_io(lambda: store.mark_done(tile, qa), f"tile {tile.index}: marking it done in {where}")


def tile_task(name: str, index: int, lazy: LazyWindow) -> TileReport:
    """Dask task: read one tile's window and process it with the run context this worker received as plugin
    ``name``."""
    from distributed import get_worker

    return get_worker().plugins[name].process(index, *lazy.read())


def fit_prior_task(method: TileMethod, windows: list[LazyWindow], sensor: str, config: Any, seed: int,
                   nodata: float | None, runtime: Any) -> tuple[bytes, str]:
    """Dask task: the method's prior from the sample windows, as bytes and hash (the driver needs no torch)."""
    return method.fit_prior([w.read() for w in windows], sensor, config, seed, nodata, runtime)
