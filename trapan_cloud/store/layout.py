"""The store's layout: what a new run store holds (the template) and the checks made before it is written.

One store holds one run. The root group is the product, laid out so that GDAL (``ZARR:"out.zarr":/fused``),
xarray/rioxarray and zarr-python read it as a plain georeferenced raster; the run state sits in the sub-group
``run/``, out of the product's way:

``fused`` (band, y, x) in the output dtype
    Stage B: the overlap-add of the stage-A slots, one chunk per tile core; Zarr ``fill_value`` = nodata. It is
    georeferenced through the ``spatial_ref`` coordinate (CF ``crs_wkt`` + GDAL ``spatial_ref``/``GeoTransform``, the
    exact PAN transform) and pixel-centre ``x``/``y`` coordinates (GDAL derives its geotransform from those).
``band`` (band) fixed-width unicode
    The MS band names (GDAL shows them as the ``DIM_band_VALUE`` band metadata item).
``run/tiles`` (band, slot_y, slot_x) float32
    Stage A: one chunk (slot) per tile holding ``blend_weights(tile) × prediction`` over its ext window
    (`trapan_cloud.tiling`); NaN where never written. Its chunks are deleted once the run is complete unless
    ``keep_tiles`` (the array's metadata stays, so a repair can write into it again).
``run/done`` (tile_row, tile_col) uint8
    1 once a tile's data and QA are stored; one chunk per tile, written last, so a crash can only cause a recompute.
``run/<qa field>``: one (tile_row, tile_col) float64 array per `qa.TileQA` field
    Per-tile quality values, one chunk per tile, NaN until written; each array's ``better`` attribute says whether
    "higher" or "lower" values are better, and its ``long_name`` what it measures.
``run/prior`` (prior_byte) uint8
    The Stage-1 prior's safetensors bytes (runs that fit one).
``item.json``
    The STAC item of the finished product (`store.product`), written at completion and removed when a repair
    reopens the store.

The root attribute ``trapan_cloud`` holds the run manifest, the tile plan and the ``status`` ("running", then
"complete" once ``fused`` is written). Every write after the template touches whole chunks that belong to one tile,
so concurrent writers never share an object; chunks equal to the fill value are written too, so a missing chunk is
always damage, never "empty". Metadata is consolidated (``.zmetadata`` for v2, inside ``zarr.json`` for v3) only
when the run completes, and again whenever the status changes after that; the project itself always reads the live
attributes, so a status change is seen at once.

Locations are local paths or fsspec URLs (``s3://bucket/key.zarr``). Credentials come from the environment or from
``storage_options`` and are never written to the store, logged, or put in an error message (`redaction.redact`).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, StoreExistsError
from ..qa import TileQA, qa_specs
from ..redaction import redact
from ..tiling import TilePlan

if TYPE_CHECKING:
    from .io import RunStore

logger = logging.getLogger(__name__)

ATTR = "trapan_cloud"
"""Root attribute that marks a trapan_cloud store and holds its run description."""
FORMAT_VERSION = 2
"""Layout version of the store; bump when arrays or attributes change meaning (2: run state moved to ``run/``,
stage-A tiles removed at completion, STAC item inside the store)."""
RUN_GROUP = "run"
"""Sub-group holding the run state (stage-A tiles, done flags, QA, prior)."""
ITEM_NAME = "item.json"
"""File name of the product's STAC item inside the store."""
RUNNING, COMPLETE = "running", "complete"
FITTING_PRIOR = "fitting prior"
"""Status of a store created before its Stage-1 prior is fitted: resumable (the resume fits the prior again), never
complete. `RunStore.save_prior` moves it to "running"."""
OWN_NAMES = frozenset({"fused", "tiles", "done", "band", "x", "y", "spatial_ref", "prior"})
"""Variable names of the store itself, which a QA field may not take."""


def pixel_centres(origin: float, step: float, n: int) -> np.ndarray:
    """Coordinates of the centres of ``n`` pixels of size ``step`` from ``origin`` (GDAL's pixel-is-area).

    >>> pixel_centres(100.0, 2.0, 3).tolist()
    [101.0, 103.0, 105.0]
    """
    return origin + step * (np.arange(n) + 0.5)


