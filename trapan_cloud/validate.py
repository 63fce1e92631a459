"""Input checks shared by every room: band-first shapes, the PAN/MS ratio, DN values and the nodata rule.

They run before any expensive work and raise `InputError` naming the argument, what was expected and what was found.

`full_scale` is the scale of an input's values (255 for uint8, 1 for 0-1 reflectance, else the sensor's max DN).

The nodata rule: a pixel is invalid where PAN or any MS band equals the nodata value (`validity`). A scene read from
files (`open_scene`) also treats NaN and negative values as nodata (`scene_nodata`, `apply_nodata_rule`): they are
read as the scene's nodata value, which is the files' one when it is a number >= 0, else 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InputError

INPUT_DTYPES = ("uint8", "uint16", "int16", "float32", "float64")
"""Pixel types a scene may hold: unsigned DN, signed DN or scaled reflectance (int16), float reflectance or DN."""


def as_array(x: Any, name: str) -> np.ndarray:
    """numpy view of a numpy array or xarray DataArray, as float64, checked for NaN and negative DN."""
    values = getattr(x, "values", x)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected a numeric array of digital numbers, got {type(x).__name__}") from exc
    if arr.size == 0:
        raise InputError(f"{name}: the array is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(f"{name}: {bad} NaN/inf values where digital numbers are expected; "
                         "mark missing pixels with a nodata value (e.g. 0) instead")
    if arr.min() < 0:
        raise InputError(f"{name}: negative values (min {arr.min():g}) where digital numbers (>= 0) are expected")
    return arr


def as_pan(pan: Any, name: str = "pan") -> np.ndarray:
    """PAN as (H, W) float64; a leading band axis of length 1 is accepted."""
    arr = as_array(pan, name)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a single band of shape (H, W) or (1, H, W), found shape {arr.shape}")
    return arr


def as_ms(ms: Any, name: str = "ms") -> np.ndarray:
    """MS as band-first (B, h, w) float64."""
    arr = as_array(ms, name)
    if arr.ndim != 3:
        raise InputError(f"{name}: expected band-first (bands, y, x), found shape {arr.shape}")
    return arr


def check_ratio(pan_shape: tuple[int, int], ms_shape: tuple[int, int], ratio: int | None,
                names: tuple[str, str] = ("pan", "ms")) -> int:
    """The PAN/MS ratio implied by the shapes, checked against ``ratio`` when one is given.

    >>> check_ratio((512, 512), (128, 128), None)
    4
    """
    (H, W), (h, w) = pan_shape, ms_shape
    if h == 0 or w == 0 or H % h or W % w or H // h != W // w:
        raise InputError(f"{names[0]}/{names[1]}: PAN shape {pan_shape} is not an integer multiple, equal on both axes, "
                         f"of the MS shape {ms_shape}")
    shape_ratio = H // h
    if ratio is not None and int(ratio) != shape_ratio:
        raise InputError(f"ratio: {ratio} was given but the shapes imply {shape_ratio} "
                         f"({names[0]} {pan_shape}, {names[1]} {ms_shape})")
    if shape_ratio < 2:
        raise InputError(f"ratio: PAN must be finer than MS (ratio >= 2), the shapes imply {shape_ratio}")
    return shape_ratio


def check_pair(pan: Any, ms: Any, ratio: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated (pan (H, W), ms (B, h, w), ratio) for a PAN/MS pair."""
    p, m = as_pan(pan), as_ms(ms)
    r = check_ratio(p.shape, m.shape[1:], ratio)
    return p, m, r


def ms_valid(ms: Any, nodata: float) -> Any:
    """MS-only validity (h, w): no band equals nodata. Works on numpy and dask arrays alike.

    >>> ms_valid(np.array([[[0, 3]], [[5, 6]]]), 0).tolist()
    [[False, True]]
    """
    return (ms != nodata).all(axis=0)


