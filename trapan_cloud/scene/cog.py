"""COG/GeoTIFF access: header metadata with rasterio, lazy dask-backed pixels with rioxarray.

Paths may be local files or any URL GDAL reads (``https://``, ``s3://``, ``gs://``, ``/vsi...``); credentials come from
the environment (GDAL/AWS variables), never from the path, and `redaction.redact` strips them before anything is
recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..redaction import redact
from ..validate import INPUT_DTYPES
from .grid import Grid


@dataclass(frozen=True)
class RasterInfo:
    """What a raster's header says: enough to validate and plan a read without touching pixels."""

    href: str
    """Where the raster is (path or URL, as given)."""
    grid: Grid
    """Native pixel grid."""
    count: int
    """Number of bands."""
    dtype: str
    """Numpy dtype name of the first band."""
    nodata: float | None
    """Nodata value of the first band, or None."""


def _reason(exc: Exception, href: str) -> str:
    """The library's error text with ``href`` (GDAL often echoes it, keys included) replaced by its public form."""
    return redact(str(exc).replace(str(href), redact(href)))


def read_info(href: str, name: str) -> RasterInfo:
    """Open ``href``'s header and return its grid, band count, dtype and nodata.

    Raises `InputError` naming ``name`` and the href when the file cannot be opened, is not georeferenced (an L1A
    product with RPCs only, or a plain image), holds a pixel type other than `INPUT_DTYPES` or bands of several
    types, or is truncated: the last block of the last band is read (one small request), and the last bytes of a COG
    are that block.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    try:
        with rasterio.open(href) as src:
            crs, transform, shape = src.crs, src.transform, (src.height, src.width)
            count, dtype, nodata = src.count, src.dtypes[0], src.nodata
            has_rpcs = bool(src.rpcs) or bool(src.gcps[0])
            dtypes = sorted(set(src.dtypes))
            if len(dtypes) == 1 and dtype in INPUT_DTYPES:
                (bh, bw) = src.block_shapes[-1]
                src.read(count, window=Window((src.width - 1) // bw * bw, (src.height - 1) // bh * bh,
                                              min(bw, src.width - (src.width - 1) // bw * bw),
                                              min(bh, src.height - (src.height - 1) // bh * bh)))
    except (RasterioError, OSError) as exc:
        raise InputError(f"{name}: cannot open {redact(href)!r} as a raster ({_reason(exc, href)}); check the "
                         "path/URL, that the file is complete (not truncated), and, for remote files, the GDAL/AWS "
                         "credentials in the environment") from None
    if len(dtypes) > 1 or dtype not in INPUT_DTYPES:
        raise InputError(f"{name}: {redact(href)!r} holds {'/'.join(dtypes)} pixels; expected one of "
                         f"{', '.join(INPUT_DTYPES)} in every band; convert it, e.g. gdal_translate -ot UInt16")
    if crs is None or transform.is_identity:
        if has_rpcs:
            raise InputError(f"{name}: {redact(href)!r} is not orthorectified (RPCs/GCPs only, no map grid); "
                             "orthorectify it first, e.g. gdalwarp -rpc -t_srs EPSG:<utm zone> in.tif out.tif")
        raise InputError(f"{name}: {redact(href)!r} has no CRS or geotransform; "
                         "pass a georeferenced GeoTIFF/COG")
    return RasterInfo(href, Grid(crs, transform, shape), count, dtype, nodata)


def open_raster(href: str, chunks: tuple[int, int], name: str) -> Any:
    """Lazy ``(band, y, x)`` DataArray of ``href``: dask-chunked, ``lock=False`` so reads run in parallel.

    ``chunks`` is (rows, cols) per dask block; each block is one windowed read, so blocks that are multiples of the
    COG's internal tile (512 for rio-cogeo) turn into whole-tile range requests.
    """
    import rioxarray
    from rasterio.errors import RasterioError

    try:
        return rioxarray.open_rasterio(href, chunks={"band": 1, "y": chunks[0], "x": chunks[1]}, lock=False,
                                       masked=False, mask_and_scale=False, cache=False)
    except (RasterioError, OSError) as exc:
        raise InputError(f"{name}: cannot open {redact(href)!r} ({_reason(exc, href)})") from None
