"""Publishing a finished run: a Cloud-Optimized GeoTIFF of ``fused`` and a STAC item describing the store."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ..redaction import redact
from .io import open_result, open_store


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
    nodata = store.nodata
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