@contextlib.contextmanager
def item_is_ours() -> Iterator[None]:
    """Silence zarr's warning that ``item.json`` (the store's own STAC item) is not a Zarr node while listing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=f"Object at {ITEM_NAME} is not recognized")
        yield


def fs_path(url: str, storage_options: dict | None) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url`` (listing cache dropped, so existence is current)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    fs.invalidate_cache()
    return fs, path


def output_exists(url: str, storage_options: dict | None = None) -> bool:
    """Whether anything (a store, a file, a folder) is at ``url``."""
    fs, path = fs_path(url, storage_options)
    return bool(fs.exists(path))


def exists_error(url: str) -> StoreExistsError:
    """The one refusal of an existing output, for every command that writes one."""
    return StoreExistsError(f"out: {redact(url)} already exists; pass overwrite=True (--overwrite) to replace it, or "
                            "resume=True (trapan resume) to finish the run that made it")


ZARR_METADATA = frozenset({"zarr.json", ".zattrs", ".zgroup", ".zmetadata", ".zarray"})
"""Metadata object names of a Zarr group or array (v3 and v2)."""
OWN_FILES = ZARR_METADATA | {ITEM_NAME}
"""Plain objects a store of ours may hold at its root besides its arrays and groups."""


def _root_attrs(fs: Any, path: str) -> dict | None:
    """The root attributes of the Zarr group at ``path`` (v3 ``zarr.json`` or v2 ``.zattrs``), None if unreadable."""
    for name, pick in (("zarr.json", lambda d: d.get("attributes")), (".zattrs", lambda d: d)):
        try:
            meta = json.loads(fs.cat_file(f"{path.rstrip('/')}/{name}"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        attrs = pick(meta) if isinstance(meta, dict) else None
        if isinstance(attrs, dict):
            return attrs
    return None


def foreign_reason(url: str, storage_options: dict | None = None) -> str | None:
    """Why the existing output at ``url`` is not a store this project wrote (None when it is one).

    A store of ours is a folder whose Zarr root attributes hold the ``trapan_cloud`` run description (with a manifest)
    and whose entries are all Zarr metadata objects or Zarr arrays/groups; anything else there (a user's file or
    folder beside the arrays) makes the whole path foreign, so ``overwrite`` never deletes it. An empty folder holds
    nothing to lose and may be replaced.
    """
    fs, path = fs_path(url, storage_options)
    if not fs.isdir(path):
        return "it is a file, not a Zarr store folder"
    if not fs.ls(path):
        return None  # an empty folder: nothing to lose
    attrs = _root_attrs(fs, path)
    info = None if attrs is None else attrs.get(ATTR)
    if not isinstance(info, dict) or "manifest" not in info:
        if attrs is None:
            return "it is a folder that is not a Zarr store"
        return f"it is not a trapan_cloud store (no Zarr root attribute '{ATTR}' with a run manifest)"
    strangers = []
    for entry in fs.ls(path, detail=True):
        name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
        if name in OWN_FILES and entry.get("type") != "directory":
            continue
        node = f"{path.rstrip('/')}/{name}"
        if entry.get("type") != "directory" or not any(fs.exists(f"{node}/{m}") for m in ("zarr.json", ".zarray",
                                                                                          ".zgroup")):
            strangers.append(name)
    if strangers:
        return f"it holds entries that are not part of the store ({', '.join(sorted(strangers)[:5])})"
    return None


def check_overwrite(url: str, storage_options: dict | None = None) -> None:
    """Refuse (`StoreExistsError`, one line naming the path and why) to replace an output this project did not write."""
    reason = foreign_reason(url, storage_options)
    if reason:
        raise StoreExistsError(f"out: refusing to overwrite {redact(url)}: {reason}; overwrite replaces only a "
                               "trapan_cloud store, so choose another output or remove it yourself")


def remove_store(url: str, storage_options: dict | None = None) -> None:
    """Delete the trapan_cloud store at ``url`` (after `check_overwrite`); anything else is refused, never deleted."""
    check_overwrite(url, storage_options)
    fs, path = fs_path(url, storage_options)
    logger.info("overwriting %s", redact(url))
    fs.rm(path, recursive=True)


def check_transform(transform: Any) -> tuple[float, ...]:
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


def _check_manifest(manifest: dict, storage_options: dict | None) -> None:
    """A JSON-ready manifest without any credential-looking value of ``storage_options`` (never printed)."""
    try:
        text = json.dumps(manifest, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"manifest: expected a JSON-ready dict ({exc})") from None
    secrets = [v for k, v in (storage_options or {}).items()
               if isinstance(v, str) and len(v) >= 4 and re.search(r"key|secret|token|password|credential", k, re.I)]
    if any(s in text for s in secrets):
        raise InputError("manifest: contains a credential from storage_options; credentials must never be stored")


def _check_output(dtype: str, nodata: float | None, zarr_format: int) -> np.dtype:
    """The output dtype, checked with its nodata value and the Zarr format."""
    if zarr_format not in (2, 3):
        raise InputError(f"zarr_format: expected 2 or 3, found {zarr_format!r}")
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype: expected a numpy dtype name such as 'uint16' or 'float32', found {dtype!r}") from None
    if out_dtype.kind not in "uif":
        raise InputError(f"dtype: expected an integer or floating output type, found {out_dtype}")
    if nodata is not None and out_dtype.kind in "ui" and not (
            np.iinfo(out_dtype).min <= nodata <= np.iinfo(out_dtype).max and float(nodata).is_integer()):
        raise InputError(f"nodata: {nodata!r} is not a value of the output dtype {out_dtype}")
    return out_dtype


def _crs(crs: Any) -> Any:
    """A pyproj CRS from anything ``pyproj.CRS.from_user_input`` takes."""
    import pyproj

    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise InputError(f"crs: expected a CRS (EPSG code, WKT, PROJ string), found {crs!r} ({exc})") from None


def compressor(zarr_format: int, bitshuffle: bool) -> Any:
    """Blosc/zstd for every array: the one compressor both zarr-python and the GDAL in rasterio's wheels decode."""
    if zarr_format == 2:
        import numcodecs

        return numcodecs.Blosc(cname="zstd", clevel=5,
                               shuffle=numcodecs.Blosc.BITSHUFFLE if bitshuffle else numcodecs.Blosc.SHUFFLE)
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle" if bitshuffle else "shuffle")


