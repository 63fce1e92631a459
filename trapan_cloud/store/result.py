"""`open_result`: a finished run as a lazy, georeferenced ``xarray.Dataset`` (the product plus the per-tile QA)."""

from __future__ import annotations

from typing import Any

from ..errors import CorruptStoreError, IncompleteRunError
from ..redaction import redact
from .integrity import check_chunks
from .io import open_store
from .layout import COMPLETE, RUN_GROUP, item_is_ours


def open_result(url: str, storage_options: dict | None = None) -> Any:
    """Open a finished run as an ``xarray.Dataset``: ``fused`` (band, y, x) DN plus the per-tile QA layer and the
    ``done`` flags (uint8) from ``run/``.

    The dataset is lazy (dask) and georeferenced: ``ds.rio.crs`` and ``ds.rio.transform()`` give the PAN grid;
    ``ds.fused.rio.nodata`` the nodata value; ``ds["fused"].rio.to_raster(path)`` writes a GeoTIFF. A store whose
    status is not "complete" is refused, and so is one with a missing ``fused`` chunk (`CorruptStoreError` naming
    the tile; `trapan resume` repairs it), so a partial or damaged run never reads as nodata.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor the result is read with)
    import xarray as xr

    store = open_store(url, storage_options)
    if store.status != COMPLETE:
        done = store.done()
        raise IncompleteRunError(f"{redact(url)}: the run is {store.status!r} ({int(done.sum())} of {done.size} tiles done), "
                         "not 'complete'; resume it (trapan resume) to finish it")
    plan = store.plan
    fs, root = store._fs()
    missing = check_chunks(fs, root, store.group["fused"], plan.tiles, lambda t: (0, t.row, t.col), decode=False)
    if missing:
        first = min(missing)
        raise CorruptStoreError(f"{redact(url)}: {len(missing)} fused chunk(s) missing or cut, e.g. tile {first} (core "
                                f"{plan.tiles[first].core}, {missing[first]}); run `trapan resume` to repair it")
    options = storage_options or None
    with item_is_ours():
        ds = xr.open_zarr(url, consolidated=False, mask_and_scale=False, storage_options=options)
        state = xr.open_zarr(url, group=RUN_GROUP, consolidated=False, mask_and_scale=False,
                             drop_variables=["tiles", "prior"], storage_options=options)
    ds = ds.merge(state[["done", *store.qa_fields]])
    ds = ds.set_coords("spatial_ref") if "spatial_ref" in ds.data_vars else ds
    nodata = store.nodata
    ds["fused"].attrs.pop("_FillValue", None)
    if nodata is not None:
        ds["fused"].attrs["_FillValue"] = nodata
    return ds
