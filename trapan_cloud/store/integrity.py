"""`Integrity`: which chunks of a run store are missing or do not decode, and what a resume must redo about it.

Zarr reads a missing chunk as its fill value, so a deleted ``fused`` chunk would come back as a block of nodata and a
deleted stage-A slot as NaN. The store writes every chunk (even one equal to the fill value), so a chunk that the
store's state says exists but that is absent, or that fails to decode, is damage. `check_chunks` finds it with one
listing per array plus, when asked, one read per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..tiling import Tile, TilePlan
from .layout import ZARR_METADATA


@dataclass(frozen=True)
class Integrity:
    """The result of `RunStore.verify`: damaged chunks of done tiles and of the product."""

    store: str
    """The store, credentials removed."""
    damaged_slots: tuple[int, ...] = ()
    """Done tiles whose stage-A slot chunk is missing or does not decode (only where slots are still kept)."""
    damaged_cores: tuple[int, ...] = ()
    """Tiles whose ``fused`` core chunk is missing or does not decode (checked once the product was written)."""
    details: tuple[str, ...] = ()
    """One line per damaged chunk: tile, array, chunk key and what is wrong."""

    @property
    def ok(self) -> bool:
        """True when nothing is damaged."""
        return not (self.damaged_slots or self.damaged_cores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (``trapan status --verify``)."""
        return {"ok": self.ok, "damaged_slots": list(self.damaged_slots), "damaged_cores": list(self.damaged_cores),
                "details": list(self.details)}

    def summary(self) -> str:
        """One line for logs and errors."""
        if self.ok:
            return f"{self.store}: every checked chunk exists and decodes"
        shown = "; ".join(self.details[:3]) + ("; ..." if len(self.details) > 3 else "")
        return (f"{self.store}: {len(self.damaged_slots)} stage-A slot(s) and {len(self.damaged_cores)} fused "
                f"core(s) missing or damaged ({shown}); run `trapan resume` to recompute them")


def chunk_key(array: Any, coords: tuple[int, ...]) -> str:
    """Path of one chunk of a zarr ``array`` relative to the store root (v2 ``a/0.1`` or v3 ``a/c/0/1``)."""
    return f"{array.path}/{array.metadata.encode_chunk_key(coords)}"


def stored_keys(fs: Any, root: str, array: Any) -> set[str]:
    """Keys (relative to the store root) of the chunk objects of ``array`` that exist: one listing."""
    prefix = f"{root.rstrip('/')}/{array.path}"
    if not fs.exists(prefix):
        return set()
    names = fs.find(prefix)
    cut = len(root.rstrip("/")) + 1
    return {n[cut:] if n.startswith(root.rstrip("/")) else n for n in names
            if n.rsplit("/", 1)[-1] not in ZARR_METADATA}


def check_chunks(fs: Any, root: str, array: Any, tiles: Iterable[Tile], coords_of: Any,
                 decode: bool) -> dict[int, str]:
    """``tile index → problem`` for the chunk of each tile of ``tiles`` in ``array`` (``coords_of(tile)`` gives its
    chunk coordinates): "missing", or "does not decode (...)" when ``decode`` and reading it fails."""
    have = stored_keys(fs, root, array)
    problems: dict[int, str] = {}
    for tile in tiles:
        coords = coords_of(tile)
        key = chunk_key(array, coords)
        if key not in have:
            problems[tile.index] = f"{key} missing"
            continue
        if decode:
            selection = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, array.chunks))
            try:
                array[selection]
            except Exception as exc:  # noqa: BLE001 - codecs raise many types for a truncated or garbled chunk
                problems[tile.index] = f"{key} does not decode ({type(exc).__name__})"
    return problems


def overlapping(plan: TilePlan, cores: Iterable[int]) -> set[int]:
    """Tiles whose ext window overlaps the core of any tile in ``cores``: the slots `tiling.blend` reads for them.

    >>> from trapan_cloud.tiling import plan_tiles
    >>> sorted(overlapping(plan_tiles((48, 48), 4, tile_px=16, halo_px=4), [0]))
    [0, 1, 3, 4]
    """
    out: set[int] = set()
    for k in cores:
        y0, y1, x0, x1 = plan.tiles[k].core
        out |= {t.index for t in plan.tiles
                if t.ext[0] < y1 and y0 < t.ext[1] and t.ext[2] < x1 and x0 < t.ext[3]}
    return out
