"""Reading and writing an existing run store: `RunStore` (tiles, done flags, QA, prior, blend, integrity and
repair), `open_store`, `open_result`. The layout is described in `store.layout`."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from ..errors import CorruptStoreError, IncompleteRunError, InputError, ResumeMismatchError
from ..redaction import redact
from ..tiling import Tile, TilePlan
from .integrity import Integrity, check_chunks, overlapping
from .layout import (ATTR, COMPLETE, FORMAT_VERSION, ITEM_NAME, RUN_GROUP, RUNNING, ZARR_METADATA, fs_path,
                     item_is_ours)

logger = logging.getLogger(__name__)



def open_group(url: str, storage_options: dict | None, mode: str) -> Any:
    """The root ``zarr.Group`` at ``url``, read from the live metadata (never from a consolidated snapshot)."""
    import zarr

    return zarr.open_group(url, mode=mode, storage_options=storage_options or None, use_consolidated=False)


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
    def run(self) -> Any:
        """The ``run/`` sub-group: stage-A tiles, done flags, QA arrays, prior."""
        return self.group[RUN_GROUP]

    def _array(self, name: str) -> Any:
        """A run-state array that writes every chunk, even one equal to its fill value (a missing chunk is damage)."""
        return self.run[name].with_config({"write_empty_chunks": True})

    @property
    def info(self) -> dict:
        """The root ``trapan_cloud`` attribute: manifest, plan, bands, dtype, nodata, QA fields, status, failures."""
        return dict(self.group.attrs[ATTR])

    def _set_info(self, info: dict) -> None:
        """Write the root attribute; once a store has consolidated metadata, consolidate again so that readers of
        the snapshot (GDAL, ``xr.open_zarr``) see the same status."""
        self.group.attrs[ATTR] = info
        if info.get("consolidated"):
            self._consolidate()

    def _consolidate(self) -> None:
        import warnings

        import zarr

        with warnings.catch_warnings(), item_is_ours():  # v3: consolidated metadata is zarr-python's extension
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            zarr.consolidate_metadata(self.group.store, path=self.group.path or None)

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
        return self.run["done"][...].astype(bool)

    def qa(self) -> dict[str, np.ndarray]:
        """Per-tile QA arrays ``(n_rows, n_cols)``, NaN where not written."""
        return {name: self.run[name][...] for name in self.qa_fields}

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
        self._array("tiles")[:, ys, xs] = plan.to_slot(tile, arr)

    def mark_done(self, tile: Tile, qa: dict[str, float]) -> None:
        """Store the tile's QA values, then flip its done flag; call only after `write_tile` returned."""
        self._check_tile(tile)
        unknown = sorted(set(qa) - set(self.qa_fields))
        if unknown:
            raise InputError(f"qa: unknown fields {unknown}; this store has {', '.join(self.qa_fields)}")
        for name, value in qa.items():
            self._array(name)[tile.row, tile.col] = float(value)
        self._array("done")[tile.row, tile.col] = 1

    def save_prior(self, prior_bytes: bytes, prior_hash: str) -> None:
        """Keep the run's Stage-1 prior (safetensors bytes) in the store and name it in the manifest, so a resume never
        refits it; the status becomes "running". The bytes go first: a crash in between leaves "fitting prior"."""
        arr = np.frombuffer(prior_bytes, dtype=np.uint8)
        v3 = self.group.metadata.zarr_format == 3  # name the axis the way xarray reads each format
        z = self.run.create_array("prior", shape=arr.shape, dtype=np.uint8, chunks=(max(arr.size, 1),),
                                    overwrite=True, dimension_names=("prior_byte",) if v3 else None,
                                    attributes={"sha256": prior_hash, **({} if v3 else
                                                                         {"_ARRAY_DIMENSIONS": ["prior_byte"]})})
        z[...] = arr
        info = self.info
        self.group.attrs[ATTR] = {**info, "manifest": {**info["manifest"], "prior_hash": prior_hash},
                                  "status": RUNNING}

    def load_prior(self) -> bytes | None:
        """The stored prior's bytes (None if the run has none); refuses bytes whose hash differs from the manifest's."""
        if "prior" not in self.run:
            return None
        z = self.run["prior"]
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
        self._set_info(info)

    def done_indices(self) -> set[int]:
        """Indices of the tiles marked done."""
        plan, done = self.plan, self.done()
        return {t.index for t in plan.tiles if done[t.row, t.col]}

    def failed(self) -> dict[int, str]:
        """Tiles whose last attempt failed and that are still not done: index → error."""
        done = self.done_indices()
        return {int(k): v for k, v in dict(self.info.get("failed", {})).items() if int(k) not in done}

    def _fs(self) -> tuple[Any, str]:
        return fs_path(self.url, self._storage_options)

    def _check_plan(self, plan: TilePlan) -> None:
        if plan != self.plan:
            raise ResumeMismatchError(f"{redact(self.url)} was made for the tile plan {self.plan.to_dict()}, "
                                      f"not {plan.to_dict()}")

    def _expected_slots(self, plan: TilePlan, info: dict) -> list[Tile]:
        """Done tiles whose stage-A slot must exist: all of them, or, once the slots were removed, those a pending
        repair recomputed for the cores it re-blends."""
        done = self.done()
        tiles = [t for t in plan.tiles if done[t.row, t.col]]
        if info.get("tiles_removed"):
            needed = overlapping(plan, info.get("reblend", []))
            tiles = [t for t in tiles if t.index in needed]
        return tiles

    def verify(self, plan: TilePlan | None = None, decode: bool = True) -> Integrity:
        """Check that every done tile's stage-A slot (where slots are kept) and, once the product was written, every
        ``fused`` core chunk exists and (``decode``) decodes. Reads each checked chunk once; writes nothing."""
        plan = plan or self.plan
        self._check_plan(plan)
        info = self.info
        fs, root = self._fs()
        slots = check_chunks(fs, root, self.run["tiles"], self._expected_slots(plan, info),
                             lambda t: (0, t.row, t.col), decode)
        cores: dict[int, str] = {}
        if info["status"] == COMPLETE or info.get("reblend") is not None:
            pending = set(info.get("reblend") or ())
            cores = check_chunks(fs, root, self.group["fused"], [t for t in plan.tiles if t.index not in pending],
                                 lambda t: (0, t.row, t.col), decode)
        details = [f"tile {k} (stage-A slot {msg})" for k, msg in sorted(slots.items())]
        details += [f"tile {k} (fused core {msg})" for k, msg in sorted(cores.items())]
        return Integrity(redact(self.url), tuple(sorted(slots)), tuple(sorted(cores)), tuple(details))

    def prepare_repair(self, plan: TilePlan, integrity: Integrity) -> list[int]:
        """Reopen a damaged store for `trapan resume`: returns the tiles to recompute (their done flags cleared).

        A damaged slot is recomputed. A damaged core is re-blended at the next `finalize`; when the stage-A slots
        were removed, the tiles whose windows overlap it are recomputed first (tile seeds are deterministic, so the
        repaired core is byte-identical). The status goes back to "running" and the STAC item is removed until the
        repair completes, so nothing looks finished while it is not.
        """
        self._check_plan(plan)
        if integrity.ok:
            return []
        info = self.info
        tiles = set(integrity.damaged_slots)
        cores = set(integrity.damaged_cores)
        if cores and info.get("tiles_removed"):
            tiles |= overlapping(plan, cores)
        if cores or info.get("reblend") is not None:
            info["reblend"] = sorted(cores | set(info.get("reblend") or ()))
        self._remove_item()
        info["status"] = RUNNING
        self._set_info(info)
        done = self._array("done")
        for k in sorted(tiles):
            t = plan.tiles[k]
            done[t.row, t.col] = 0
        logger.warning("%s; %d tile(s) to recompute, %d core(s) to re-blend", integrity.summary(), len(tiles),
                       len(cores))
        return sorted(tiles)

    def finalize(self, plan: TilePlan, keep_tiles: bool = False) -> None:
        """Stage B: overlap-add the stage-A slots into ``fused`` lazily, cast to the output dtype, then mark complete.

        Integer output is rounded and clipped to the dtype; a valid pixel that would equal nodata moves one DN towards
        the inside of the range, so nodata marks only pixels that were NaN (nodata) in every contributing tile.
        Every core is blended, or, once the slots were removed, only the cores a repair listed. The slots it reads
        must be there whole (`CorruptStoreError` otherwise; one that does not decode fails the blend) and every
        ``fused`` chunk must exist afterwards. Then the status becomes "complete", the stage-A chunks are deleted
        unless ``keep_tiles`` (remembered for later repairs), and the metadata is consolidated. Runs on the current
        dask scheduler; refuses while tiles are pending.
        """
        import dask.array as da

        from ..tiling import blend

        self._check_plan(plan)
        done = self.done()
        if not done.all():
            pending = [tuple(map(int, rc)) for rc in np.argwhere(~done)[:5]]
            raise IncompleteRunError(f"{redact(self.url)}: {int((~done).sum())} of {done.size} tiles are not done (e.g. "
                             f"(row, col) {pending}); resume the run to finish them before blending")
        info = self.info
        fs, root = self._fs()
        damaged = check_chunks(fs, root, self.run["tiles"], self._expected_slots(plan, info),
                               lambda t: (0, t.row, t.col), decode=False)  # one that does not decode fails the blend
        if damaged:
            raise CorruptStoreError(f"{redact(self.url)}: stage-A slots missing before blending (tiles "
                                    f"{sorted(damaged)[:5]}); run `trapan resume` to recompute them")
        cores = info.get("reblend", []) if info.get("tiles_removed") else [t.index for t in plan.tiles]
        out_dtype, nodata = np.dtype(info["dtype"]), info["nodata"]
        blended = blend(da.from_zarr(self.run["tiles"]), plan)
        fused = blended.map_blocks(to_output_dtype, dtype=out_dtype, out_dtype=out_dtype, nodata=nodata)
        target = self.group["fused"].with_config({"write_empty_chunks": True})
        aligned = all(all(c == z for c in axis[:-1]) and axis[-1] <= z for axis, z in zip(fused.chunks, target.chunks))
        if not aligned:  # region writes must be chunk-aligned, or concurrent writers could lose data
            raise CorruptStoreError(f"{redact(self.url)}: fused chunks {target.chunks} do not match the tile plan")
        if cores:
            blocks = [plan.tiles[k] for k in cores]
            regions = [(slice(None), *t.core_slices) for t in blocks]
            da.store([fused.blocks[0, t.row, t.col] for t in blocks], [target] * len(blocks), regions=regions,
                     lock=False)
        missing = check_chunks(fs, root, self.group["fused"], plan.tiles, lambda t: (0, t.row, t.col), decode=False)
        if missing:
            raise CorruptStoreError(f"{redact(self.url)}: fused chunks missing after blending (tiles "
                                    f"{sorted(missing)[:5]}); run `trapan resume` to repair them")
        info = {k: v for k, v in info.items() if k != "reblend"}
        info["status"] = COMPLETE
        info["keep_tiles"] = keep = bool(keep_tiles or info.get("keep_tiles"))  # a resume keeps the first choice
        if not keep:
            info["tiles_removed"] = True  # recorded first: a crash while deleting leaves no store that expects them
            self.group.attrs[ATTR] = info
            self._remove_slots(fs, root)
        info["consolidated"] = True
        self._set_info(info)
        logger.info("finalized %s", redact(self.url))

    def _remove_slots(self, fs: Any, root: str) -> None:
        """Delete the stage-A chunk objects (the array's metadata stays, so a repair can write slots again)."""
        prefix = f"{root.rstrip('/')}/{self.run['tiles'].path}"
        chunks = [n for n in fs.find(prefix) if n.rsplit("/", 1)[-1] not in ZARR_METADATA]
        if chunks:
            fs.rm(chunks)
        logger.info("removed %d stage-A chunk(s) of %s", len(chunks), redact(self.url))

    @property
    def item_url(self) -> str:
        """Where the product's STAC item is (inside the store)."""
        return f"{self.url.rstrip('/')}/{ITEM_NAME}"

    def _remove_item(self) -> None:
        fs, root = self._fs()
        path = f"{root.rstrip('/')}/{ITEM_NAME}"
        if fs.exists(path):
            fs.rm(path)


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
    if not isinstance(info, dict) or "format_version" not in info:
        raise ResumeMismatchError(f"{shown} is not a trapan_cloud store: its root attributes lack '{ATTR}'; choose "
                                  "another output or pass overwrite")
    if info["format_version"] != FORMAT_VERSION:
        raise ResumeMismatchError(f"{shown} is a trapan_cloud store of layout format {info['format_version']}, and "
                                  f"this version reads format {FORMAT_VERSION} only; finish it with the version that "
                                  "made it, or start it again with overwrite")
    store._group = group
    try:
        plan = store.plan
        s, B = plan.slot_px, len(info["bands"])
        expected = {"tiles": (B, plan.n_rows * s, plan.n_cols * s), "done": (plan.n_rows, plan.n_cols),
                    "fused": (B, *plan.shape), **{q: (plan.n_rows, plan.n_cols) for q in info["qa_fields"]}}
        where = {name: name if name == "fused" else f"{RUN_GROUP}/{name}" for name in expected}
        found = {name: tuple(group[where[name]].shape) for name in expected if where[name] in group}
    except (KeyError, TypeError, InputError) as exc:
        raise CorruptStoreError(f"{shown}: corrupt trapan_cloud store ({exc})") from None
    wrong = sorted(k for k in expected if found.get(k) != expected[k])
    if wrong:
        raise CorruptStoreError(f"{shown}: corrupt trapan_cloud store, arrays missing or misshapen: "
                                  + ", ".join(f"{k} (expected {expected[k]}, found {found.get(k)})" for k in wrong))
    return store