def _band_names(bands: list[str], zarr_format: int) -> np.ndarray:
    """Band names as fixed-width unicode in v2 (GDAL reads it; object strings it does not), as variable-length
    strings in v3 (fixed-width unicode has no v3 specification)."""
    return np.array(bands, dtype=str if zarr_format == 2 else object)


def _template(plan: TilePlan, bands: list[str], crs_obj: Any, coeffs: tuple[float, ...], out_dtype: np.dtype,
              nodata: float | None, qa: type[TileQA], info: dict[str, Any],
              zarr_format: int) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """The lazy template Datasets of a new store (the product at the root, the run state in ``run/``) and their
    Zarr encodings."""
    import dask.array as da
    import xarray as xr

    H, W = plan.shape
    B, s = len(bands), plan.slot_px
    a, _, c, _, e, f = coeffs
    grid_mapping = {**crs_obj.to_cf(), "spatial_ref": crs_obj.to_wkt(),
                    "GeoTransform": f"{c!r} {a!r} 0.0 {f!r} 0.0 {e!r}"}
    x_attrs, y_attrs = ({"standard_name": f"projection_{ax}_coordinate", "axis": ax.upper()} for ax in "xy")
    if crs_obj.is_geographic:
        x_attrs, y_attrs = {"standard_name": "longitude", "units": "degrees_east"}, \
            {"standard_name": "latitude", "units": "degrees_north"}
    fused = da.zeros((B, H, W), dtype=out_dtype, chunks=(B, plan.tile_px, plan.tile_px))
    product = xr.Dataset(
        {"fused": (("band", "y", "x"), fused, {"grid_mapping": "spatial_ref", "long_name": "pansharpened digital "
                                               "numbers", "units": "DN" if out_dtype.kind in "ui" else "1"})},
        coords={"band": ("band", _band_names(bands, zarr_format)), "y": ("y", pixel_centres(f, e, H), y_attrs),
                "x": ("x", pixel_centres(c, a, W), x_attrs), "spatial_ref": ((), np.int64(0), grid_mapping)},
        attrs={ATTR: info})
    product_encoding = {"fused": {"chunks": (B, plan.tile_px, plan.tile_px), "_FillValue": nodata,
                                  "compressors": [compressor(zarr_format, bitshuffle=True)]}}
    tile_dims, per_tile = ("tile_row", "tile_col"), (plan.n_rows, plan.n_cols)
    state = {
        "tiles": (("band", "slot_y", "slot_x"),
                  da.zeros((B, plan.n_rows * s, plan.n_cols * s), dtype=np.float32, chunks=(B, s, s)),
                  {"long_name": "stage A: blending weight x prediction per tile slot"}),
        "done": (tile_dims, da.zeros(per_tile, dtype=np.uint8, chunks=1),
                 {"long_name": "1 when the tile's data and QA are stored", "flag_values": [0, 1],
                  "flag_meanings": "pending done"}),
    }
    for spec in qa_specs(qa):
        state[spec.name] = (tile_dims, da.zeros(per_tile, dtype=np.float64, chunks=1),
                            {"long_name": spec.description, "better": "higher" if spec.higher_is_better else "lower"})
    run = xr.Dataset(state, coords={"band": ("band", _band_names(bands, zarr_format))})
    run_encoding = {
        "tiles": {"chunks": (B, s, s), "_FillValue": np.float32(np.nan),
                  "compressors": [compressor(zarr_format, bitshuffle=False)]},
        "done": {"chunks": (1, 1), "_FillValue": None},  # a plain uint8 flag: xarray must not mask 0 as missing
        **{spec.name: {"chunks": (1, 1), "_FillValue": np.nan} for spec in qa_specs(qa)},
    }
    return product, product_encoding, run, run_encoding


