"""`open_scene`: one PAN/MS scene, from a STAC item or from COG paths, as a lazy xarray Dataset on aligned grids."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..redaction import redact, refuse_credentials
from ..sensors import KNOWN, Sensor, get_sensor
from ..validate import apply_nodata_rule, scene_nodata
from .cog import RasterInfo, open_raster, read_info
from .fingerprint import absolute, fingerprint
from .grid import Alignment, align_grids, crs_string, pixel_centres
from .loaders import LOADERS
from .model import SceneMeta, Source

if TYPE_CHECKING:
    import xarray as xr

BACKENDS = tuple(LOADERS)
DEFAULT_CHUNKS_PX = 2048
"""Default PAN block side: a multiple of the 512-px COG tile and of every sensor ratio."""


def open_scene(item: Any = None, *, pan: str | os.PathLike | None = None,
               ms: str | os.PathLike | list[str | os.PathLike] | None = None, sensor: str | Sensor | None = None,
               backend: str = "odc", pan_asset: str | None = None, ms_assets: str | list[str] | None = None,
               chunks: int | None = None, nodata: float | None = None) -> xr.Dataset:
    """Open a PAN + MS scene lazily, with both grids cropped to a common footprint on the toolbox phase.

    Parameters
    ----------
    item
        A STAC Item: path, URL, dict or ``pystac.Item``. Exclusive with ``pan``/``ms``.
    pan, ms
        PAN COG and MS COG (multi-band) or list of single-band MS COGs, as paths or GDAL-readable URLs
        (``https://``, ``s3://``, ...). ``sensor`` is then required. URLs with credentials in them
        (``s3://KEY:SECRET@bucket/...``) are refused: credentials come from the environment.
    sensor
        Sensor name (`trapan_cloud.sensors.KNOWN`); for an item it overrides the platform/constellation.
    backend
        ``"odc"`` (odc-stac, default) or ``"stackstac"`` (single-band assets only); used for items only.
    pan_asset, ms_assets
        Asset keys when the automatic choice is wrong or ambiguous. MS band names follow the sensor's table for that
        band count, so list per-band keys in the sensor's order.
    chunks
        PAN dask block side in pixels (default 2048, rounded down to a multiple of the ratio); MS blocks are
        ``chunks / ratio``, so PAN block (i, j) and MS block (i, j) cover the same ground.
    nodata
        Nodata DN for PAN and MS; by default the files'/metadata's value (which must agree between PAN and MS).
        Signed and floating inputs follow the nodata rule of `trapan_cloud.validate`: NaN and negative values are
        nodata, read as this value when it is a number >= 0, else as 0 (which then is the scene's nodata).

    Returns
    -------
    xarray.Dataset
        ``pan`` (y, x) and ``ms`` (band, y_ms, x_ms), dask-backed, native dtype (one of
        `validate.INPUT_DTYPES`, the same for PAN and MS), pixel-centre coordinates;
        ``pan.shape == (ratio*h, ratio*w)`` and MS pixel (i, j) covers PAN block [ratio*i:ratio*(i+1), ...], its
        centre being at PAN index ``ratio*i + ratio//2`` plus ``attrs["subpixel_shift_px"]``. Attrs: ``sensor``,
        ``ratio``, ``crs``, ``pan_transform``, ``ms_transform``, ``subpixel_shift_px``, ``nodata``, ``band_names``,
        ``source``.

    Raises
    ------
    InputError
        Before any pixel is read: an input missing, unreadable, truncated or of another pixel type, CRSs that differ,
        a non-integer ratio, no overlap, a rotated grid, a band count the sensor lacks, PAN and MS of different
        pixel types, a URL with credentials.
    """
    if backend not in BACKENDS:
        raise InputError(f"backend: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    _check_chunks(chunks)
    if item is not None:
        if pan is not None or ms is not None:
            raise InputError("item/pan/ms: pass either a STAC item or pan= and ms= paths, not both")
        return _open_item(item, sensor, backend, pan_asset, ms_assets, chunks, nodata)
    if pan is None or ms is None:
        raise InputError("pan/ms: pass a STAC item, or both pan= and ms= (COG paths or URLs)")
    for name, href in (("pan", pan), *(("ms", m) for m in (ms if isinstance(ms, (list, tuple)) else [ms]))):
        refuse_credentials(os.fspath(href), name)
    if sensor is None:
        raise InputError(f"sensor: required with pan=/ms= paths (one of {', '.join(KNOWN)}, or 'generic')")
    return _open_files(pan, ms, get_sensor(sensor), chunks, nodata)


def _check_chunks(chunks: int | None) -> None:
    """Refuse a PAN block side that is not an int >= 2."""
    if chunks is not None and (not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 2):
        raise InputError(f"chunks: expected a PAN block side in pixels (int >= 2), got {chunks!r}")


def _open_item(item: Any, sensor: str | Sensor | None, backend: str, pan_asset: str | None,
               ms_assets: str | list[str] | None, chunks: int | None, nodata: float | None) -> xr.Dataset:
    from . import stac

    plan = stac.plan_item(item, sensor, pan_asset, ms_assets)
    names = (f"asset {plan.pan_key!r}", f"asset {plan.ms_keys[0]!r}")
    nbands = _check_ms(plan.ms, plan.ms_keys)
    plan.sensor.check_bands(nbands, argument=f"item {plan.item.get('id')!r} MS assets {', '.join(plan.ms_keys)}")
    _check_dtypes(plan.pan, plan.ms, names)
    align = align_grids(plan.pan.grid, plan.ms[0].grid, names)
    value = _resolve_nodata(nodata, plan.pan, plan.ms)
    chunk = _chunk(chunks, align.ratio)
    pan_arr, ms_arr = LOADERS[backend](plan, align, chunk)
    files = ([] if plan.item_href is None else [("item", plan.item_href)]) + [
        (f"asset {k!r}", i.href) for k, i in zip((plan.pan_key, *plan.ms_keys), (plan.pan, *plan.ms))]
    source = Source(backend=backend, item=plan.item.get("id"),
                    item_href=None if plan.item_href is None else redact(absolute(plan.item_href)),
                    pan_asset=plan.pan_key, ms_assets=tuple(plan.ms_keys), pan=redact(plan.pan.href),
                    ms=tuple(redact(i.href) for i in plan.ms),
                    fingerprints=tuple(fingerprint(href, name) for name, href in files))
    return _dataset(pan_arr, ms_arr, plan.sensor, align, plan.pan.grid.crs, value, chunk, source)


def _open_files(pan: Any, ms: Any, sensor: Sensor, chunks: int | None, nodata: float | None) -> xr.Dataset:
    pan_href = absolute(os.fspath(pan))
    ms_hrefs = [absolute(os.fspath(m)) for m in (ms if isinstance(ms, (list, tuple)) else [ms])]
    if not ms_hrefs:
        raise InputError("ms: expected a multi-band COG or a list of single-band COGs, got an empty list")
    pan_info = read_info(pan_href, "pan")
    if pan_info.count != 1:
        raise InputError(f"pan: {redact(pan_href)!r} has {pan_info.count} bands; expected a single PAN band")
    ms_info = tuple(read_info(h, f"ms[{i}]" if len(ms_hrefs) > 1 else "ms") for i, h in enumerate(ms_hrefs))
    nbands = _check_ms(ms_info, tuple(redact(h) for h in ms_hrefs))
    sensor.check_bands(nbands)
    _check_dtypes(pan_info, ms_info, (redact(pan_href), redact(ms_hrefs[0])))
    align = align_grids(pan_info.grid, ms_info[0].grid, (redact(pan_href), redact(ms_hrefs[0])))
    value = _resolve_nodata(nodata, pan_info, ms_info)
    chunk = _chunk(chunks, align.ratio)
    r = align.ratio
    (py, px), (my, mx), (h, w) = align.pan_offset, align.ms_offset, align.ms_shape
    pan_da = open_raster(pan_href, (chunk, chunk), "pan")
    pan_arr = pan_da.data[0, py : py + r * h, px : px + r * w]
    import dask.array as da

    ms_arr = da.concatenate([open_raster(hh, (chunk // r, chunk // r), "ms").data for hh in ms_hrefs], axis=0)
    ms_arr = ms_arr[:, my : my + h, mx : mx + w]
    ms_names = [f"ms[{i}]" for i in range(len(ms_hrefs))] if len(ms_hrefs) > 1 else ["ms"]
    source = Source(backend="rioxarray", pan=redact(pan_href), ms=tuple(redact(hh) for hh in ms_hrefs),
                    fingerprints=(fingerprint(pan_href, "pan"),
                                  *(fingerprint(hh, n) for n, hh in zip(ms_names, ms_hrefs))))
    return _dataset(pan_arr, ms_arr, sensor, align, pan_info.grid.crs, value, chunk, source)


def _check_ms(infos: tuple[RasterInfo, ...], names: tuple[str, ...]) -> int:
    """Total MS band count; several MS rasters must each be single-band and share one grid and dtype."""
    if len(infos) == 1:
        return infos[0].count
    for info, name in zip(infos, names):
        if info.count != 1:
            raise InputError(f"ms: {name} has {info.count} bands; a list of MS rasters must hold one band each")
        g0, g = infos[0].grid, info.grid
        if g.shape != g0.shape or g.crs != g0.crs or not g.transform.almost_equals(g0.transform, precision=1e-9):
            raise InputError(f"ms: {name} is on grid {g.shape} {tuple(g.transform)[:6]} but {names[0]} is on "
                             f"{g0.shape} {tuple(g0.transform)[:6]}; all MS bands must share one grid")
        if info.dtype != infos[0].dtype:
            raise InputError(f"ms: {name} is {info.dtype} but {names[0]} is {infos[0].dtype}; "
                             "all MS bands must share one dtype")
    return len(infos)


def _check_dtypes(pan: RasterInfo, ms: tuple[RasterInfo, ...], names: tuple[str, str]) -> None:
    """PAN and MS must hold one pixel type: the fusion takes their values on one scale (a uint16 PAN with a uint8 MS
    would be fused as if the MS were 256 times darker)."""
    if ms[0].dtype != pan.dtype:
        raise InputError(f"{names[0]}/{names[1]}: PAN is {pan.dtype} but MS is {ms[0].dtype}; expected one pixel type "
                         "(and one scale) for both; convert one to the other's type and scale (gdal_translate -ot ... "
                         "-scale ...)")


def _resolve_nodata(nodata: float | None, pan: RasterInfo, ms: tuple[RasterInfo, ...]) -> float | None:
    """The one nodata value for PAN and MS: the argument, else the value the rasters declare (they must agree; NaN
    agrees with NaN), then the nodata rule for the pixel type (`validate.scene_nodata`)."""
    if nodata is None:
        declared = {"nan" if math.isnan(i.nodata) else i.nodata for i in (pan, *ms) if i.nodata is not None}
        if len(declared) > 1:
            shown = ", ".join(sorted(f"{v:g}" if isinstance(v, float) else str(v) for v in declared))
            raise InputError(f"nodata: PAN and MS declare different nodata values ({shown}); expected one value for "
                             "both; set the same one in every file (gdal_edit.py -a_nodata VALUE FILE) or, in "
                             "Python, pass open_scene(..., nodata=VALUE)")
        value = declared.pop() if declared else None
        nodata = math.nan if value == "nan" else value
    value = scene_nodata(pan.dtype, nodata)
    return int(value) if value is not None and float(value).is_integer() else value


def _chunk(chunks: int | None, ratio: int) -> int:
    """PAN block side: the request (or the default) rounded down to a multiple of the ratio."""
    side = DEFAULT_CHUNKS_PX if chunks is None else chunks
    return max(ratio, side - side % ratio)


def _dataset(pan: Any, ms: Any, sensor: Sensor, align: Alignment, crs: Any, nodata: float | None, chunk: int,
             source: Source) -> xr.Dataset:
    """Assemble the contract Dataset; blocks are re-aligned so PAN block (i, j) and MS block (i, j) match."""
    import xarray as xr

    r = align.ratio
    pan = apply_nodata_rule(pan.rechunk((chunk, chunk)), nodata)
    ms = apply_nodata_rule(ms.rechunk((1, chunk // r, chunk // r)), nodata)
    bands = list(sensor.bands_for(ms.shape[0]))
    y, x = pixel_centres(align.pan_transform, align.pan_shape)
    y_ms, x_ms = pixel_centres(align.ms_transform, align.ms_shape)
    return xr.Dataset(
        {
            "pan": xr.DataArray(pan, dims=("y", "x"), coords={"y": y, "x": x}),
            "ms": xr.DataArray(ms, dims=("band", "y_ms", "x_ms"), coords={"band": bands, "y_ms": y_ms, "x_ms": x_ms}),
        },
        attrs=SceneMeta(sensor=sensor.name, ratio=r, crs=crs_string(crs), pan_transform=align.pan_transform,
                        ms_transform=align.ms_transform, band_names=bands, nodata=nodata,
                        subpixel_shift_px=align.shift_px).to_attrs(source),
    )
