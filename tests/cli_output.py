"""What a `trapan` command prints on stderr, for tests that check "one line per error"."""

from __future__ import annotations

import re

PROGRESS_LINE = re.compile(r"trapan (open|cluster|scan|prior|tiles|finalize|export): ")
"""A line of the progress a non-TTY stderr shows once a run's checks passed and its cluster is up."""


def message_lines(stderr: str) -> list[str]:
    """The non-blank lines of ``stderr`` that are not progress lines."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS_LINE.match(line)]
