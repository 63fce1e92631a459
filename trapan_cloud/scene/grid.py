"""Grid arithmetic for a PAN/MS pair: checks on the geotransforms, the integer ratio and the toolbox phase.

Pure metadata: nothing here reads pixels, so every check runs before the first byte of imagery is fetched.

The phase convention is the toolbox's (``interp23tap``): the centre of MS pixel ``u`` should fall on PAN pixel index
``ratio*u + ratio//2``. With pixel-corner geotransforms, MS centre ``u`` sits at PAN index

    p(u) = ratio*u + c,   c = (ms_origin - pan_origin) / pan_step + ratio/2 - 1/2

(per axis, steps signed). Cropping ``k`` leading PAN pixels and dropping ``m`` leading MS pixels turns ``c`` into
``c + ratio*m - k``; `align_grids` picks the smallest ``m >= 0`` and ``k = floor(d + 1/2)`` with
``d = c + ratio*m - ratio//2``, which leaves a shift ``d - k`` in [-0.5, 0.5) PAN pixels. A corner-aligned pair
(Maxar, SpaceNet) thus keeps every pixel and reports -0.5 (the centre is at ``4u + 1.5``); a USGS/DEA pair, whose PAN
grid is inset by half an MS pixel, loses one MS row/column and one PAN row/column and reports 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

from ..errors import InputError

RATIO_RTOL = 1e-3
"""Relative tolerance on the PAN/MS pixel-size ratio (real WV2 products: 2.00009663 / 0.49999345 = 4.0003)."""


@dataclass(frozen=True)
class Grid:
    """A raster's pixel grid: CRS, pixel-corner geotransform and (rows, cols)."""

    crs: object
    """A `rasterio.crs.CRS` (compared with ``==``)."""
    transform: Affine
    """Pixel-corner geotransform (GDAL/affine order a, b, c, d, e, f)."""
    shape: tuple[int, int]
    """(rows, cols)."""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in CRS units."""
        t, (h, w) = self.transform, self.shape
        xs = (t.c, t.c + t.a * w)
        ys = (t.f, t.f + t.e * h)
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Alignment:
    """How to crop a PAN/MS pair onto a common, toolbox-phased footprint (all counts in whole pixels)."""

    ratio: int
    """PAN/MS pixel-size ratio."""
    pan_offset: tuple[int, int]
    """Leading PAN (rows, cols) dropped."""
    ms_offset: tuple[int, int]
    """Leading MS (rows, cols) dropped."""
    ms_shape: tuple[int, int]
    """MS (rows, cols) kept; PAN keeps ``ratio`` times as many."""
    shift_px: tuple[float, float]
    """Remaining (dy, dx) offset of the MS centres from PAN ``ratio*u + ratio//2``, in PAN pixels, in [-0.5, 0.5)."""
    pan_transform: Affine
    """Geotransform of the cropped PAN grid."""
    ms_transform: Affine
    """Geotransform of the cropped MS grid."""

    @property
    def pan_shape(self) -> tuple[int, int]:
        """PAN (rows, cols) kept."""
        return self.ratio * self.ms_shape[0], self.ratio * self.ms_shape[1]


def check_axis_aligned(transform: Affine, name: str) -> None:
    """Raise `InputError` for a rotated or sheared geotransform (the pipeline works on north-up pixel grids)."""
    if transform.b != 0 or transform.d != 0:
        raise InputError(f"{name}: the geotransform {tuple(transform)[:6]} is rotated or sheared; "
                         "expected a north-up grid (b = d = 0); warp it first, e.g. gdalwarp -t_srs <same CRS>")
    if transform.a == 0 or transform.e == 0:
        raise InputError(f"{name}: the geotransform {tuple(transform)[:6]} has a zero pixel size")


def integer_ratio(pan_step: float, ms_step: float, names: tuple[str, str]) -> int:
    """The PAN/MS ratio ``ms_step / pan_step`` as an integer >= 2, within `RATIO_RTOL`.

    >>> integer_ratio(0.49999345, 2.00009663, ("pan", "ms"))
    4
    """
    q = ms_step / pan_step
    r = round(q)
    if q <= 0:
        raise InputError(f"{names[0]}/{names[1]}: PAN and MS pixel steps have opposite signs ({pan_step}, {ms_step}); "
                         "flip one raster so that both grids run the same way")
    if r < 2 or abs(q - r) > RATIO_RTOL * r:
        raise InputError(f"{names[0]}/{names[1]}: the MS/PAN pixel-size ratio is {q:.6g} "
                         f"({abs(ms_step):g} / {abs(pan_step):g}); expected an integer >= 2 "
                         f"(relative tolerance {RATIO_RTOL:g}); resample one of them to an integer ratio")
    return int(r)


