"""Retrying transient I/O: a read or write that failed because object storage or an HTTP server was briefly away (a
refused or reset connection, a timeout, a 5xx answer) is tried again with exponential backoff, within a bounded total
time; anything else (a missing object, a permission error, a file that does not decode) fails at once.

A small helper rather than a dependency: neither ``tenacity`` nor ``backoff`` is installed, and the run needs one
function. s3fs/botocore and GDAL retry a few times within seconds on their own; this covers outages of tens of seconds.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .errors import TrapanError
from .redaction import redact

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_TYPES = frozenset({
    "EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError", "ReadTimeoutError", "HTTPClientError",
    "ClientConnectionError", "ServerDisconnectedError", "ServerTimeoutError", "FSTimeoutError",
})
"""Class names (anywhere in an exception's MRO) of botocore, aiohttp and fsspec errors that mean "no answer", matched
by name so this module imports none of those libraries."""

TRANSIENT_TEXT = re.compile(
    r"HTTP response code: 5\d\d|error occurred \((50[0234]|ServiceUnavailable|SlowDown|InternalError)\)|"
    r"Could(n't| not) connect|Connection (refused|reset|timed out)|Failed to connect|Could not resolve host|"
    r"timed out|Timeout was reached", re.IGNORECASE)
"""Messages of GDAL (curl) errors and botocore ``ClientError``s (``An error occurred (503) ...``) that carry a transient
cause only in their text."""

PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

CLIENT_ERROR_TEXT = re.compile(
    r"HTTP response code: 4\d\d|error occurred \((40[0-9]|AccessDenied|NoSuchKey|NoSuchBucket)\)", re.IGNORECASE)
"""A 4xx answer: the request itself is wrong (missing object, no permission); retrying cannot help."""


class RetriesExhausted(TrapanError):
    """A transient I/O error that outlasted the retry budget: the server stays away (the message says what failed,
    for how long, and the last error)."""


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first_s``, times ``factor`` each time, at most ``max_s``; no new attempt starts after
    ``budget_s`` seconds since the first one."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 8.0
    budget_s: float = 45.0

    def delays(self) -> Iterator[float]:
        """The successive waits (endless; the budget ends the retries)."""
        delay = self.first_s
        while True:
            yield delay
            delay = min(delay * self.factor, self.max_s)


IO_BACKOFF = Backoff()
"""The policy of tile reads and writes: rides out an object-storage outage of about 45 s (s3fs and botocore add their
own few seconds per attempt; Dask's one task retry doubles it), then gives up, so a file or store that stays
unreachable ends the run within about 90 s."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes / contexts, each once."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says a server did not answer or answered 5xx, so the same call
    may succeed later: connection errors, timeouts, 5xx. A missing object, a permission error or a decode error is
    not.

    >>> is_transient(ConnectionRefusedError(111, "refused")), is_transient(FileNotFoundError("x.tif"))
    (True, False)
    >>> is_transient(OSError("HTTP response code: 503")), is_transient(ValueError("TIFFReadEncodedTile() failed"))
    (True, False)
    """
    for e in _chain(exc):
        if isinstance(e, PERMANENT):
            return False
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if any(c.__name__ in TRANSIENT_TYPES for c in type(e).__mro__):
            return True
        if TRANSIENT_TEXT.search(str(e)):
            return True
    return False


def is_transient_remote(exc: BaseException) -> bool:
    """`is_transient`, widened for reads of a remote file through GDAL, which reports a dropped connection as a failed
    block read ("got 0 bytes") or an unrecognised format: any I/O error of such a read but a 4xx answer, a missing
    object or a permission error may be transient. A corrupt remote file is then retried until the budget is spent.

    >>> is_transient_remote(OSError("'/vsis3/b/pan.tif' not recognized as being in a supported file format"))
    True
    >>> is_transient_remote(OSError("HTTP response code: 404")), is_transient_remote(TypeError("bug"))
    (False, False)
    """
    if is_transient(exc):
        return True
    chain = list(_chain(exc))
    if any(isinstance(e, PERMANENT) or CLIENT_ERROR_TEXT.search(str(e)) for e in chain):
        return False
    return any(isinstance(e, OSError) or any(c.__name__ == "RasterioError" for c in type(e).__mro__) for e in chain)


def error_chain(exc: BaseException) -> str:
    """``Type: message`` of an error and of the errors it came from, on one line, credentials redacted.

    >>> try:
    ...     raise OSError("Read failed") from ValueError("TIFFReadEncodedTile() failed")
    ... except OSError as e:
    ...     error_chain(e)
    'OSError: Read failed <- ValueError: TIFFReadEncodedTile() failed'
    """
    return redact(" <- ".join(" ".join(f"{type(e).__name__}: {e}".split()) for e in _chain(exc)))


def retry_io(fn: Callable[[], T], what: str, policy: Backoff = IO_BACKOFF,
             transient: Callable[[BaseException], bool] = is_transient) -> T:
    """``fn()``, called again after each ``transient`` failure until ``policy.budget_s`` has passed, then
    `RetriesExhausted`; any other error is raised as is, at once. ``what`` names the operation (in the warning logged
    before each retry and in the final error)."""
    start = time.monotonic()
    delays = policy.delays()
    while True:
        try:
            return fn()
        except Exception as exc:
            elapsed = time.monotonic() - start
            if not transient(exc):
                raise
            last = error_chain(exc)[:300]
            if elapsed < policy.budget_s:
                delay = min(next(delays), policy.budget_s - elapsed)
                log.warning("%s: transient error, retrying in %.1f s (%.0f of %.0f s spent): %s", what, delay,
                            elapsed, policy.budget_s, last)
        if elapsed >= policy.budget_s:  # raised outside the handler: the library error (not always picklable) stays
            raise RetriesExhausted(f"{what}: still failing after {elapsed:.0f} s of retries: {last}")
        time.sleep(delay)