def validity(pan: np.ndarray, ms: np.ndarray, ratio: int, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Validity at PAN scale (H, W) and MS scale (h, w): a pixel is invalid where PAN == nodata or any MS band ==
    nodata (MS validity expanded to PAN scale; an MS pixel is valid only if its whole PAN footprint is)."""
    if nodata is None:
        return np.ones(pan.shape, bool), np.ones(ms.shape[1:], bool)
    ms_ok = ms_valid(ms, nodata)
    pan_ok = (pan != nodata) & np.kron(ms_ok, np.ones((ratio, ratio), bool))
    h, w = ms_ok.shape
    ms_ok = pan_ok.reshape(h, ratio, w, ratio).all(axis=(1, 3))
    return pan_ok, ms_ok


def scene_nodata(dtype: Any, nodata: float | None) -> float | None:
    """The nodata value of a scene of ``dtype`` whose files declare ``nodata`` (the nodata rule, module docstring).

    Unsigned data keep theirs (None: every pixel valid). Signed and floating data can hold NaN or negative values,
    which are nodata: they take the declared value when it is a number >= 0, else 0.

    >>> scene_nodata("uint16", None), scene_nodata("int16", -999), scene_nodata("float32", float("nan"))
    (None, 0, 0)
    >>> scene_nodata("float32", 5.0), scene_nodata("uint8", 0)
    (5.0, 0)
    """
    valid = nodata is not None and bool(np.isfinite(nodata)) and nodata >= 0
    if np.dtype(dtype).kind == "u":
        return nodata if valid else None
    return nodata if valid else 0


def apply_nodata_rule(arr: Any, nodata: float | None) -> Any:
    """``arr`` (numpy or dask) with NaN and negative values replaced by ``nodata``, in its own dtype; unsigned arrays
    (and a None ``nodata``) are returned as they are.

    >>> apply_nodata_rule(np.array([np.nan, -2.0, 0.5], np.float32), 0).tolist()
    [0.0, 0.0, 0.5]
    """
    if nodata is None or np.dtype(arr.dtype).kind == "u":
        return arr
    bad = arr < 0
    if np.dtype(arr.dtype).kind == "f":
        bad = bad | (arr != arr)
    fill = np.asarray(nodata, dtype=arr.dtype)
    if isinstance(arr, np.ndarray):
        return np.where(bad, fill, arr)
    import dask.array as da

    return da.where(bad, fill, arr)


FLOAT_SCALES = (1.0, 255.0)
"""Full scales a floating-point input may be on besides the sensor's DN range: reflectance (0-1) and 8-bit values."""


def full_scale(pairs: Sequence[tuple[Any, Any]], max_dn: float, nodata: float | None) -> float:
    """The full scale of a scene's values (what TRA-PAN normalises to 1), from sample (pan, ms) pairs.

    Integer inputs: the sensor's ``max_dn``, bounded by the dtype (a uint8 product of an 11-bit sensor was rescaled to
    8 bits, so 255 is its full scale). Floating-point inputs: the smallest of reflectance (1), 8-bit (255) and
    ``max_dn`` that holds the largest valid value. Normalising a uint8 or 0-1 input by the sensor's max DN instead
    squeezes it into a few percent of the range the networks and step sizes are tuned for (issue 15.2).

    >>> full_scale([(np.zeros((4, 4), np.uint16), None)], 2047, 0)
    2047.0
    >>> full_scale([(np.zeros((4, 4), np.uint8), None)], 2047, 0)
    255.0
    >>> full_scale([(np.full((4, 4), 0.4), np.full((1, 1, 1), 0.9))], 2047, 0)
    1.0
    """
    dtypes = {np.asarray(a).dtype for pair in pairs for a in pair if a is not None}
    top = float(max_dn)
    if dtypes and all(d.kind in "ui" for d in dtypes):
        return min(top, float(max(np.iinfo(d).max for d in dtypes)))
    peak = 0.0
    for pair in pairs:
        for a in pair:
            if a is None:
                continue
            v = np.asarray(a, dtype=np.float64)
            v = v[np.isfinite(v) & ((v != nodata) if nodata is not None else True)]
            peak = max(peak, float(v.max()) if v.size else 0.0)
    return next((s for s in (*FLOAT_SCALES, top) if peak <= s), top)


def on_sensor_scale(arrays: Sequence[np.ndarray], scale: float, max_dn: float) -> list[np.ndarray]:
    """``arrays`` on the full scale ``scale`` mapped onto the sensor's DN range (0..``max_dn``), as the toolbox's
    Q2n, which casts to uint16, needs: a 0-1 reflectance scored as is would round to 0 and 1.

    >>> [a.tolist() for a in on_sensor_scale([np.array([0.5, 1.0])], 1.0, 2047)]
    [[1023.5, 2047.0]]
    """
    if scale == max_dn:
        return list(arrays)
    k = float(max_dn) / float(scale)
    return [a * k for a in arrays]
