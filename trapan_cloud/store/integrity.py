"""`Integrity`: which chunks of a run store are missing or do not decode, and what a resume must redo about it.

Zarr reads a missing chunk as its fill value, so a deleted ``fused`` chunk would come back as a block of nodata and a
deleted stage-A slot as NaN. The store writes every chunk (even one equal to the fill value), so a chunk that the
store's state says exists but that is absent, cut short (its size differs from the one its Blosc header declares), or
that fails to decode, is damage. `check_chunks` finds it with one listing per array and one 16-byte read per chunk,
plus, when asked, one full read per chunk.
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
                "details": list(self.details), "summary": self.summary()}

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


def stored_sizes(fs: Any, root: str, array: Any) -> dict[str, int]:
    """Sizes of the chunk objects of ``array`` that exist, by key relative to the store root: one listing."""
    base = root.rstrip("/")
    prefix = f"{base}/{array.path}"
    if not fs.exists(prefix):
        return {}
    found = fs.find(prefix, detail=True)
    return {name[len(base) + 1:] if name.startswith(base) else name: int(entry.get("size") or 0)
            for name, entry in found.items() if name.rsplit("/", 1)[-1] not in ZARR_METADATA}


def blosc_size(header: bytes) -> int | None:
    """The compressed size a Blosc frame declares in its 16-byte header (bytes 12-16, little-endian), or None when
    ``header`` is too short to be one. A chunk object shorter or longer than that was cut or garbled.

    >>> blosc_size(bytes([2, 1, 0x11, 2]) + (100).to_bytes(4, "little") + (100).to_bytes(4, "little")
    ...            + (57).to_bytes(4, "little"))
    57
    """
    return int.from_bytes(header[12:16], "little") if len(header) >= 16 else None


def check_chunks(fs: Any, root: str, array: Any, tiles: Iterable[Tile], coords_of: Any,
                 decode: bool) -> dict[int, str]:
    """``tile index → problem`` for the chunk of each tile of ``tiles`` in ``array`` (``coords_of(tile)`` gives its
    chunk coordinates): "missing", "cut (...)" when its size differs from the one its Blosc header declares (one
    16-byte read per chunk), or, with ``decode``, "does not decode (...)" when reading it fails."""
    sizes = stored_sizes(fs, root, array)
    problems: dict[int, str] = {}
    present: list[tuple[Tile, str, tuple[int, ...]]] = []
    for tile in tiles:
        coords = coords_of(tile)
        key = chunk_key(array, coords)
        if key not in sizes:
            problems[tile.index] = f"{key} missing"
        else:
            present.append((tile, key, coords))
    base = root.rstrip("/")
    paths = [f"{base}/{key}" for _, key, _ in present]
    headers = fs.cat_ranges(paths, [0] * len(paths), [16] * len(paths)) if paths else []
    for (tile, key, coords), header in zip(present, headers):
        declared = blosc_size(header) if isinstance(header, bytes) else None
        if declared != sizes[key]:
            problems[tile.index] = f"{key} cut (holds {sizes[key]} bytes, its header declares {declared})"
        elif decode:
            selection = tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, array.chunks))
            try:
                array[selection]
            except Exception as exc:  # noqa: BLE001 - codecs raise many types for a garbled chunk
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
