"""The one Cloud-Optimized GeoTIFF writer: bands written window by window into a tiled GeoTIFF, then rio-cogeo.

Every COG written here carries the GDAL dataset metadata item ``TRAPAN_CLOUD_PRODUCT`` (`PRODUCT_TAG`, its value
the writing version). That tag is how `check_cog_target` recognises a file this project wrote: ``--overwrite``
(``overwrite=True``) replaces such a file only; any other existing file, or a folder, is refused and left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import __version__

PRODUCT_TAG = "TRAPAN_CLOUD_PRODUCT"
"""GDAL metadata item (default domain) that marks a GeoTIFF written by trapan_cloud; its value is the version."""

Block = tuple[tuple[int, int, int, int], np.ndarray]
"""A window ``(y0, y1, x0, x1)`` of the image and its ``(B, y1 - y0, x1 - x0)`` pixels."""


def is_own_cog(path: str) -> bool:
    """Whether ``path`` is a GeoTIFF this project wrote (it carries the `PRODUCT_TAG` metadata item)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return PRODUCT_TAG in src.tags()
    except Exception:  # noqa: BLE001 - rasterio raises several types for files that are not rasters
        return False


def check_cog_target(path: str, overwrite: bool = False, what: str = "cog") -> None:
    """Refuse, before any work, a COG destination that cannot be written or must not be replaced.

    An existing path is refused without ``overwrite``; with it, only a GeoTIFF this project wrote may be replaced
    (recognised by `PRODUCT_TAG`). A missing or read-only parent folder is refused too. Errors are one line naming
    ``path`` and why (`StoreExistsError` for an existing output, `InputError` otherwise).
    """
    from .errors import InputError, StoreExistsError
    from .redaction import redact

    shown = redact(str(path))
    if "://" in str(path):
        raise InputError(f"{what}: {shown} is a URL; the GeoTIFF is written to a local file path (copy it to object "
                         "storage afterwards)")
    if os.path.isdir(path):
        raise StoreExistsError(f"{what}: {shown} is a folder; give a file name for the GeoTIFF")
    if os.path.lexists(path):
        if not overwrite:
            raise StoreExistsError(f"{what}: {shown} already exists; pass --overwrite (overwrite=True) to replace it")
        if not is_own_cog(path):
            raise StoreExistsError(f"{what}: refusing to overwrite {shown}: it is not a GeoTIFF written by "
                                   f"trapan_cloud (no {PRODUCT_TAG} metadata tag); choose another path or remove it "
                                   "yourself")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"{what}: the folder of {shown} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{what}: the folder of {shown} is not writable; choose another path")


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
        tmp_cog = os.path.join(tmp, "cog.tif")
        cog_translate(src_path, tmp_cog, cog, quiet=True, forward_band_tags=True,
                      additional_cog_metadata={PRODUCT_TAG: __version__})
        with rasterio.open(tmp_cog):  # fail here, before the destination is touched, if the file came out unreadable
            pass
        shutil.move(tmp_cog, str(path))  # an existing file is replaced only by a complete one
    return str(path)


def write_cog(path: str, array: np.ndarray, transform: Any, crs: Any, nodata: float | None = 0,
              band_names: Iterable[str] | None = None, blocksize: int = 256) -> str:
    """Write a band-first (or 2-D) in-memory array as a COG (deflate, ``blocksize``-px internal tiles)."""
    data = array[None] if array.ndim == 2 else array
    return write_cog_blocks(path, [((0, data.shape[1], 0, data.shape[2]), data)], shape=data.shape, dtype=data.dtype,
                            transform=transform, crs=crs, nodata=nodata, band_names=band_names, blocksize=blocksize)
