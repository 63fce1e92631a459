"""How tiles reach the workers: largest first, one per free task thread (one per GPU worker with ``gpu``), never more.

A tile queued on a busy one-thread worker waits there until that worker's current tile ends, however idle the others
are (distributed's work stealing does not move it), so tiles are submitted only when a thread frees up; that also keeps
the largest-first order (the small edge tiles fill the gaps at the end) and the driver's memory flat in scene size.
Slots are counted anew at each submission, so workers that join mid-run get tiles too. Nothing here knows what a tile
computes: the policy is tested with plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..tiling import Tile


def largest_first(tiles: Iterable[Tile]) -> list[Tile]:
    """Tiles by decreasing ext-window area, then index (seeds come from indices, so the order changes no output)."""
    return sorted(tiles, key=lambda t: (-t.ext_shape[0] * t.ext_shape[1], t.index))


def gpu_workers(client: Any) -> int:
    """Workers of the cluster that advertise the resource ``GPU``."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(1 for w in workers if w.get("resources", {}).get("GPU", 0) >= 1)


def free_slots(client: Any, gpu: bool) -> int:
    """Tiles the cluster can run at once: its task threads, or its GPU workers with ``gpu`` (at least 1)."""
    return max(gpu_workers(client) if gpu else sum(client.nthreads().values()), 1)


def drive(tiles: list[Tile], submit: Callable[[Tile], Any], slots: Callable[[], int],
          stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[Tile, Any]]:
    """Submit ``tiles`` in order, at most ``slots()`` in flight (counted anew when a tile finishes); yield each
    (tile, future) as it finishes. ``submit(tile)`` returns a `distributed.Future`, which the caller reads and releases.
    Once ``stop()`` is true nothing more is submitted: the tiles in flight still finish and are yielded.
    """
    from distributed import as_completed

    pending = iter(tiles)
    in_flight: dict[Any, Tile] = {}
    done = as_completed()

    def fill() -> None:
        if stop():
            return
        n = slots()
        while len(in_flight) < n and (t := next(pending, None)) is not None:
            f = submit(t)
            in_flight[f] = t
            done.add(f)

    fill()
    for f in done:
        yield in_flight.pop(f), f
        fill()
