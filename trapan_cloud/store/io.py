"""Reading and writing an existing run store: `RunStore` (tiles, done flags, QA, prior, blend), `open_store`,
`open_result`. The layout is described in `store.layout`."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from ..errors import CorruptStoreError, IncompleteRunError, InputError, ResumeMismatchError
from ..redaction import redact
from ..tiling import Tile, TilePlan
from .layout import ATTR, COMPLETE, FORMAT_VERSION, RUNNING

logger = logging.getLogger(__name__)

FITTING_PRIOR = "fitting prior"
"""Status of a store created before its Stage-1 prior is fitted: resumable (the resume fits the prior again), never
complete. `save_prior` moves it to "running"."""


def open_group(url: str, storage_options: dict | None, mode: str) -> Any:
    """The root ``zarr.Group`` at ``url``."""
    import zarr

    return zarr.open_group(url, mode=mode, storage_options=storage_options or None)


class RunStore:
    """Handle on an existing run store (use `open_store`); picklable, so tasks on workers can write their tile."""

    def __init__(self, url: str, storage_options: dict | None = None) -> None:
        self.url = str(url)
        """Location of the store (may be shown only through `redact`)."""
        self._storage_options = dict(storage_options or {})
        self._group: Any = None

    def __repr__(self) -> str:
        return f"RunStore({redact(self.url)!r})"

    def __getstate__(self) -> dict:
        return {"url": self.url, "_storage_options": self._storage_options, "_group": None}

    @property
    def group(self) -> Any:
        """The store's root ``zarr.Group``, opened read-write on first use."""
        if self._group is None:
            self._group = open_group(self.url, self._storage_options, "r+")
        return self._group

    @property
    def info(self) -> dict:
        """The root ``trapan_cloud`` attribute: manifest, plan, bands, dtype, nodata, QA fields, status, failures."""
        return dict(self.group.attrs[ATTR])

    @property
    def nodata(self) -> float | None:
        """Nodata value of ``fused``."""
        return self.info["nodata"]

    @property
    def manifest(self) -> dict:
        """The run settings the store was created with."""
        return self.info["manifest"]

    @property
    def status(self) -> str:
        """"running" until `finalize` has written ``fused``, then "complete"."""
        return self.info["status"]

    @property
    def plan(self) -> TilePlan:
        """The tile plan the store was created for."""
        return TilePlan.from_dict(self.info["plan"])

    @property
    def qa_fields(self) -> tuple[str, ...]:
        """Names of the per-tile QA variables."""
        return tuple(self.info["qa_fields"])

    def done(self) -> np.ndarray:
        """``(n_rows, n_cols)`` bool: which tiles have their data and QA stored."""
        return self.group["done"][...].astype(bool)

    def qa(self) -> dict[str, np.ndarray]:
        """Per-tile QA arrays ``(n_rows, n_cols)``, NaN where not written."""
        return {name: self.group[name][...] for name in self.qa_fields}

    def _check_tile(self, tile: Tile) -> TilePlan:
        plan = self.plan
        if not (0 <= tile.index < len(plan.tiles)) or plan.tiles[tile.index] != tile:
            raise InputError(f"tile: {tile} is not a tile of the store's plan {plan.to_dict()}")
        return plan

    def write_tile(self, tile: Tile, weighted: np.ndarray) -> None:
        """Store one tile's ``(B, he, we)`` weighted prediction (``blend_weights × prediction``) in its slot.

        The whole slot chunk is written (an idempotent whole-object write), so a retried or duplicated task is harmless.
        Mark nodata pixels NaN: `finalize` writes the nodata value there.
        """
        plan = self._check_tile(tile)
        arr = np.asarray(weighted, dtype=np.float32)
        bands = len(self.info["bands"])
        if arr.ndim != 3 or arr.shape[0] != bands:
            raise InputError(f"weighted: expected ({bands}, {tile.ext_shape[0]}, {tile.ext_shape[1]}) for tile "
                             f"{tile.index}, found shape {arr.shape}")
        ys, xs = plan.slot(tile)
        self.group["tiles"][:, ys, xs] = plan.to_slot(tile, arr)

    def mark_done(self, tile: Tile, qa: dict[str, float]) -> None:
        """Store the tile's QA values, then flip its done flag; call only after `write_tile` returned."""
        self._check_tile(tile)
        unknown = sorted(set(qa) - set(self.qa_fields))
        if unknown:
            raise InputError(f"qa: unknown fields {unknown}; this store has {', '.join(self.qa_fields)}")
        for name, value in qa.items():
            self.group[name][tile.row, tile.col] = float(value)
        self.group["done"][tile.row, tile.col] = 1

    def mark_fitting_prior(self) -> None:
        """Set the status to "fitting prior" (a new store, before its prior exists)."""
        self.group.attrs[ATTR] = {**self.info, "status": FITTING_PRIOR}

    def save_prior(self, prior_bytes: bytes, prior_hash: str) -> None:
        """Keep the run's Stage-1 prior (safetensors bytes) in the store and name it in the manifest, so a resume never
        refits it; the status becomes "running". The bytes go first: a crash in between leaves "fitting prior"."""
        arr = np.frombuffer(prior_bytes, dtype=np.uint8)
        v3 = self.group.metadata.zarr_format == 3  # name the axis the way xarray reads each format
        z = self.group.create_array("prior", shape=arr.shape, dtype=np.uint8, chunks=(max(arr.size, 1),),
                                    overwrite=True, dimension_names=("prior_byte",) if v3 else None,
                                    attributes={"sha256": prior_hash, **({} if v3 else
                                                                         {"_ARRAY_DIMENSIONS": ["prior_byte"]})})
        z[...] = arr
        info = self.info
        self.group.attrs[ATTR] = {**info, "manifest": {**info["manifest"], "prior_hash": prior_hash},
                                  "status": RUNNING}

    def load_prior(self) -> bytes | None:
        """The stored prior's bytes (None if the run has none); refuses bytes whose hash differs from the manifest's."""
        if "prior" not in self.group:
            return None
        z = self.group["prior"]
        data = bytes(z[...].tobytes())
        want = self.manifest.get("prior_hash")
        if z.attrs.get("sha256") != want:
            raise CorruptStoreError(f"{redact(self.url)}: the stored prior is not the one the manifest names "
                                      f"({z.attrs.get('sha256')} vs {want}); start a new run with overwrite")
        return data

    def record_failures(self, errors: dict[int, str]) -> None:
        """Remember the tiles whose last attempt failed (tile index → one-line error, redacted), for `trapan status`.

        Written by the driver after a run; a later successful attempt clears the entry.
        """
        info = self.info
        failed = {k: v for k, v in dict(info.get("failed", {})).items() if int(k) not in self.done_indices()}
        failed.update({str(k): redact(str(v))[:500] for k, v in errors.items()})
        info["failed"] = failed
        self.group.attrs[ATTR] = info

    def done_indices(self) -> set[int]:
        """Indices of the tiles marked done."""
        plan, done = self.plan, self.done()
        return {t.index for t in plan.tiles if done[t.row, t.col]}

    def failed(self) -> dict[int, str]:
        """Tiles whose last attempt failed and that are still not done: index → error."""
        done = self.done_indices()
        return {int(k): v for k, v in dict(self.info.get("failed", {})).items() if int(k) not in done}

    def finalize(self, plan: TilePlan) -> None:
        """Stage B: overlap-add the stage-A slots into ``fused`` lazily, cast to the output dtype, then mark complete.

        Integer output is rounded and clipped to the dtype; a valid pixel that would equal nodata moves one DN towards
        the inside of the range, so nodata marks only pixels that were NaN (nodata) in every contributing tile.
        Runs on the current dask scheduler (a distributed Client when one is active); refuses while tiles are pending.
        """
        import dask.array as da

        from ..tiling import blend

        if plan != self.plan:
            raise ResumeMismatchError(f"{redact(self.url)} was made for the tile plan {self.plan.to_dict()}, "
                                      f"not {plan.to_dict()}")
        done = self.done()
        if not done.all():
            pending = [tuple(map(int, rc)) for rc in np.argwhere(~done)[:5]]
            raise IncompleteRunError(f"{redact(self.url)}: {int((~done).sum())} of {done.size} tiles are not done (e.g. "
                             f"(row, col) {pending}); resume the run to finish them before blending")
        info = self.info
        out_dtype, nodata = np.dtype(info["dtype"]), info["nodata"]
        blended = blend(da.from_zarr(self.group["tiles"]), plan)
        fused = blended.map_blocks(to_output_dtype, dtype=out_dtype, out_dtype=out_dtype, nodata=nodata)
        target = self.group["fused"]
        aligned = all(all(c == z for c in axis[:-1]) and axis[-1] <= z for axis, z in zip(fused.chunks, target.chunks))
        if not aligned:  # region writes must be chunk-aligned, or concurrent writers could lose data
            raise CorruptStoreError(f"{redact(self.url)}: fused chunks {target.chunks} do not match the tile plan")
        da.store(fused, target, lock=False)
        self.group.attrs[ATTR] = {**info, "status": COMPLETE}
        logger.info("finalized %s", redact(self.url))


