"""The one Cloud-Optimized GeoTIFF writer: bands written window by window into a tiled GeoTIFF, then rio-cogeo."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

import numpy as np

Block = tuple[tuple[int, int, int, int], np.ndarray]
"""A window ``(y0, y1, x0, x1)`` of the image and its ``(B, y1 - y0, x1 - x0)`` pixels."""


def write_cog_blocks(path: str, blocks: Iterable[Block], *, shape: tuple[int, int, int], dtype: Any, transform: Any,
                     crs: Any, nodata: float | None = None, band_names: Iterable[str] | None = None,
                     blocksize: int | None = None, profile: str = "deflate") -> str:
    """Write ``(B, H, W)`` pixels given as blocks (so the image is never held whole) as a COG at local ``path``.

    ``blocksize`` sets the COG's internal tile side (default: the rio-cogeo ``profile``'s); band names become band
    descriptions. Refuses to return a file that GDAL cannot read back.
    """
    import rasterio
    from rasterio.windows import Window
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    bands, height, width = shape
    cog = cog_profiles.get(profile)
    if blocksize:
        cog.update(blockxsize=blocksize, blockysize=blocksize)
    with tempfile.TemporaryDirectory(prefix="trapan_cog_") as tmp:
        src_path = os.path.join(tmp, "src.tif")
        with rasterio.open(src_path, "w", driver="GTiff", height=height, width=width, count=bands,
                           dtype=np.dtype(dtype).name, crs=crs, transform=transform, nodata=nodata, tiled=True,
                           blockxsize=256, blockysize=256) as dst:
            for (y0, y1, x0, x1), data in blocks:
                dst.write(data, window=Window(x0, y0, x1 - x0, y1 - y0))
            for i, name in enumerate(() if band_names is None else band_names, start=1):
                dst.set_band_description(i, str(name))
        cog_translate(src_path, str(path), cog, quiet=True, forward_band_tags=True)
    with rasterio.open(path):  # fail here, not later in a worker, if the file came out unreadable
        pass
    return str(path)


def write_cog(path: str, array: np.ndarray, transform: Any, crs: Any, nodata: float | None = 0,
              band_names: Iterable[str] | None = None, blocksize: int = 256) -> str:
    """Write a band-first (or 2-D) in-memory array as a COG (deflate, ``blocksize``-px internal tiles)."""
    data = array[None] if array.ndim == 2 else array
    return write_cog_blocks(path, [((0, data.shape[1], 0, data.shape[2]), data)], shape=data.shape, dtype=data.dtype,
                            transform=transform, crs=crs, nodata=nodata, band_names=band_names, blocksize=blocksize)
