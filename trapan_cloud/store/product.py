"""The STAC item of a finished product (pystac with the eo, raster and projection extensions), kept in the store.

The item sits inside the store (``<store>/item.json``): the store is a folder this project owns, so writing or
replacing the item can never touch a user's file, and ``overwrite`` removes it with the store. Its assets:

one per band, keyed by the band name
    The product's band as GDAL opens it, ``ZARR:"<store>":/fused:<index>`` (a local absolute path, ``/vsis3/`` or
    ``/vsicurl/``, credentials removed), with ``proj:*``, ``raster:bands`` and ``eo:bands``: what odc-stac and
    stackstac load (stackstac reads single-band assets only).
``zarr``
    The store itself, relative to the item (``./``), for xarray / zarr-python (``trapan_cloud.open_result``).
``cog``
    With ``--cog``: the exported Cloud-Optimized GeoTIFF, relative to the item when both are local files.

A batch links the items of its stores in ``<prefix>/catalog.json`` (`write_catalog`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np

from ..redaction import redact
from .io import RunStore, open_store

log = logging.getLogger(__name__)

ZARR_MEDIA_TYPE = "application/vnd+zarr"
"""Media type of a Zarr store in STAC (STAC best practices)."""


def gdal_path(url: str) -> str:
    """The GDAL connection string of the ``fused`` array of the store at ``url`` (credentials removed).

    >>> gdal_path("s3://bucket/runs/a.zarr")
    'ZARR:"/vsis3/bucket/runs/a.zarr":/fused'
    >>> gdal_path("https://host/a.zarr")
    'ZARR:"/vsicurl/https://host/a.zarr":/fused'
    """
    url = redact(str(url)).rstrip("/")
    if url.startswith(("s3://", "gs://")):
        prefix = "/vsis3/" if url.startswith("s3://") else "/vsigs/"
        path = prefix + url.split("://", 1)[1]
    elif url.startswith(("http://", "https://")):
        path = "/vsicurl/" + url
    else:
        path = os.path.abspath(url.removeprefix("file://"))
    return f'ZARR:"{path}":/fused'


def _band_statistics(store: RunStore) -> list[dict[str, float]]:
    """Per band: minimum, maximum, mean, standard deviation and percentage of valid (non-nodata) pixels."""
    import dask
    import dask.array as da

    fused = da.from_zarr(store.group["fused"]).astype(np.float64)
    nodata = store.nodata
    valid = da.isfinite(fused) if nodata is None else (fused != nodata) & da.isfinite(fused)
    masked = da.where(valid, fused, np.nan)
    axes = (1, 2)
    lo, hi, mean, std, count = dask.compute(da.nanmin(masked, axis=axes), da.nanmax(masked, axis=axes),
                                            da.nanmean(masked, axis=axes), da.nanstd(masked, axis=axes),
                                            valid.sum(axis=axes))
    total = fused.shape[1] * fused.shape[2]
    stats = []
    for b in range(fused.shape[0]):
        if not count[b]:
            stats.append({"valid_percent": 0.0})
            continue
        stats.append({"minimum": float(lo[b]), "maximum": float(hi[b]), "mean": float(mean[b]),
                      "stddev": float(std[b]), "valid_percent": 100.0 * float(count[b]) / total})
    return stats


def _item_datetime(store: RunStore) -> str:
    """The input STAC item's datetime when the manifest names a readable item, else the store's creation time."""
    import fsspec

    href = (store.manifest.get("inputs") or {}).get("item_href")
    if href:
        try:
            with fsspec.open(href, "rt") as f:
                props = json.load(f).get("properties", {})
            value = props.get("datetime") or props.get("start_datetime")
            if value:
                return str(value)
        except (OSError, ValueError, AttributeError):
            pass
    return str(store.info.get("created", "1970-01-01T00:00:00Z"))


def _projection(store: RunStore) -> tuple[dict[str, Any], list[float]]:
    """The ``proj:*`` fields of the PAN grid (exact transform from the manifest or ``spatial_ref``) and the lon/lat
    bounding box of the footprint."""
    import pyproj

    from ..stac_items import bbox_polygon
    from .layout import check_transform

    grid = store.manifest.get("grid", {})
    crs = pyproj.CRS.from_user_input(grid.get("crs") or store.group["spatial_ref"].attrs["crs_wkt"])
    a, _, c, _, e, f = check_transform(grid.get("pan_transform") or _transform_of(store))
    H, W = store.plan.shape
    xs, ys = (c, c + a * W), (f, f + e * H)
    native = [min(xs), min(ys), max(xs), max(ys)]
    bbox = list(pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform_bounds(*native,
                                                                                             densify_pts=21))
    epsg = crs.to_epsg()
    return dict(epsg=epsg, wkt2=None if epsg else crs.to_wkt(), shape=[H, W], transform=[a, 0.0, c, 0.0, e, f],
                bbox=native, geometry=bbox_polygon(*native)), bbox


def _bands(store: RunStore) -> tuple[list[Any], list[Any]]:
    """``eo:bands`` (name, common name, centre wavelength) and ``raster:bands`` (type, nodata, scale/offset, unit,
    statistics) of each band of the product."""
    from pystac.extensions.eo import Band
    from pystac.extensions.raster import DataType, RasterBand, Statistics

    from ..sensors import centre_wavelength_um, common_name

    info, sensor = store.info, store.manifest.get("sensor")
    dtype, nodata = np.dtype(info["dtype"]).name, info["nodata"]
    eo_bands = [Band.create(name=name, common_name=common_name(name),
                            center_wavelength=centre_wavelength_um(sensor, name) if sensor else None)
                for name in info["bands"]]
    raster_bands = [RasterBand.create(data_type=DataType(dtype), nodata=nodata, scale=1.0, offset=0.0,
                                      unit="DN" if dtype != "float32" else None, statistics=Statistics.create(**s))
                    for s in _band_statistics(store)]
    return eo_bands, raster_bands


def stac_item(store: RunStore, *, item_id: str | None = None, cog: str | None = None,
              item_href: str | None = None, href: str | None = None, properties: dict | None = None) -> Any:
    """The ``pystac.Item`` of a finished store: footprint, ``proj:*``, ``raster:bands`` (type, nodata, scale/offset,
    statistics) and ``eo:bands`` (names, common names, centre wavelengths from `sensors`); assets: one GDAL asset per
    band, ``zarr`` and, with ``cog``, ``cog``.

    ``item_href`` is where the item will be written (default ``<store>/item.json``); relative hrefs are relative to
    it. ``href`` replaces the GDAL href of the ``fused`` array (``ZARR:"...":/fused``, credentials removed);
    ``properties`` adds item properties.
    """
    import pystac
    from pystac.extensions.projection import ProjectionExtension
    from pystac.utils import str_to_datetime

    from ..errors import IncompleteRunError
    from ..stac_items import bbox_polygon
    from .layout import COMPLETE

    if store.status != COMPLETE:
        raise IncompleteRunError(f"{redact(store.url)}: the run is {store.status!r}; a STAC item describes a "
                                 "complete product only")
    proj_fields, bbox = _projection(store)
    item_href = item_href or store.item_url
    extra = dict(properties or {})
    when = str_to_datetime(str(extra.pop("datetime", None) or _item_datetime(store)))
    item = pystac.Item(id=item_id or _store_name(store.url), geometry=bbox_polygon(*bbox), bbox=bbox,
                       datetime=when, properties=extra)
    item.set_self_href(item_href)
    ProjectionExtension.add_to(item)
    ProjectionExtension.ext(item).apply(**proj_fields)
    eo_bands, raster_bands = _bands(store)
    gdal = href or gdal_path(store.url)
    for i, (name, eo_band, raster_band) in enumerate(zip(store.info["bands"], eo_bands, raster_bands)):
        asset = pystac.Asset(f"{gdal}:{i}", title=f"pansharpened band {name} (GDAL, single band)", roles=["data"])
        item.add_asset(name, asset)  # no media type: odc-stac then reads it through rasterio/GDAL
        _describe(asset, [eo_band], [raster_band], proj_fields)
    item.add_asset("zarr", pystac.Asset("./", title="the run store (xarray: trapan_cloud.open_result)",
                                        media_type=ZARR_MEDIA_TYPE, roles=["data"]))
    if cog:
        asset = pystac.Asset(_relative(cog, item_href), title="pansharpened scene, Cloud-Optimized GeoTIFF",
                             media_type=pystac.MediaType.COG, roles=["data"])
        item.add_asset("cog", asset)
        _describe(asset, eo_bands, raster_bands, proj_fields)
    return item


def _describe(asset: Any, eo_bands: list, raster_bands: list, proj_fields: dict) -> None:
    """Put the eo, raster and projection fields on a raster asset."""
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension

    EOExtension.ext(asset, add_if_missing=True).apply(bands=eo_bands)
    RasterExtension.ext(asset, add_if_missing=True).apply(bands=raster_bands)
    ProjectionExtension.ext(asset).apply(**proj_fields)


def _transform_of(store: RunStore) -> tuple[float, ...]:
    """The exact PAN transform from the ``spatial_ref`` GDAL ``GeoTransform`` (c, a, 0, f, 0, e)."""
    c, a, _, f, _, e = (float(v) for v in str(store.group["spatial_ref"].attrs["GeoTransform"]).split())
    return a, 0.0, c, 0.0, e, f


def _store_name(url: str) -> str:
    """The store's name without ``.zarr``: the item id."""
    name = str(url).rstrip("/").rsplit("/", 1)[-1]
    return name[:-5] if name.endswith(".zarr") else name