def create_store(url: str, *, plan: TilePlan, bands: list[str] | tuple[str, ...], crs: Any, transform: Any,
                 manifest: dict, dtype: str = "uint16", nodata: float | None = 0, zarr_format: int = 2,
                 storage_options: dict | None = None, overwrite: bool = False,
                 qa: type[TileQA] = TileQA, status: str = RUNNING) -> RunStore:
    """Write the template of a new run: metadata, coordinates and empty arrays, with ``status`` ("running", or
    "fitting prior" for a run whose prior is not fitted yet).

    ``plan`` is the run's tile plan (its PAN shape is the output grid); ``bands`` one name per MS band; ``crs`` and
    ``transform`` the PAN grid's CRS (anything pyproj takes) and north-up affine ``(a, b, c, d, e, f)``; ``manifest``
    the JSON-ready run settings (a `RunManifest.to_dict`), credential-free; ``dtype`` and ``nodata`` the output
    type of ``fused`` and its nodata value (None for none); ``zarr_format`` 2 (default: GDAL 3.10 reads it) or 3
    (xarray and zarr-python only); ``overwrite`` replaces an existing
    store (otherwise `StoreExistsError`); ``qa`` the `TileQA` class whose fields become the QA arrays.
    """
    from .io import open_store

    out_dtype = _check_output(dtype, nodata, zarr_format)
    bands = [str(b) for b in bands]
    if not bands or len(set(bands)) != len(bands):
        raise InputError(f"bands: expected unique band names, one per MS band, found {bands}")
    names = [s.name for s in qa_specs(qa)]
    if not OWN_NAMES.isdisjoint(names):
        raise InputError(f"qa: fields {names} clash with the store's own variable names")
    crs_obj, coeffs = _crs(crs), check_transform(transform)
    _check_manifest(manifest, storage_options)
    fs, path = fs_path(url, storage_options)
    if fs.exists(path):
        if not overwrite:
            raise exists_error(url)
        remove_store(url, storage_options)
    if status not in (RUNNING, FITTING_PRIOR):
        raise InputError(f"status: a new store is {RUNNING!r} or {FITTING_PRIOR!r}, not {status!r}")
    info = {"format_version": FORMAT_VERSION, "status": status, "manifest": manifest, "plan": plan.to_dict(),
            "bands": bands, "dtype": out_dtype.name, "nodata": nodata, "qa_fields": names,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tiles_removed": False}
    product, product_enc, state, state_enc = _template(plan, bands, crs_obj, coeffs, out_dtype, nodata, qa, info,
                                                       zarr_format)
    options = storage_options or None
    product.to_zarr(url, mode="w", compute=False, zarr_format=zarr_format, consolidated=False,
                    encoding=product_enc, storage_options=options)
    state.to_zarr(url, group=RUN_GROUP, mode="a", compute=False, zarr_format=zarr_format, consolidated=False,
                  encoding=state_enc, storage_options=options)
    logger.info("created %s: %d x %d tiles, %d bands, zarr v%d", redact(url), plan.n_rows, plan.n_cols, len(bands),
                zarr_format)
    return open_store(url, storage_options)