def to_output_dtype(values: np.ndarray, out_dtype: np.dtype, nodata: float | None) -> np.ndarray:
    """Blended float DN to the output dtype; NaN (nodata) becomes ``nodata``.

    >>> to_output_dtype(np.array([np.nan, 0.2, 7.6, 70000.0]), np.dtype("uint16"), 0).tolist()
    [0, 1, 8, 65535]
    """
    missing = np.isnan(values)
    if out_dtype.kind == "f":
        out = values.astype(out_dtype)
    else:
        info = np.iinfo(out_dtype)
        out = np.clip(np.rint(np.where(missing, 0, values)), info.min, info.max)
        if nodata is not None:
            out[out == nodata] = nodata + 1 if nodata < info.max else nodata - 1
        out = out.astype(out_dtype)
    if nodata is not None:
        out[missing] = nodata
    return out


def open_store(url: str, storage_options: dict | None = None) -> RunStore:
    """Open an existing run store, checking that it is a trapan_cloud store laid out for its plan.

    Raises `InputError` when nothing is there, `ResumeMismatchError` for a foreign store and `CorruptStoreError` for
    a damaged one.
    """
    import zarr

    shown = redact(url)
    store = RunStore(url, storage_options)
    try:
        group = open_group(url, storage_options, "r+")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        raise InputError(f"out: no Zarr store at {shown}; check the path, or start a new run") from None
    except (zarr.errors.ContainsArrayError, ValueError, json.JSONDecodeError) as exc:
        raise ResumeMismatchError(f"{shown} is not a readable Zarr group ({type(exc).__name__}); "
                                  "not a trapan_cloud store") from None
    info = group.attrs.get(ATTR)
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        raise ResumeMismatchError(f"{shown} is not a trapan_cloud store (format {FORMAT_VERSION}): its root attributes "
                                  f"lack '{ATTR}'; choose another output or pass overwrite")
    store._group = group
    try:
        plan = store.plan
        s, B = plan.slot_px, len(info["bands"])
        expected = {"tiles": (B, plan.n_rows * s, plan.n_cols * s), "done": (plan.n_rows, plan.n_cols),
                    "fused": (B, *plan.shape), **{q: (plan.n_rows, plan.n_cols) for q in info["qa_fields"]}}
        found = {name: tuple(group[name].shape) for name in expected if name in group}
    except (KeyError, TypeError, InputError) as exc:
        raise CorruptStoreError(f"{shown}: corrupt trapan_cloud store ({exc})") from None
    wrong = sorted(k for k in expected if found.get(k) != expected[k])
    if wrong:
        raise CorruptStoreError(f"{shown}: corrupt trapan_cloud store, arrays missing or misshapen: "
                                  + ", ".join(f"{k} (expected {expected[k]}, found {found.get(k)})" for k in wrong))
    return store


def open_result(url: str, storage_options: dict | None = None) -> Any:
    """Open a finished run as an ``xarray.Dataset``: ``fused`` (band, y, x) DN plus the per-tile QA layer.

    The dataset is lazy (dask) and georeferenced: ``ds.rio.crs`` and ``ds.rio.transform()`` give the PAN grid;
    ``ds.fused.rio.nodata`` the nodata value. A store whose status is not "complete" is refused, so a partial run
    never looks finished.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor the result is read with)
    import xarray as xr

    store = open_store(url, storage_options)
    if store.status != COMPLETE:
        done = store.done()
        raise IncompleteRunError(f"{redact(url)}: the run is {store.status!r} ({int(done.sum())} of {done.size} tiles done), "
                         "not 'complete'; resume it (trapan resume) to finish it")
    ds = xr.open_zarr(url, consolidated=False, mask_and_scale=False, drop_variables=["tiles", "prior"],
                      storage_options=storage_options or None)
    ds = ds.set_coords("spatial_ref") if "spatial_ref" in ds.data_vars else ds
    nodata = store.nodata
    ds["fused"].attrs.pop("_FillValue", None)
    if nodata is not None:
        ds["fused"].attrs["_FillValue"] = nodata
    return ds
