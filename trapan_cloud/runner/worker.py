"""The worker side of a run: the lazy tile windows, the per-worker run context (a `WorkerPlugin`) and the tasks."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from ..qa import TileQA, score_window
from ..registry import TileMethod
from ..tiling import Tile, TilePlan, blend_weights
from ..validate import validity


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
    data instead of computing it as a dependency.
    """

    def __init__(self, pan: Any, ms: Any) -> None:
        import dask

        self.pan, self.ms = dask.optimize(pan, ms)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's pixels, read in this thread (a worker's task thread must not wait on the cluster)."""
        import dask

        return dask.compute(self.pan, self.ms, scheduler="sync")


def window(pan: Any, ms: Any, tile: Tile) -> LazyWindow:
    """The lazy ext window of one tile of the dask arrays ``pan`` (H, W) and ``ms`` (B, h, w)."""
    ys, xs = tile.ext_slices
    mys, mxs = tile.ms_ext_slices
    return LazyWindow(pan[ys, xs], ms[:, mys, mxs])


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

                self._store = open_store(self.work.out, storage_options=self.work.storage_options)
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
            store.write_tile(tile, np.full((ms.shape[0],) + pan.shape, np.nan, np.float32))
            store.mark_done(tile, {})
            return TileReport(index, nodata_only=True)
        t0 = time.perf_counter()
        res = w.method.refine_tile(self._prior, pan, ms, sensor=w.sensor, ratio=w.plan.ratio,
                                   seed=tile_seed(w.seed, index), nodata=w.nodata, config=w.config, runtime=w.runtime)
        seconds = time.perf_counter() - t0
        fused = res.fused
        indices, qa_error = score_window(fused, pan, ms, w.sensor, w.plan.ratio, tile.core_in_ext, valid)
        qa = TileQA(**indices, steps=res.steps, seconds=seconds)
        fused[:, ~valid] = np.nan
        store.write_tile(tile, (fused * blend_weights(tile, w.plan)).astype(np.float32))
        store.mark_done(tile, qa.to_dict())
        return TileReport(index, qa=qa, qa_error=qa_error)


def tile_task(name: str, index: int, lazy: LazyWindow) -> TileReport:
    """Dask task: read one tile's window and process it with the run context this worker received as plugin
    ``name``."""
    from distributed import get_worker

    return get_worker().plugins[name].process(index, *lazy.read())


def fit_prior_task(method: TileMethod, windows: list[LazyWindow], sensor: str, config: Any, seed: int,
                   nodata: float | None, runtime: Any) -> tuple[bytes, str]:
    """Dask task: the method's prior from the sample windows, as bytes and hash (the driver needs no torch)."""
    return method.fit_prior([w.read() for w in windows], sensor, config, seed, nodata, runtime)
