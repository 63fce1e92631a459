"""`RunResult`, what a run did, and `Tally`, which the driver fills as tiles finish."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..qa import TileQA, summarise
from .worker import TileReport


@dataclass
class RunResult:
    """What a `run` or `resume` did; ``tiles_failed`` > 0 means the store is not complete (resume to retry)."""

    out: str
    """The output store (path or URL, as given)."""
    tiles_total: int
    """Tiles in the plan."""
    tiles_done_before: int
    """Tiles already marked done when this call started (resume)."""
    tiles_computed: int
    """Tiles refined and written by this call."""
    tiles_skipped_nodata: int
    """Tiles whose whole window is nodata: written as nodata without refinement (also marked done)."""
    tiles_failed: int
    """Tiles whose task raised (after retries); they stay not-done."""
    errors: dict[int, str] = field(default_factory=dict)
    """Tile index → error message of each failed tile."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per phase: scan, prior, tiles, finalize, total."""
    prior_hash: str | None = None
    """Content hash of the shared prior (None for methods without one)."""
    qa: dict[str, Any] = field(default_factory=dict)
    """Summary of the `TileQA` of the tiles computed by this call (`qa.summarise`)."""
    complete: bool = False
    """True when every tile is done and the blended ``fused`` array is written."""

    @property
    def seconds_total(self) -> float:
        """Wall seconds of the whole call."""
        return float(self.seconds.get("total", 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (``trapan run --json``)."""
        d = asdict(self)
        d["errors"] = {str(k): v for k, v in self.errors.items()}
        return d

    def summary(self) -> str:
        """One human line for the CLI."""
        state = "complete" if self.complete else f"INCOMPLETE ({self.tiles_failed} failed: resume to retry)"
        hq = self.qa.get("hqnr_mean")
        hq_text = f", mean tile HQNR {hq:.4f}" if isinstance(hq, float) and math.isfinite(hq) else ""
        return (f"{self.out}: {state}; {self.tiles_total} tiles: {self.tiles_done_before} done before, "
                f"{self.tiles_computed} computed, {self.tiles_skipped_nodata} nodata-only{hq_text}; "
                f"{self.seconds_total:.1f} s")


@dataclass
class Tally:
    """Tiles finished so far in this call."""

    skipped: int = 0
    qas: list[TileQA] = field(default_factory=list)
    qa_errors: list[str] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    def add(self, report: TileReport) -> None:
        """Count one finished tile."""
        if report.nodata_only:
            self.skipped += 1
            return
        self.qas.append(report.qa)
        if report.qa_error:
            self.qa_errors.append(report.qa_error)

    def result(self, out: str, n_total: int, n_before: int, seconds: dict[str, float], prior_hash: str | None,
               complete: bool) -> RunResult:
        """The `RunResult` of the call."""
        return RunResult(out, n_total, n_before, len(self.qas), self.skipped, len(self.errors), self.errors, seconds,
                         prior_hash, summarise(self.qas, self.qa_errors), complete)


def progress_adapter(progress: Any, iterable: Iterable[Any], total: int) -> tuple[Iterable[Any], Callable[[], None]]:
    """Adapt ``progress``: a tqdm-like object (``update``), a wrapper class/function (``tqdm``), or a plain callable.
    One that tracks phases (`trapan_cloud.progress.RunProgress`) enters the phase "tiles" with ``total`` steps.

    Returns the iterable to loop over and the function to call once per finished tile.
    """
    if progress is None:
        return iterable, lambda: None
    if hasattr(progress, "phase"):
        progress.phase("tiles", total=total)
        return iterable, lambda: progress.update(1)
    if hasattr(progress, "update"):
        if getattr(progress, "total", 0) is None:
            progress.total = total
        return iterable, lambda: progress.update(1)
    try:
        wrapped = progress(iterable, total=total)
    except TypeError:
        wrapped = None
    if wrapped is not None and hasattr(wrapped, "__iter__"):
        return wrapped, lambda: None
    return iterable, lambda: progress()
