"""Run progress on stderr for people and for log files: named phases, step counters with rate and ETA.

A run goes through phases (`PHASES`: open, cluster, scan, prior, tiles, finalize, export); the prior and the tiles count
steps. `for_stderr` picks the renderer: a rich progress display on a terminal, or `LineProgress` (one plain line per
event, no ``\\r``, at most one step line per ``interval_s``) when stderr is a pipe or a file. Both are tqdm-like
(``total``, ``update``), so `trapan_cloud.run(progress=...)` advances them once per finished tile, and they add
``phase``, which the run calls when it enters a phase.

The prior is fitted in one task on a worker: `submit_counting_steps` counts its torch optimiser steps there and sends
the count to the client with distributed's events (``Worker.log_event`` → ``Client.subscribe_topic``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

PHASES = ("open", "cluster", "scan", "prior", "tiles", "finalize", "export")
"""The phases of a CLI run, in order (a run without a prior or a COG skips those)."""

EVENT_INTERVAL_S = 0.5
"""Least seconds between two step-count events a worker sends while it fits the prior."""


def _clock(seconds: float) -> str:
    """A duration: tenths of a second below a minute, else ``H:MM:SS``.

    >>> _clock(3725.4), _clock(0.73)
    ('1:02:05', '0.7 s')
    """
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class RunProgress:
    """Phase and step bookkeeping shared by the renderers; subclasses say how a start, a step and an end look.

    Thread-safe: prior steps arrive on the client's event-loop thread, tiles on the caller's.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        """The current phase, None before the first and after `close`."""
        self.total: int | None = None
        """Steps of the current phase, None when it does not count them."""
        self.n = 0
        self.t0 = time.monotonic()
        self._lock = threading.RLock()

    def phase(self, name: str, total: int | None = None, detail: str = "", t0: float | None = None) -> None:
        """End the current phase and enter ``name`` (with ``total`` steps when it counts them), timed from now or from
        ``t0`` (a `time.monotonic` value: a phase announced only once its checks have passed)."""
        with self._lock:
            self._end(at=t0)
            self.name, self.total, self.n = name, total, 0
            self.t0 = time.monotonic() if t0 is None else t0
            self._start(detail)

    def update(self, n: int = 1) -> None:
        """``n`` more steps done in the current phase."""
        self.update_to(self.n + n)

    def update_to(self, n: int) -> None:
        """The current phase has done ``n`` steps (a count that only grows; smaller values are ignored)."""
        with self._lock:
            if self.name is None or n <= self.n:
                return
            self.n = n
            self._step()

    def close(self, completed: bool = True) -> None:
        """End the current phase; ``completed=False`` when the command stopped in it (an error, ^C)."""
        with self._lock:
            self._end(completed)
            self.name = None

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(completed=exc_type is None)

    def rate(self) -> float:
        """Steps per second of the current phase so far."""
        return self.n / max(time.monotonic() - self.t0, 1e-9)

    def _end(self, completed: bool = True, at: float | None = None) -> None:
        if self.name is not None:
            self._finish((time.monotonic() if at is None else at) - self.t0, completed)

    def _start(self, detail: str) -> None:
        raise NotImplementedError

    def _step(self) -> None:
        raise NotImplementedError

    def _finish(self, seconds: float, completed: bool) -> None:
        raise NotImplementedError


class LineProgress(RunProgress):
    """One plain line per event on ``stream`` (a log file or a pipe): a phase's start, its steps at most every
    ``interval_s`` seconds (and its last one), and its end with the time it took.

    >>> import io
    >>> out = io.StringIO()
    >>> p = LineProgress(out, interval_s=3600)
    >>> p.phase("tiles", total=3); p.update(); p.update(); p.update(); p.close()
    >>> [line.split(",")[0] for line in out.getvalue().splitlines()]
    ['trapan tiles: 0/3', 'trapan tiles: 3/3 (100%)', 'trapan tiles: done in 0.0 s']
    """

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 10.0) -> None:
        super().__init__()
        self.stream = stream
        self.interval_s = float(interval_s)
        self._last = 0.0

    def _line(self, text: str) -> None:
        print(f"trapan {self.name}: {text}", file=self.stream or sys.stderr, flush=True)

    def _count(self) -> str:
        return f"{self.n}/{self.total}" if self.total else str(self.n)

    def _start(self, detail: str) -> None:
        self._last = time.monotonic()
        self._line(" ".join(x for x in (self._count() if self.total else "", detail) if x) or "started")

    def _step(self) -> None:
        now, last = time.monotonic(), self.n == self.total
        if not last and now - self._last < self.interval_s:
            return
        self._last = now
        rate = self.rate()
        text = self._count()
        if self.total:
            text += f" ({100 * self.n // self.total}%)"
        text += f", {rate:.3g} {'tiles' if self.name == 'tiles' else 'steps'}/s"
        if self.total and not last and rate > 0:
            text += f", ETA {_clock((self.total - self.n) / rate)}"
        self._line(text)

    def _finish(self, seconds: float, completed: bool) -> None:
        self._line(f"done in {_clock(seconds)}" if completed else f"stopped at {self._count()} after {_clock(seconds)}")


