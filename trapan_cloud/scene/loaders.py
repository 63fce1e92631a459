"""Input backends: each reads an `ItemPlan`'s assets as lazy PAN (y, x) and MS (band, y, x) dask arrays on the
aligned grids. `LOADERS` names them; `open_scene(backend=...)` picks one. Adding a backend is one function here and
one `LOADERS` entry."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from affine import Affine

from ..errors import InputError
from .grid import Alignment, Grid
from ..stac_items import PROJ_V1, RASTER_V1, feature
from .stac import ItemPlan


def _datetime(d: dict[str, Any]) -> str:
    """The item's datetime in strict RFC 3339 (Maxar writes a space instead of 'T'); epoch when it has none."""
    props = d.get("properties") or {}
    for field in ("datetime", "start_datetime"):
        value = props.get(field)
        if value:
            try:
                return datetime.fromisoformat(str(value)).isoformat()
            except ValueError:
                continue
    return "1970-01-01T00:00:00+00:00"


def minimal_item(plan: ItemPlan) -> dict[str, Any]:
    """A STAC item with only the assets to read, absolute hrefs and explicit grids, bands, dtypes and nodata."""
    assets = {}
    for key, info in zip((plan.pan_key, *plan.ms_keys), (plan.pan, *plan.ms)):
        epsg = info.grid.crs.to_epsg()
        crs_field = {"proj:epsg": epsg} if epsg else {"proj:wkt2": info.grid.crs.to_wkt()}
        band = {"data_type": info.dtype} | ({} if info.nodata is None else {"nodata": info.nodata})
        assets[key] = {
            "href": info.href,
            "type": "image/tiff; application=geotiff",
            "roles": ["data"],
            **crs_field,
            "proj:shape": list(info.grid.shape),
            "proj:transform": list(info.grid.transform)[:6],
            "raster:bands": [band] * info.count,
        }
    d = plan.item
    return feature(str(d.get("id", "item")), datetime=_datetime(d), assets=assets, bbox=d.get("bbox"),
                   geometry=d.get("geometry"), extensions=(PROJ_V1, RASTER_V1))


def _band_names(plan: ItemPlan) -> list[str]:
    """odc-stac variable names of the MS bands: the asset keys, or ``key.1 … key.B`` for one multi-band asset."""
    if len(plan.ms_keys) == 1 and plan.ms[0].count > 1:
        return [f"{plan.ms_keys[0]}.{i + 1}" for i in range(plan.ms[0].count)]
    return list(plan.ms_keys)


def load_odc(plan: ItemPlan, align: Alignment, chunks_px: int) -> tuple[Any, Any]:
    """Lazy PAN (y, x) and MS (band, y, x) dask arrays, read by odc-stac on explicit GeoBoxes of the cropped grids."""
    import dask.array as da
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    item = pystac.Item.from_dict(minimal_item(plan))
    crs = plan.pan.grid.crs.to_wkt()
    r = align.ratio
    pan_box = GeoBox(align.pan_shape, align.pan_transform, crs)
    ms_box = GeoBox(align.ms_shape, align.ms_transform, crs)
    pan = odc.stac.load([item], bands=[plan.pan_key], geobox=pan_box, chunks={"y": chunks_px, "x": chunks_px},
                        resampling="nearest")[plan.pan_key]
    names = _band_names(plan)
    ms_ds = odc.stac.load([item], bands=names, geobox=ms_box, resampling="nearest",
                          chunks={"y": chunks_px // r, "x": chunks_px // r})
    ms = da.stack([ms_ds[n].data[0] for n in names])
    return pan.data[0], ms


def load_stackstac(plan: ItemPlan, align: Alignment, chunks_px: int) -> tuple[Any, Any]:
    """Lazy PAN and MS dask arrays read by stackstac on the exact native grids (``snap_bounds=False``).

    stackstac reads single-band assets only and needs an EPSG code; anything else is refused up front.
    """
    if len(plan.ms_keys) == 1 and plan.ms[0].count > 1:
        raise InputError(f"backend: stackstac cannot read the multi-band MS asset {plan.ms_keys[0]!r} "
                         f"({plan.ms[0].count} bands in one file); use backend=\"odc\"")
    epsg = plan.pan.grid.crs.to_epsg()
    if epsg is None:
        raise InputError(f"backend: stackstac needs an EPSG code and the CRS of {plan.pan_key!r} has none; "
                         "use backend=\"odc\"")
    import numpy as np
    import stackstac

    item = minimal_item(plan)
    r = align.ratio

    def stack(keys: list[str], transform: Affine, shape: tuple[int, int], dtype: str, nodata: float | None,
              chunk: int) -> Any:
        bounds = Grid(plan.pan.grid.crs, transform, shape).bounds
        arr = stackstac.stack([item], assets=keys, epsg=epsg, resolution=(abs(transform.a), abs(transform.e)),
                              bounds=bounds, snap_bounds=False, dtype=np.dtype(dtype),
                              fill_value=np.dtype(dtype).type(0 if nodata is None else nodata), rescale=False,
                              chunksize=chunk, xy_coords="center", properties=False, band_coords=False)
        return arr.data[0]

    pan = stack([plan.pan_key], align.pan_transform, align.pan_shape, plan.pan.dtype, plan.pan.nodata, chunks_px)
    ms = stack(list(plan.ms_keys), align.ms_transform, align.ms_shape, plan.ms[0].dtype, plan.ms[0].nodata,
               chunks_px // r)
    return pan[0], ms


LOADERS: dict[str, Callable[[ItemPlan, Alignment, int], tuple[Any, Any]]] = {
    "odc": load_odc,
    "stackstac": load_stackstac,
}
"""Backend name → loader ``f(plan, alignment, pan_chunk_px) -> (pan, ms)``."""
