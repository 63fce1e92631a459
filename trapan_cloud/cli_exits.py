"""How a ``trapan`` command ends: documented exit codes, every error as one line on stderr, ^C as one line and 130,
and log lines on stderr that a live progress display can print above its bars."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from functools import wraps
from typing import Any, Callable

import click

from .errors import IncompleteRunError, TrapanError
from .redaction import redact

EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_CODES = (f"Exit status: 0 when the command did all it was asked; {EXIT_ERROR} for an input or store error; "
              f"{EXIT_USAGE} for a usage error; {EXIT_INCOMPLETE} for a run that ended with tiles not done "
              f"(resume it); "
              f"{EXIT_INTERRUPTED} when interrupted.")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time: a live progress display on a terminal redirects it, so log
    lines print above the bars instead of through them."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """The stream is always the current sys.stderr."""


def configure_logging(verbose: int, quiet: int) -> None:
    """The package's log lines on stderr at WARNING, moved by each -v / -q."""
    level = max(logging.DEBUG, logging.WARNING - 10 * verbose + 10 * quiet)
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trapan_cloud")
    root.handlers[:] = [handler]
    root.setLevel(level)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks collapsed: every error is one line on stderr."""
    return " ".join(str(text).split())


class Main(click.Group):
    """The ``trapan`` group: any click or project error is one line on stderr (no usage block, no traceback) and its
    exit status (2 for usage errors)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `trapan`: the help text, as click shows it
                exc.show()
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
            click.echo(f"Error: {one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


class Failure(click.ClickException):
    """One line on stderr and the exit status of its error class."""

    def __init__(self, exc: TrapanError) -> None:
        super().__init__(redact(f"{type(exc).__name__}: {exc}"))
        self.exit_code = EXIT_INCOMPLETE if isinstance(exc, IncompleteRunError) else EXIT_ERROR


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's own errors into one paragraph and their exit status (click keeps 2 for usage errors)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers may be set
        previous = signal.signal(signal.SIGINT, _on_sigint) if main_thread else None
        try:
            return fn(*args, **kwargs)
        except TrapanError as exc:
            raise Failure(exc) from exc
        except KeyboardInterrupt:
            click.echo(_interrupted(fn.__name__, kwargs.get("out") or kwargs.get("out_opt")), err=True)
            if _SIGINT_SEEN:  # a real ^C: exit now, so a cluster close it interrupted is not retried at exit (which
                sys.stdout.flush()  # waits up to a minute and prints a traceback); the workers follow their parent
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            if previous is not None:  # None: not a Python-level handler, or not the main thread
                signal.signal(signal.SIGINT, previous)

    return wrapper


_SIGINT_SEEN = False
"""Whether a SIGINT reached `_on_sigint` (rather than a KeyboardInterrupt raised by code)."""


def _on_sigint(signum: int, frame: Any) -> None:
    """^C: closing the cluster mid-task makes distributed and asyncio complain (a busy worker killed, a cancelled
    gather); that is expected now, so they are silenced, and the command is interrupted."""
    global _SIGINT_SEEN
    _SIGINT_SEEN = True
    for name in ("distributed", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def _interrupted(command: str, out: str | None) -> str:
    """The one line a ^C ends a command with: for `run` and `resume`, how to continue the run when its store exists."""
    if command not in ("run", "resume") or not out:
        return "interrupted"
    from .store import output_exists

    try:
        resumable = output_exists(out)
    except Exception:  # noqa: BLE001 - an unreachable output just gets the plain message
        resumable = False
    return f"interrupted; continue with `trapan resume {redact(out)}`" if resumable else "interrupted"
