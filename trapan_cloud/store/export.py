"""Publishing a finished run as a Cloud-Optimized GeoTIFF of ``fused`` (the STAC item is `store.product`)."""

from __future__ import annotations

from .io import open_store
from .result import open_result


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