class RichProgress(RunProgress):
    """A live rich display on a terminal: one row per phase with its bar, count, rate, time taken and ETA."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn)

        # the phase's own time (rich's elapsed column would start when the row is added, after a checked phase)
        self._bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[took]}"),
                              TimeRemainingColumn(), console=Console(file=stream or sys.stderr), transient=False)
        self._task: Any = None

    def _start(self, detail: str) -> None:
        if self._task is None and not self._bars.live.is_started:
            self._bars.start()
        self._task = self._bars.add_task(" ".join(x for x in (self.name, detail) if x), total=self.total, rate="",
                                         took="")

    def _step(self) -> None:
        self._bars.update(self._task, completed=self.n, rate=f"{self.rate():.3g}/s",
                          took=_clock(time.monotonic() - self.t0))

    def _finish(self, seconds: float, completed: bool) -> None:
        if completed:
            self._bars.update(self._task, total=self.total or self.n or 1, completed=self.total or self.n or 1,
                              took=_clock(seconds))
        else:
            self._bars.update(self._task, description=f"{self.name} (stopped)", took=_clock(seconds))

    def close(self, completed: bool = True) -> None:
        super().close(completed)
        if self._bars.live.is_started:
            self._bars.stop()


def for_stderr(interval_s: float = 10.0) -> RunProgress | None:
    """The progress a command shows: None under ``trapan -q`` (the package logger above WARNING), a rich display when
    stderr is a terminal, else one line per event."""
    if logging.getLogger("trapan_cloud").getEffectiveLevel() > logging.WARNING:
        return None
    if sys.stderr.isatty():
        return RichProgress()
    return LineProgress(interval_s=interval_s)


def enter_phase(progress: Any, name: str, total: int | None = None, detail: str = "",
                t0: float | None = None) -> None:
    """``progress.phase(...)`` when ``progress`` tracks phases (`RunProgress`); nothing for tqdm bars or callables."""
    if hasattr(progress, "phase"):
        progress.phase(name, total=total, detail=detail, t0=t0)


def _counting_steps(topic: str, fn: Callable[..., Any], *args: Any) -> tuple[Any, int]:
    """Worker side: ``fn(*args)`` and the torch optimiser steps this thread took, sent as ``topic`` events on the way.

    Counts through torch's global optimiser post-step hook, filtered to this task's thread, so any method whose prior
    is fitted with ``torch.optim`` optimisers is counted without knowing it (TRA-PAN: DAM, warm-up and amortised
    Stage-2 steps, one optimiser step each).
    """
    from distributed import get_worker
    from torch.optim.optimizer import register_optimizer_step_post_hook

    worker, me = get_worker(), threading.get_ident()
    state = {"n": 0, "sent": time.monotonic()}

    def hook(*_: Any) -> None:
        if threading.get_ident() != me:
            return
        state["n"] += 1
        if time.monotonic() - state["sent"] >= EVENT_INTERVAL_S:
            state["sent"] = time.monotonic()
            worker.log_event(topic, {"steps": state["n"]})

    handle = register_optimizer_step_post_hook(hook)
    try:
        result = fn(*args)
    finally:
        handle.remove()
    return result, state["n"]


def submit_counting_steps(client: Any, progress: Any, fn: Callable[..., Any], *args: Any, **submit: Any) -> Any:
    """``client.submit(fn, *args, **submit).result()``, with the task's optimiser steps reaching ``progress`` as they
    happen (through a per-call event topic); a progress without phases gets none."""
    if not hasattr(progress, "phase"):
        return client.submit(fn, *args, **submit).result()
    topic = f"trapan-steps-{uuid.uuid4().hex[:12]}"
    client.subscribe_topic(topic, lambda event: progress.update_to(int(event[1]["steps"])))
    try:
        result, steps = client.submit(_counting_steps, topic, fn, *args, **submit).result()
    finally:
        client.unsubscribe_topic(topic)
    progress.update_to(steps)  # the last events may still be in flight
    return result
