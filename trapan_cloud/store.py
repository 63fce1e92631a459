"""The run's Zarr store: template, stage-A tiles, done flags, QA layer, manifest, final blend and georeferenced result.

One store holds one run (``reference/STACK.md`` §5.3):

``tiles`` (band, slot_y, slot_x) float32
    Stage A: one chunk (slot) per tile holding ``blend_weights(tile) × prediction`` over its ext window
    (`trapan_cloud.tiling`); NaN where never written.
``done`` (tile_row, tile_col) uint8
    1 once a tile's data and QA are stored; one chunk per tile, written last, so a crash can only cause a recompute.
QA layer, e.g. ``hqnr`` (tile_row, tile_col) float64
    Per-tile quality values, one chunk per tile, NaN until written.
``fused`` (band, y, x) in the output dtype
    Stage B: the overlap-add of the stage-A slots, one chunk per tile core, georeferenced through the ``spatial_ref``
    coordinate (CF ``crs_wkt`` + GDAL ``spatial_ref``/``GeoTransform``) and pixel-centre ``x``/``y`` coordinates.

The root attribute ``trapan_cloud`` holds the run manifest, the tile plan and the ``status`` ("running", then
"complete" once ``fused`` is written). Every write after the template touches whole chunks that belong to one tile,
so concurrent writers never share an object. Metadata is not consolidated, so a status change is seen at once.

Locations are local paths or fsspec URLs (``s3://bucket/key.zarr``). Credentials come from the environment or from
``storage_options`` and are never written to the store, logged, or put in an error message.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from typing import Any

import numpy as np

from .errors import InputError, ResumeMismatchError, StoreExistsError
from .redaction import redact
from .tiling import Tile, TilePlan

logger = logging.getLogger(__name__)

ATTR = "trapan_cloud"
"""Root attribute that marks a trapan_cloud store and holds its run description."""
FORMAT_VERSION = 1
"""Layout version of the store; bump when arrays or attributes change meaning."""
QA_FIELDS = ("hqnr", "d_lambda_k", "d_s", "steps", "seconds")
"""Default per-tile QA variables."""
RUNNING, COMPLETE = "running", "complete"


def pixel_centres(origin: float, step: float, n: int) -> np.ndarray:
    """Coordinates of the centres of ``n`` pixels of size ``step`` from ``origin`` (GDAL's pixel-is-area).

    >>> pixel_centres(100.0, 2.0, 3).tolist()
    [101.0, 103.0, 105.0]
    """
    return origin + step * (np.arange(n) + 0.5)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _check_transform(transform: Any) -> tuple[float, ...]:
    """The 6 affine coefficients ``(a, b, c, d, e, f)`` (rasterio order; an ``affine.Affine`` works), no rotation."""
    try:
        coeffs = tuple(float(v) for v in tuple(transform)[:6])
    except (TypeError, ValueError):
        raise InputError(f"transform: expected the PAN grid's affine (a, b, c, d, e, f), found {transform!r}") from None
    if len(coeffs) != 6:
        raise InputError(f"transform: expected 6 affine coefficients (a, b, c, d, e, f), found {len(coeffs)}")
    a, b, _, d, e, _ = coeffs
    if b or d or not a or not e or not all(math.isfinite(v) for v in coeffs):
        raise InputError(f"transform: expected a north-up grid (b = d = 0, a and e non-zero), found {coeffs}")
    return coeffs


def _check_no_secrets(manifest: dict, storage_options: dict | None) -> None:
    """Refuse a manifest that contains any credential-looking value of ``storage_options`` (without printing it)."""
    text = _canonical(manifest)
    secrets = [v for k, v in (storage_options or {}).items()
               if isinstance(v, str) and len(v) >= 4 and re.search(r"key|secret|token|password|credential", k, re.I)]
    if any(s in text for s in secrets):
        raise InputError("manifest: contains a credential from storage_options; credentials must never be stored")


def _fs(url: str, storage_options: dict | None) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    fs.invalidate_cache()
    return fs, path


def output_exists(url: str, storage_options: dict | None = None) -> bool:
    """Whether anything (a store, a file, a folder) is at ``url``."""
    fs, path = _fs(str(url), storage_options)
    return bool(fs.exists(path))


def exists_error(url: str) -> StoreExistsError:
    """The one refusal of an existing output, for every command that writes one."""
    return StoreExistsError(f"out: {redact(url)} already exists; pass overwrite=True (--overwrite) to replace it, or "
                            "resume=True (trapan resume) to finish the run that made it")


def _open_group(url: str, storage_options: dict | None, mode: str) -> Any:
    import zarr

    return zarr.open_group(url, mode=mode, storage_options=storage_options or None)


def create_store(url: str, *, plan: TilePlan, bands: list[str] | tuple[str, ...], crs: Any, transform: Any,
                 manifest: dict, dtype: str = "uint16", nodata: float | None = 0, zarr_format: int = 3,
                 storage_options: dict | None = None, overwrite: bool = False,
                 qa_fields: tuple[str, ...] = QA_FIELDS) -> RunStore:
    """Write the template of a new run: metadata, coordinates and empty arrays, status "running".

    Parameters
    ----------
    url
        Local path or fsspec URL of the store to create.
    plan
        The run's tile plan (its PAN shape is the output grid).
    bands
        Output band names, one per MS band.
    crs
        The PAN grid's CRS, anything ``pyproj.CRS.from_user_input`` takes ("EPSG:32633", WKT, a rasterio CRS).
    transform
        The PAN grid's affine ``(a, b, c, d, e, f)`` (rasterio order; ``affine.Affine`` works), north-up.
    manifest
        JSON-ready run settings that a resume must match (`RunStore.check_manifest`); no credentials.
    dtype, nodata
        Output data type of ``fused`` (DN, e.g. "uint16", or "float32") and its nodata value (None for none).
    zarr_format
        3 (default) or 2 (widest reader compatibility).
    storage_options
        fsspec options for URLs (endpoint, ...); credentials are best left to the environment.
    overwrite
        Replace an existing store at ``url``; otherwise an existing store raises `StoreExistsError`.
    qa_fields
        Names of the per-tile QA variables.
    """
    import dask.array as da
    import pyproj
    import xarray as xr

    shown = redact(url)
    if zarr_format not in (2, 3):
        raise InputError(f"zarr_format: expected 2 or 3, found {zarr_format!r}")
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype: expected a numpy dtype name such as 'uint16' or 'float32', found {dtype!r}") from None
    if out_dtype.kind not in "uif":
        raise InputError(f"dtype: expected an integer or floating output type, found {out_dtype}")
    if nodata is not None:
        if out_dtype.kind in "ui" and not (np.iinfo(out_dtype).min <= nodata <= np.iinfo(out_dtype).max
                                           and float(nodata).is_integer()):
            raise InputError(f"nodata: {nodata!r} is not a value of the output dtype {out_dtype}")
    bands = [str(b) for b in bands]
    if not bands or len(set(bands)) != len(bands):
        raise InputError(f"bands: expected unique band names, one per MS band, found {bands}")
    if not set(qa_fields).isdisjoint({"fused", "tiles", "done", "band", "x", "y", "spatial_ref"}):
        raise InputError(f"qa_fields: {list(qa_fields)} clash with the store's own variable names")
    try:
        crs_obj = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise InputError(f"crs: expected a CRS (EPSG code, WKT, PROJ string), found {crs!r} ({exc})") from None
    coeffs = _check_transform(transform)
    try:
        json.dumps(manifest, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"manifest: expected a JSON-ready dict ({exc})") from None
    _check_no_secrets(manifest, storage_options)

    fs, path = _fs(url, storage_options)
    if fs.exists(path):
        if not overwrite:
            raise exists_error(url)
        logger.info("overwriting %s", shown)
        fs.rm(path, recursive=True)

    H, W = plan.shape
    B, s = len(bands), plan.slot_px
    a, _, c, _, e, f = coeffs
    wkt = crs_obj.to_wkt()
    grid_mapping = {**crs_obj.to_cf(), "spatial_ref": wkt, "GeoTransform": f"{c!r} {a!r} 0.0 {f!r} 0.0 {e!r}"}
    tile_dims = ("tile_row", "tile_col")
    fused_attrs = {"grid_mapping": "spatial_ref", "long_name": "pansharpened digital numbers",
                   "units": "DN" if out_dtype.kind in "ui" else "1"}
    data_vars = {
        "fused": (("band", "y", "x"), da.zeros((B, H, W), dtype=out_dtype, chunks=(B, plan.tile_px, plan.tile_px)),
                  fused_attrs),
        "tiles": (("band", "slot_y", "slot_x"),
                  da.zeros((B, plan.n_rows * s, plan.n_cols * s), dtype=np.float32, chunks=(B, s, s)),
                  {"long_name": "stage A: blending weight x prediction per tile slot"}),
        "done": (tile_dims, da.zeros((plan.n_rows, plan.n_cols), dtype=np.uint8, chunks=1),
                 {"long_name": "1 when the tile's data and QA are stored"}),
    }
    for name in qa_fields:
        data_vars[name] = (tile_dims, da.zeros((plan.n_rows, plan.n_cols), dtype=np.float64, chunks=1),
                           {"long_name": f"per-tile {name}"})
    x_attrs, y_attrs = ({"standard_name": f"projection_{ax}_coordinate", "axis": ax.upper()} for ax in "xy")
    if crs_obj.is_geographic:
        x_attrs, y_attrs = {"standard_name": "longitude", "units": "degrees_east"}, \
            {"standard_name": "latitude", "units": "degrees_north"}
    ds = xr.Dataset(
        data_vars,
        coords={"band": ("band", np.array(bands, dtype=object)),
                "y": ("y", pixel_centres(f, e, H), y_attrs), "x": ("x", pixel_centres(c, a, W), x_attrs),
                "spatial_ref": ((), np.int64(0), grid_mapping)},
        attrs={ATTR: {"format_version": FORMAT_VERSION, "status": RUNNING, "manifest": manifest,
                      "plan": plan.to_dict(), "bands": bands, "dtype": out_dtype.name, "nodata": nodata,
                      "qa_fields": list(qa_fields)}},
    )
    encoding = {
        "fused": {"chunks": (B, plan.tile_px, plan.tile_px), "_FillValue": nodata},
        "tiles": {"chunks": (B, s, s), "_FillValue": np.float32(np.nan)},
        "done": {"chunks": (1, 1), "_FillValue": np.uint8(0)},
        **{name: {"chunks": (1, 1), "_FillValue": np.nan} for name in qa_fields},
    }
    ds.to_zarr(url, mode="w", compute=False, zarr_format=zarr_format, consolidated=False, encoding=encoding,
               storage_options=storage_options or None)
    logger.info("created %s: %d x %d tiles, %d bands, zarr v%d", shown, plan.n_rows, plan.n_cols, B, zarr_format)
    return open_store(url, storage_options)


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
            self._group = _open_group(self.url, self._storage_options, "r+")
        return self._group

    @property
    def _info(self) -> dict:
        return dict(self.group.attrs[ATTR])

    @property
    def manifest(self) -> dict:
        """The run settings the store was created with."""
        return self._info["manifest"]

    @property
    def status(self) -> str:
        """"running" until `finalize` has written ``fused``, then "complete"."""
        return self._info["status"]

    @property
    def plan(self) -> TilePlan:
        """The tile plan the store was created for."""
        return TilePlan.from_dict(self._info["plan"])

    @property
    def qa_fields(self) -> tuple[str, ...]:
        """Names of the per-tile QA variables."""
        return tuple(self._info["qa_fields"])

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
        bands = len(self._info["bands"])
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

    def save_prior(self, prior_bytes: bytes, prior_hash: str) -> None:
        """Keep the run's Stage-1 prior (safetensors bytes) in the store, so a resume never refits it."""
        arr = np.frombuffer(prior_bytes, dtype=np.uint8)
        v3 = self.group.metadata.zarr_format == 3  # name the axis the way xarray reads each format
        z = self.group.create_array("prior", shape=arr.shape, dtype=np.uint8, chunks=(max(arr.size, 1),),
                                    overwrite=True, dimension_names=("prior_byte",) if v3 else None,
                                    attributes={"sha256": prior_hash, **({} if v3 else
                                                                         {"_ARRAY_DIMENSIONS": ["prior_byte"]})})
        z[...] = arr

    def load_prior(self) -> bytes | None:
        """The stored prior's bytes (None if the run has none); refuses bytes whose hash differs from the manifest's."""
        if "prior" not in self.group:
            return None
        z = self.group["prior"]
        data = bytes(z[...].tobytes())
        want = self.manifest.get("prior_hash")
        if z.attrs.get("sha256") != want:
            raise ResumeMismatchError(f"{redact(self.url)}: the stored prior is not the one the manifest names "
                                      f"({z.attrs.get('sha256')} vs {want}); start a new run with overwrite")
        return data

    def record_failures(self, errors: dict[int, str]) -> None:
        """Remember the tiles whose last attempt failed (tile index → one-line error), for `trapan status`.

        Written by the driver after a run; a later successful attempt clears the entry. Messages must already be
        credential-free (they come from our own errors, which name inputs by their redacted href).
        """
        info = self._info
        failed = {k: v for k, v in dict(info.get("failed", {})).items() if int(k) not in self._done_indices()}
        failed.update({str(k): str(v)[:500] for k, v in errors.items()})
        info["failed"] = failed
        self.group.attrs[ATTR] = info

    def _done_indices(self) -> set[int]:
        plan, done = self.plan, self.done()
        return {t.index for t in plan.tiles if done[t.row, t.col]}

    def check_manifest(self, expected: dict) -> None:
        """Raise `ResumeMismatchError` listing the manifest keys whose values differ from ``expected``."""
        stored = self.manifest
        missing = object()
        differ = [k for k in sorted(set(stored) | set(expected))
                  if _canonical(stored.get(k, missing)) != _canonical(expected.get(k, missing))]
        if differ:
            def show(d: dict, k: str) -> str:
                text = _canonical(d[k]) if k in d else "(absent)"
                return text if len(text) <= 60 else text[:57] + "..."
            details = "; ".join(f"{k}: store {show(stored, k)}, now {show(expected, k)}" for k in differ)
            raise ResumeMismatchError(f"{redact(self.url)} was made with other settings ({details}); resume with the "
                                      "same settings, or start a new run with overwrite")

    def finalize(self, plan: TilePlan) -> None:
        """Stage B: overlap-add the stage-A slots into ``fused`` lazily, cast to the output dtype, then mark complete.

        Integer output is rounded and clipped to the dtype; a valid pixel that would equal nodata moves one DN towards
        the inside of the range, so nodata marks only pixels that were NaN (nodata) in every contributing tile.
        Runs on the current dask scheduler (a distributed Client when one is active); refuses while tiles are pending.
        """
        import dask.array as da

        from .tiling import blend

        if plan != self.plan:
            raise ResumeMismatchError(f"{redact(self.url)} was made for the tile plan {self.plan.to_dict()}, "
                                      f"not {plan.to_dict()}")
        done = self.done()
        if not done.all():
            pending = [tuple(map(int, rc)) for rc in np.argwhere(~done)[:5]]
            raise InputError(f"{redact(self.url)}: {int((~done).sum())} of {done.size} tiles are not done (e.g. "
                             f"(row, col) {pending}); resume the run to finish them before blending")
        info = self._info
        out_dtype, nodata = np.dtype(info["dtype"]), info["nodata"]
        blended = blend(da.from_zarr(self.group["tiles"]), plan)
        fused = blended.map_blocks(to_output_dtype, dtype=out_dtype, out_dtype=out_dtype, nodata=nodata)
        target = self.group["fused"]
        aligned = all(all(c == z for c in axis[:-1]) and axis[-1] <= z for axis, z in zip(fused.chunks, target.chunks))
        if not aligned:  # region writes must be chunk-aligned, or concurrent writers could lose data
            raise ResumeMismatchError(f"{redact(self.url)}: fused chunks {target.chunks} do not match the tile plan")
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

    Raises `InputError` when nothing is there and `ResumeMismatchError` for a foreign or corrupt store.
    """
    import zarr

    shown = redact(url)
    store = RunStore(url, storage_options)
    try:
        group = _open_group(url, storage_options, "r+")
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
        raise ResumeMismatchError(f"{shown}: corrupt trapan_cloud store ({exc})") from None
    wrong = sorted(k for k in expected if found.get(k) != expected[k])
    if wrong:
        raise ResumeMismatchError(f"{shown}: corrupt trapan_cloud store, arrays missing or misshapen: "
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
        raise InputError(f"{redact(url)}: the run is {store.status!r} ({int(done.sum())} of {done.size} tiles done), "
                         "not 'complete'; resume it (trapan resume) to finish it")
    ds = xr.open_zarr(url, consolidated=False, mask_and_scale=False, drop_variables=["tiles", "prior"],
                      storage_options=storage_options or None)
    ds = ds.set_coords("spatial_ref") if "spatial_ref" in ds.data_vars else ds
    nodata = store._info["nodata"]
    ds["fused"].attrs.pop("_FillValue", None)
    if nodata is not None:
        ds["fused"].attrs["_FillValue"] = nodata
    return ds


def export_cog(url: str, path: str, storage_options: dict | None = None, profile: str = "deflate") -> str:
    """Write a finished run's ``fused`` as a Cloud-Optimized GeoTIFF at local ``path`` (rio-cogeo); returns ``path``.

    The scene is copied one tile core at a time into a temporary GeoTIFF, so it is never held in memory.
    """
    import rasterio
    from rasterio.windows import Window
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    ds = open_result(url, storage_options)
    store = open_store(url, storage_options)
    plan, fused = store.plan, ds["fused"]
    nodata = store._info["nodata"]
    with tempfile.TemporaryDirectory() as tmp:
        src_path = os.path.join(tmp, "fused.tif")
        profile_src = {"driver": "GTiff", "height": plan.shape[0], "width": plan.shape[1], "count": fused.shape[0],
                       "dtype": fused.dtype.name, "crs": ds.rio.crs, "transform": ds.rio.transform(),
                       "nodata": nodata, "tiled": True, "blockxsize": 256, "blockysize": 256}
        with rasterio.open(src_path, "w", **profile_src) as dst:
            for t in plan.tiles:
                (y0, y1, x0, x1), (ys, xs) = t.core, t.core_slices
                dst.write(fused[:, ys, xs].values, window=Window(x0, y0, x1 - x0, y1 - y0))
            dst.descriptions = tuple(str(b) for b in ds["band"].values)
        cog_translate(src_path, path, cog_profiles.get(profile), quiet=True, forward_band_tags=True)
    return path


def stac_item_for_result(url: str, *, item_id: str, datetime: str, storage_options: dict | None = None,
                         href: str | None = None, properties: dict | None = None) -> dict:
    """A STAC 1.1 Item (plain dict) describing a finished run: footprint, projection fields and the Zarr asset.

    Parameters
    ----------
    url, storage_options
        The finished store.
    item_id, datetime
        The item's id and its ISO-8601 acquisition time (usually the input item's).
    href
        Asset href to publish (default ``url``, credentials removed).
    properties
        Extra item properties (e.g. ``{"platform": "worldview-2"}``).
    """
    import pyproj

    ds = open_result(url, storage_options)
    crs = pyproj.CRS.from_user_input(ds.rio.crs.to_wkt())
    left, bottom, right, top = ds.rio.bounds()
    to_wgs84 = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    west, south, east, north = to_wgs84.transform_bounds(left, bottom, right, top)
    epsg = crs.to_epsg()
    projection = {"proj:code": f"EPSG:{epsg}"} if epsg else {"proj:wkt2": crs.to_wkt()}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": item_id,
        "bbox": [west, south, east, north],
        "geometry": {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                          [west, north], [west, south]]]},
        "properties": {"datetime": datetime, **projection, "proj:shape": list(ds["fused"].shape[1:]),
                       "proj:transform": list(ds.rio.transform())[:6], **(properties or {})},
        "links": [],
        "assets": {"fused": {"href": href or redact(url), "type": "application/vnd.zarr", "roles": ["data"],
                             "title": "pansharpened scene (band, y, x)",
                             "bands": [{"name": str(b)} for b in ds["band"].values]}},
    }


def store_status(url: str, storage_options: dict | None = None) -> dict[str, Any]:
    """Progress and QA summary of a run store: tiles done / pending / failed, and the mean and worst per-tile QA.

    Reads only the store's small arrays and attrs (no torch, no dask), so ``trapan status`` is instant.
    """
    store = open_store(url, storage_options)
    plan, done = store.plan, store.done()
    info = store._info
    done_idx = store._done_indices()
    failed = {int(k): v for k, v in dict(info.get("failed", {})).items() if int(k) not in done_idx}
    out: dict[str, Any] = {"store": redact(url), "status": store.status, "tiles_total": len(plan.tiles),
                           "tiles_done": int(done.sum()), "tiles_pending": len(plan.tiles) - int(done.sum()),
                           "tiles_failed": len(failed)}
    for name, values in store.qa().items():
        finite = values[done & np.isfinite(values)]
        if finite.size:
            worst = "max" if name.startswith("d_") or name in ("steps", "seconds") else "min"  # HQNR: lower is worse
            out[f"{name}_mean"] = float(finite.mean())
            out[f"{name}_{worst}"] = float(getattr(finite, worst)())
    if failed:
        out["failed"] = {k: failed[k] for k in sorted(failed)}
    return out
