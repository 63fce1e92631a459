"""Publishing a finished run: a Cloud-Optimized GeoTIFF of ``fused`` and a STAC item describing the store."""

from __future__ import annotations

from ..redaction import redact
from ..stac_items import PROJ_V2, feature
from .io import open_result, open_store


def export_cog(url: str, path: str, storage_options: dict | None = None, profile: str = "deflate",
               overwrite: bool = False) -> str:
    """Write a finished run's ``fused`` as a Cloud-Optimized GeoTIFF at local ``path``, one tile core at a time (the
    scene is never held in memory); returns ``path``.

    An existing ``path`` is refused unless ``overwrite``, and even then replaced only if this project wrote it
    (`geotiff.check_cog_target`)."""
    from ..geotiff import check_cog_target, write_cog_blocks

    check_cog_target(path, overwrite)

    ds = open_result(url, storage_options)
    store = open_store(url, storage_options)
    fused = ds["fused"]
    blocks = ((t.core, fused[:, ys, xs].values) for t in store.plan.tiles for ys, xs in [t.core_slices])
    return write_cog_blocks(path, blocks, shape=fused.shape, dtype=fused.dtype, transform=ds.rio.transform(),
                            crs=ds.rio.crs, nodata=store.nodata, band_names=ds["band"].values, profile=profile)


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
    asset = {"href": redact(href or url), "type": "application/vnd.zarr", "roles": ["data"],
             "title": "pansharpened scene (band, y, x)", "bands": [{"name": str(b)} for b in ds["band"].values]}
    return feature(item_id, datetime=datetime, assets={"fused": asset}, bbox=[west, south, east, north],
                   properties={**projection, "proj:shape": list(ds["fused"].shape[1:]),
                               "proj:transform": list(ds.rio.transform())[:6], **(properties or {})},
                   extensions=(PROJ_V2,), stac_version="1.1.0")