def _relative(path: str, item_href: str) -> str:
    """``path`` relative to the item's folder when both are local, else ``path`` with credentials removed."""
    if "://" in str(path) or "://" in str(item_href):
        return redact(str(path))
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(item_href)))


def write_item(store: RunStore | str, cog: str | None = None, storage_options: dict | None = None) -> str:
    """Write (or replace) the product's STAC item inside the store and return its location."""
    import fsspec

    if not isinstance(store, RunStore):
        store = open_store(store, storage_options)
    item = stac_item(store, cog=cog)
    with fsspec.open(store.item_url, "w", **store._storage_options) as f:
        json.dump(item.to_dict(include_self_link=False), f, indent=1)
    return store.item_url


def publish(url: str, cog_path: str | None = None, overwrite: bool = False,
            storage_options: dict | None = None) -> dict[str, str]:
    """Where a finished run's products are (``{"cog": ..., "item": ...}``, credentials removed), exporting the COG
    first when ``cog_path`` is given (`export_cog`, same ``overwrite`` rule) and adding it to the item; an item lost
    to a crash right after completion is written again."""
    from .export import export_cog
    from .layout import output_exists

    found = {}
    if cog_path:
        found["cog"] = export_cog(url, cog_path, storage_options=storage_options, overwrite=overwrite)
    store = open_store(url, storage_options)
    if cog_path or not output_exists(store.item_url, storage_options):
        write_item(store, cog=found.get("cog"))
    found["item"] = redact(store.item_url)
    return found


