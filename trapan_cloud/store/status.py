"""`store_status`: progress and per-tile QA of a run store, read from its small arrays only (no torch, no dask), and
on request its integrity."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..qa import QASpec
from ..redaction import redact
from .io import open_store


def store_status(url: str, storage_options: dict | None = None, verify: bool = False) -> dict[str, Any]:
    """Tiles done / pending / failed, and for every QA array its mean over the done tiles, its worst value and the
    tile that has it (worst is the minimum where higher is better, per the array's ``better`` attribute).

    ``verify`` adds ``integrity`` (`RunStore.verify`: every done tile's chunks exist and decode), which reads every
    stage-A slot still kept and every ``fused`` chunk once."""
    store = open_store(url, storage_options)
    plan, done = store.plan, store.done()
    failed = store.failed()
    out: dict[str, Any] = {"store": redact(url), "status": store.status, "tiles_total": len(plan.tiles),
                           "tiles_done": int(done.sum()), "tiles_pending": len(plan.tiles) - int(done.sum()),
                           "tiles_failed": len(failed)}
    for name, values in store.qa().items():
        measured = done & np.isfinite(values)
        if not measured.any():
            continue
        attrs = store.run[name].attrs
        spec = QASpec(name, attrs.get("better") == "higher", str(attrs.get("long_name", "")))
        higher_is_better, worst = spec.higher_is_better, spec.worst
        masked = np.where(measured, values, np.inf if higher_is_better else -np.inf)
        row, col = np.unravel_index(int(np.argmin(masked) if higher_is_better else np.argmax(masked)), values.shape)
        out[f"{name}_mean"] = float(values[measured].mean())
        out[f"{name}_{worst}"] = float(values[row, col])
        out[f"{name}_worst_tile"] = int(row * plan.n_cols + col)
    if failed:
        out["failed"] = {k: failed[k] for k in sorted(failed)}
    if verify:
        out["integrity"] = store.verify(plan).to_dict()
    return out