def _axis(c: float, ratio: int, pan_len: int, ms_len: int) -> tuple[int, int, int, float]:
    """(PAN pixels dropped, MS pixels dropped, MS pixels kept, shift) along one axis; see the module docstring.

    >>> _axis(1.5, 4, 600, 150)      # corner-aligned: keep all, centre at 4u + 1.5
    (0, 0, 150, -0.5)
    >>> _axis(0.0, 2, 63, 32)        # PAN inset by half an MS pixel, 2n - 1 PAN pixels
    (1, 1, 31, 0.0)
    """
    m = max(0, math.ceil((ratio // 2 - 0.5 - c) / ratio))
    k = math.floor(c + ratio * m - ratio // 2 + 0.5)
    shift = c + ratio * m - ratio // 2 - k
    n = min(ms_len - m, (pan_len - k) // ratio)
    return k, m, n, shift


def align_grids(pan: Grid, ms: Grid, names: tuple[str, str] = ("pan", "ms")) -> Alignment:
    """Check a PAN/MS pair (same CRS, north-up, integer ratio, overlapping) and crop both onto the toolbox phase.

    Parameters
    ----------
    pan, ms
        Native grids of the PAN and the MS rasters.
    names
        What to call them in error messages (file names, asset keys).

    Returns
    -------
    Alignment
        Pixels to drop at the start of each axis, the common size in MS pixels, the leftover sub-pixel shift and
        the transforms of the cropped grids.
    """
    if pan.crs != ms.crs:
        raise InputError(f"{names[0]}/{names[1]}: PAN and MS are in different CRSs ({crs_string(pan.crs)} vs "
                         f"{crs_string(ms.crs)}); reproject one onto the other's CRS first")
    check_axis_aligned(pan.transform, names[0])
    check_axis_aligned(ms.transform, names[1])
    tp, tm = pan.transform, ms.transform
    rx = integer_ratio(tp.a, tm.a, names)
    ry = integer_ratio(tp.e, tm.e, names)
    if rx != ry:
        raise InputError(f"{names[0]}/{names[1]}: the ratio differs between x ({rx}) and y ({ry}); "
                         "expected square pixels in both rasters")
    pb, mb = pan.bounds, ms.bounds
    if pb[0] >= mb[2] or mb[0] >= pb[2] or pb[1] >= mb[3] or mb[1] >= pb[3]:
        raise InputError(f"{names[0]}/{names[1]}: PAN extent {pb} and MS extent {mb} do not overlap; "
                         "pass the PAN and MS of the same scene")
    r = rx
    # rounded so that float noise on exactly half-pixel phases cannot flip the choice of k
    cy = round((tm.f - tp.f) / tp.e + r / 2 - 0.5, 9)
    cx = round((tm.c - tp.c) / tp.a + r / 2 - 0.5, 9)
    ky, my, ny, sy = _axis(cy, r, pan.shape[0], ms.shape[0])
    kx, mx, nx, sx = _axis(cx, r, pan.shape[1], ms.shape[1])
    if ny < 1 or nx < 1:
        raise InputError(f"{names[0]}/{names[1]}: PAN extent {pb} and MS extent {mb} share less than one MS pixel; "
                         "pass the PAN and MS of the same scene")
    return Alignment(
        ratio=r,
        pan_offset=(ky, kx),
        ms_offset=(my, mx),
        ms_shape=(ny, nx),
        shift_px=(float(sy), float(sx)),
        pan_transform=tp * Affine.translation(kx, ky),
        ms_transform=tm * Affine.translation(mx, my),
    )


def crs_string(crs: object) -> str:
    """``"EPSG:<code>"`` when the CRS has an authority code, else its WKT."""
    to_string = getattr(crs, "to_string", None)
    return to_string() if to_string else str(crs)


def pixel_centres(transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pixel-centre coordinates of a north-up grid, in CRS units.

    >>> [c.tolist() for c in pixel_centres(Affine(2, 0, 100, 0, -2, 50), (2, 3))]
    [[49.0, 47.0], [101.0, 103.0, 105.0]]
    """
    h, w = shape
    ys = transform.f + transform.e * (np.arange(h) + 0.5)
    xs = transform.c + transform.a * (np.arange(w) + 0.5)
    return ys, xs
