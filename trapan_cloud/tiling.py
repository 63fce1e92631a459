"""Tile windows, blending weights and the lazy overlap-add: integer arithmetic on the PAN grid, no I/O.

A scene of PAN shape ``(H, W)`` is cut into *cores* whose origins are multiples of ``tile_px`` from ``(0, 0)`` (the
last row/column of cores is smaller where the scene is not a multiple of the tile). Each core grows by ``halo_px`` on
every side, clipped to the scene: that *ext* window is what a tile is refined on. ``tile_px`` and ``halo_px`` are
multiples of the ratio, so every window edge falls on the MS grid and a tiled run sees the same pixels, with the same
decimation phase, as a whole-scene run (``reference/METRICS.md``, "Tiling guidance").

Blending (``reference/STACK.md`` §4.3). Along one axis the cores meet at boundaries ``b_1 < … < b_{n-1}``. A sin²
step ``s_k`` rises from 0 to 1 across the central half ``[b_k - halo/2, b_k + halo/2)`` of the overlap of the two ext
windows that meet there; the outer half of every halo is context only (weight 0), so a local operator whose reach is
at most ``halo/2`` gives a tiled result equal to the whole-scene one. Tile ``i`` gets ``w_i = s_i - s_{i+1}`` with
``s_0 = 1`` and ``s_n = 0``: the sum telescopes to 1 in every pixel, ``w_i`` is zero outside the ext window and the
neighbour's weight is the exact cos² complement. The 2-D weight (outer product) is a partition of unity too, so the
overlap-add needs no normalisation pass.

Stage A keeps every tile's ``weight × prediction`` in a *tile-major* array of shape
``(B, n_rows * slot_px, n_cols * slot_px)``, ``slot_px = tile_px + 2 * halo_px``, one chunk (a *slot*) per tile, with
the core at offset ``(halo_px, halo_px)`` inside its slot (the parts of a clipped ext window that fall outside the
scene stay empty). `blend` adds each slot's core to its neighbours' halos lazily, one output chunk per core.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

Window = tuple[int, int, int, int]
"""A pixel window ``(y0, y1, x0, x1)``, half-open, in PAN pixels unless a name says ``ms``."""

MIN_HALO_PX = 48
"""Smallest default halo: MTF support ±20 PAN px and circular 23-tap interpolation ±33 PAN px at ratio 4."""


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``.

    >>> round_up(48, 16), round_up(49, 16), round_up(0, 4)
    (48, 64, 0)
    """
    return -(-value // multiple) * multiple


def default_halo_px(ratio: int) -> int:
    """Default halo: at least 48 px and 12 px per ratio step (the interpolator's reach), a multiple of ratio and 16.

    >>> default_halo_px(4), default_halo_px(2), default_halo_px(3), default_halo_px(8)
    (48, 48, 48, 96)
    """
    return round_up(max(MIN_HALO_PX, 12 * ratio), math.lcm(ratio, 16))


def axis_cores(length: int, tile_px: int) -> list[tuple[int, int]]:
    """Core intervals along one axis: origins at multiples of ``tile_px``, the last one shorter when needed.

    >>> axis_cores(100, 32)
    [(0, 32), (32, 64), (64, 96), (96, 100)]
    >>> axis_cores(64, 32)
    [(0, 32), (32, 64)]
    """
    return [(start, min(start + tile_px, length)) for start in range(0, length, tile_px)]


def sin2_step(n: int) -> np.ndarray:
    """The rising half of the window: ``sin²(π/2 · (k + ½) / n)`` for ``k < n``; its mirror is the cos² complement.

    >>> np.allclose(sin2_step(4) + sin2_step(4)[::-1], 1.0)
    True
    """
    return np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2


def blend_half_width(halo_px: int) -> int:
    """Half-width of the blending ramp around a core boundary: half the halo (the outer half is context only).

    >>> blend_half_width(48), blend_half_width(0)
    (24, 0)
    """
    return halo_px // 2


def axis_weight(start: int, stop: int, core_start: int, core_stop: int, length: int, halo_px: int) -> np.ndarray:
    """1-D weight of one tile over its ext window ``[start, stop)``: ``s_i - s_{i+1}`` (module docstring).

    ``s_i`` is the step at the core's first boundary (absent, i.e. 1, at the scene start) and ``s_{i+1}`` the one at
    its last boundary (absent, i.e. 0, at the scene end).

    >>> axis_weight(0, 12, 0, 8, 16, 4).round(3).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.962, 0.691, 0.309, 0.038, 0.0, 0.0]
    """
    pos = np.arange(start, stop)
    half = blend_half_width(halo_px)
    ramp = sin2_step(2 * half)

    def step(boundary: int) -> np.ndarray:
        if not half:
            return (pos >= boundary).astype(np.float64)
        k = pos - (boundary - half)
        return np.where(k < 0, 0.0, np.where(k >= 2 * half, 1.0, ramp[np.clip(k, 0, 2 * half - 1)]))

    rise = step(core_start) if core_start > 0 else np.ones(len(pos))
    fall = step(core_stop) if core_stop < length else np.zeros(len(pos))
    return rise - fall


@dataclass(frozen=True)
class Tile:
    """One tile of a `TilePlan`: its place in the grid and its core and ext windows in PAN pixels."""

    index: int
    """Row-major position in the plan (``row * n_cols + col``); also the tile's seed offset."""
    row: int
    """Row in the tile grid."""
    col: int
    """Column in the tile grid."""
    core: Window
    """The pixels this tile owns, ``(y0, y1, x0, x1)``: origin on the ``tile_px`` grid."""
    ext: Window
    """The core grown by the halo on each side and clipped to the scene: the window the tile is refined on."""
    ratio: int
    """PAN/MS pixel-size ratio; every window edge is a multiple of it."""

    @property
    def ms_core(self) -> Window:
        """The core on the MS grid (each PAN edge divided by the ratio, exactly)."""
        return tuple(v // self.ratio for v in self.core)  # type: ignore[return-value]

    @property
    def ms_ext(self) -> Window:
        """The ext window on the MS grid (each PAN edge divided by the ratio, exactly)."""
        return tuple(v // self.ratio for v in self.ext)  # type: ignore[return-value]

    @property
    def core_in_ext(self) -> Window:
        """Where the core sits inside the ext window, ``(y0, y1, x0, x1)`` relative to the ext origin."""
        y0, y1, x0, x1 = self.core
        return (y0 - self.ext[0], y1 - self.ext[0], x0 - self.ext[2], x1 - self.ext[2])

    @property
    def ext_shape(self) -> tuple[int, int]:
        """``(he, we)``: PAN shape of the ext window."""
        return (self.ext[1] - self.ext[0], self.ext[3] - self.ext[2])

    @property
    def core_shape(self) -> tuple[int, int]:
        """``(hc, wc)``: PAN shape of the core."""
        return (self.core[1] - self.core[0], self.core[3] - self.core[2])

    @property
    def ext_slices(self) -> tuple[slice, slice]:
        """``(y, x)`` slices of the ext window in the PAN scene."""
        return slices(self.ext)

    @property
    def ms_ext_slices(self) -> tuple[slice, slice]:
        """``(y, x)`` slices of the ext window in the MS scene."""
        return slices(self.ms_ext)

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """``(y, x)`` slices of the core in the PAN scene."""
        return slices(self.core)

    @property
    def core_in_ext_slices(self) -> tuple[slice, slice]:
        """``(y, x)`` slices that crop the core out of an ext-window array."""
        return slices(self.core_in_ext)

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.index, self.row, self.col, self.core, self.ext, self.ratio)


def slices(window: Window) -> tuple[slice, slice]:
    """``(y, x)`` slices of a ``(y0, y1, x0, x1)`` window.

    >>> slices((0, 4, 8, 12))
    (slice(0, 4, None), slice(8, 12, None))
    """
    return slice(window[0], window[1]), slice(window[2], window[3])


_PLAN_KEYS = ("shape", "ratio", "tile_px", "halo_px")


@dataclass(frozen=True)
class TilePlan:
    """The tiling of one scene; build it with `plan_tiles`, which checks the sizes."""

    shape: tuple[int, int]
    """``(H, W)``: PAN shape of the scene."""
    ratio: int
    """PAN/MS pixel-size ratio."""
    tile_px: int
    """Core size in PAN pixels (edge tiles are smaller where the scene is not a multiple of it)."""
    halo_px: int
    """Context added on each side of a core, in PAN pixels; neighbouring ext windows overlap by ``2 * halo_px``."""
    n_rows: int
    """Rows of tiles."""
    n_cols: int
    """Columns of tiles."""
    tiles: tuple[Tile, ...]
    """All tiles, row-major (``tiles[row * n_cols + col]``)."""

    @property
    def slot_px(self) -> int:
        """Side of one tile's slot (chunk) in the tile-major stage-A array: ``tile_px + 2 * halo_px``."""
        return self.tile_px + 2 * self.halo_px

    @property
    def core_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Dask-style ``(y, x)`` chunks of the scene, one chunk per core."""
        H, W = self.shape
        return (tuple(b - a for a, b in axis_cores(H, self.tile_px)),
                tuple(b - a for a, b in axis_cores(W, self.tile_px)))

    def tile(self, row: int, col: int) -> Tile:
        """The tile at ``(row, col)`` of the grid."""
        if not (0 <= row < self.n_rows and 0 <= col < self.n_cols):
            raise InputError(f"tile: ({row}, {col}) is outside the {self.n_rows} x {self.n_cols} tile grid")
        return self.tiles[row * self.n_cols + col]

    def slot(self, tile: Tile) -> tuple[slice, slice]:
        """``(y, x)`` slices of the tile's chunk in the tile-major stage-A array."""
        s = self.slot_px
        return slice(tile.row * s, (tile.row + 1) * s), slice(tile.col * s, (tile.col + 1) * s)

    def to_slot(self, tile: Tile, weighted: np.ndarray) -> np.ndarray:
        """Place a tile's ``(B, he, we)`` weighted prediction in its full ``(B, slot_px, slot_px)`` chunk.

        The core lands at offset ``(halo_px, halo_px)``; slot pixels outside the (clipped) ext window are NaN, so
        they can never pass for data. Writing whole chunks keeps every stage-A write chunk-aligned.
        """
        arr = np.asarray(weighted)
        if arr.ndim != 3 or arr.shape[1:] != tile.ext_shape:
            raise InputError(f"weighted: expected (bands, {tile.ext_shape[0]}, {tile.ext_shape[1]}) for tile "
                             f"{tile.index} (ext {tile.ext}), found shape {arr.shape}")
        out = np.full((arr.shape[0], self.slot_px, self.slot_px), np.nan, dtype=arr.dtype)
        oy = tile.ext[0] - tile.core[0] + self.halo_px
        ox = tile.ext[2] - tile.core[2] + self.halo_px
        out[:, oy:oy + arr.shape[1], ox:ox + arr.shape[2]] = arr
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the tiles follow from it), for the run manifest."""
        return {"shape": list(self.shape), "ratio": self.ratio, "tile_px": self.tile_px, "halo_px": self.halo_px}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TilePlan:
        """Inverse of `to_dict`; unknown or missing keys are rejected by name."""
        unknown = sorted(set(d) - set(_PLAN_KEYS))
        missing = sorted(set(_PLAN_KEYS) - set(d))
        if unknown or missing:
            raise InputError(f"tile plan: expected keys {', '.join(_PLAN_KEYS)}; unknown {unknown}, missing {missing}")
        return plan_tiles(tuple(d["shape"]), d["ratio"], tile_px=d["tile_px"], halo_px=d["halo_px"])

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON of `to_dict` (stable across processes and versions of Python)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def __dask_tokenize__(self) -> tuple:
        return (type(self).__name__, self.digest)


def plan_tiles(shape: tuple[int, int], ratio: int, tile_px: int = 512, halo_px: int | None = None) -> TilePlan:
    """Cut a PAN scene of ``shape`` into tiles aligned to the global ``tile_px`` grid.

    Parameters
    ----------
    shape
        ``(H, W)`` of the PAN scene; both multiples of ``ratio`` (the MS grid covers it exactly).
    ratio
        PAN/MS pixel-size ratio (>= 1).
    tile_px
        Core size in PAN pixels, a multiple of ``ratio`` and at least ``2 * halo_px`` (so only neighbouring tiles
        overlap).
    halo_px
        Context on each side in PAN pixels, a multiple of ``ratio``; default `default_halo_px` (48 at ratio 4).

    >>> p = plan_tiles((100, 64), 4, tile_px=32, halo_px=8)
    >>> (p.n_rows, p.n_cols), p.tiles[-1].core, p.tiles[-1].ext
    ((4, 2), (96, 100, 32, 64), (88, 100, 24, 64))
    """
    try:
        H, W = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape: expected the PAN shape (H, W), found {shape!r}") from None
    for name, value in (("ratio", ratio), ("tile_px", tile_px), ("halo_px", halo_px)):
        if value is not None and (isinstance(value, bool) or int(value) != value):
            raise InputError(f"{name}: expected an integer, found {value!r}")
    ratio, tile_px = int(ratio), int(tile_px)
    if ratio < 1:
        raise InputError(f"ratio: expected an integer >= 1, found {ratio}")
    halo_px = default_halo_px(ratio) if halo_px is None else int(halo_px)
    if H < ratio or W < ratio or H % ratio or W % ratio:
        raise InputError(f"shape: the PAN shape {(H, W)} must be at least one MS pixel and a multiple of the ratio "
                         f"{ratio} on both axes")
    if tile_px < ratio or tile_px % ratio:
        raise InputError(f"tile_px: expected a positive multiple of the ratio {ratio}, found {tile_px}")
    if halo_px < 0 or halo_px % ratio:
        raise InputError(f"halo_px: expected a multiple of the ratio {ratio} that is >= 0, found {halo_px}")
    if tile_px < 2 * halo_px:
        raise InputError(f"tile_px: {tile_px} is smaller than 2 * halo_px = {2 * halo_px}; use a larger tile or a "
                         "smaller halo (only neighbouring tiles may overlap)")
    rows, cols = axis_cores(H, tile_px), axis_cores(W, tile_px)
    tiles = []
    for r, (y0, y1) in enumerate(rows):
        for c, (x0, x1) in enumerate(cols):
            ext = (max(0, y0 - halo_px), min(H, y1 + halo_px), max(0, x0 - halo_px), min(W, x1 + halo_px))
            tiles.append(Tile(r * len(cols) + c, r, c, (y0, y1, x0, x1), ext, ratio))
    return TilePlan((H, W), ratio, tile_px, halo_px, len(rows), len(cols), tuple(tiles))


def blend_weights(tile: Tile, plan: TilePlan) -> np.ndarray:
    """``(he, we)`` float64 blending weight of ``tile`` over its ext window (module docstring).

    Summed over all tiles of ``plan`` the weights are 1 in every scene pixel; the weight is 1 where only this tile
    reaches and follows a sin² ramp across each overlap with a neighbour.
    """
    H, W = plan.shape
    wy = axis_weight(tile.ext[0], tile.ext[1], tile.core[0], tile.core[1], H, plan.halo_px)
    wx = axis_weight(tile.ext[2], tile.ext[3], tile.core[2], tile.core[3], W, plan.halo_px)
    return np.outer(wy, wx)


def _axis_pieces(index: int, count: int, core_len: int, halo_px: int, slot_px: int) -> list[tuple[slice, slice]]:
    """(source in the overlapped block, destination in the output core) pairs along one axis of `blend`.

    The overlapped block holds the left neighbour's last ``halo_px`` slot pixels (if any), this tile's slot, and the
    right neighbour's first ``halo_px`` slot pixels (if any).

    >>> for src, dst in _axis_pieces(1, 3, 32, 8, 48):
    ...     print(src, dst)
    slice(16, 48, None) slice(0, 32, None)
    slice(0, 8, None) slice(0, 8, None)
    slice(56, 64, None) slice(24, 32, None)
    """
    off = halo_px if index > 0 else 0
    pieces = [(slice(off + halo_px, off + halo_px + core_len), slice(0, core_len))]
    if halo_px and index > 0:
        n = min(halo_px, core_len)
        pieces.append((slice(0, n), slice(0, n)))
    if halo_px and index < count - 1:
        pieces.append((slice(off + slot_px, off + slot_px + halo_px), slice(core_len - halo_px, core_len)))
    return pieces


def _add_block(block: np.ndarray, plan: TilePlan, block_info: dict | None = None) -> np.ndarray:
    """Sum one core's contributions from its own slot and its up to 8 neighbours' slots (pass 2 of `blend`)."""
    _, row, col = block_info[None]["chunk-location"]
    tile = plan.tile(row, col)
    hc, wc = tile.core_shape
    out = np.zeros((block.shape[0], hc, wc), dtype=block.dtype)
    for src_y, dst_y in _axis_pieces(row, plan.n_rows, hc, plan.halo_px, plan.slot_px):
        for src_x, dst_x in _axis_pieces(col, plan.n_cols, wc, plan.halo_px, plan.slot_px):
            out[:, dst_y, dst_x] += block[:, src_y, src_x]
    return out


def blend(tiles: Any, plan: TilePlan) -> Any:
    """Lazily overlap-add a tile-major stage-A array into the scene, one output chunk per core.

    Parameters
    ----------
    tiles
        Dask array ``(B, n_rows * slot_px, n_cols * slot_px)`` (e.g. ``da.from_zarr`` of the stage-A array), one
        chunk per tile slot, each holding ``blend_weights(tile, plan) * prediction`` placed by `TilePlan.to_slot`.
    plan
        The plan the slots were written with.

    Returns
    -------
    dask.array.Array
        ``(B, H, W)`` in the dtype of ``tiles``, chunked ``(B, *plan.core_chunks)``. Each output chunk reads a halo
        of ``halo_px`` from its 3 x 3 neighbour slots; the scene is never materialised.
    """
    import dask.array as da

    tiles = da.asarray(tiles)
    s = plan.slot_px
    expected = (plan.n_rows * s, plan.n_cols * s)
    if tiles.ndim != 3 or tiles.shape[1:] != expected:
        raise InputError(f"tiles: expected a (bands, {expected[0]}, {expected[1]}) tile-major array for this plan, "
                         f"found shape {tiles.shape}")
    tiles = tiles.rechunk((tiles.shape[0], s, s))
    H, W = plan.shape
    ys, xs = plan.core_chunks
    if plan.halo_px == 0:  # slots are the cores: nothing overlaps
        return tiles.map_blocks(_add_block, plan=plan, chunks=((tiles.shape[0],), ys, xs), dtype=tiles.dtype)
    return da.map_overlap(_add_block, tiles, depth={0: 0, 1: plan.halo_px, 2: plan.halo_px}, boundary="none",
                          trim=False, allow_rechunk=False, chunks=((tiles.shape[0],), ys, xs), dtype=tiles.dtype,
                          plan=plan)