def stac_item_for_result(url: str, *, item_id: str, datetime: str, storage_options: dict | None = None,
                         href: str | None = None, properties: dict | None = None) -> dict:
    """A STAC 1.1 Item (plain dict) describing a finished run (`stac_item`), with the given id and datetime.

    ``href`` replaces the GDAL href of the ``fused`` array (credentials removed).
    """
    item = stac_item(open_store(url, storage_options), item_id=item_id, href=redact(href) if href else None,
                     properties={**(properties or {}), "datetime": datetime})
    return item.to_dict(include_self_link=False)


CATALOG_ID = "trapan-batch"
"""Id of the catalog a batch writes; an existing ``catalog.json`` with another id is someone else's and is kept."""


def write_catalog(out_prefix: str, stores: list[str], storage_options: dict | None = None) -> str | None:
    """Write ``{out_prefix}/catalog.json``, a STAC catalog linking the item inside each of ``stores`` (relative
    hrefs); returns its location, or None when there is nothing to link or a catalog.json this project did not write
    is in the way (it is left untouched)."""
    import fsspec
    import pystac

    if not stores:
        return None
    path = f"{str(out_prefix).rstrip('/')}/catalog.json"
    fs, fpath = fsspec.core.url_to_fs(path, **(storage_options or {}))
    catalog = pystac.Catalog(CATALOG_ID, "Pansharpened products of a trapan_cloud batch")
    for url in stores:
        href = open_store(url, storage_options).item_url
        rel = href[len(str(out_prefix).rstrip("/")) + 1:]
        catalog.add_link(pystac.Link(pystac.RelType.ITEM, f"./{rel}", media_type=pystac.MediaType.GEOJSON))
    text = json.dumps(catalog.to_dict(include_self_link=False), indent=1)
    if fs.exists(fpath):
        old = fs.cat_file(fpath).decode("utf-8", "replace")
        try:
            theirs = json.loads(old).get("id") != CATALOG_ID
        except (ValueError, AttributeError):
            theirs = True
        if theirs:
            log.warning("batch: %s is not a catalog trapan_cloud wrote; not replaced, no catalog written", redact(path))
            return None
        if old == text:  # a re-run that changed nothing touches nothing
            return redact(path)
    with fs.open(fpath, "w") as f:
        f.write(text)
    return redact(path)
