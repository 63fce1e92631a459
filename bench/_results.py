"""Write one dated section of bench/RESULTS.md, leaving the other benchmarks' sections as they are."""

from __future__ import annotations

import datetime as _dt
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is rewritten by the command named in it; dates are UTC.\n"


def machine() -> str:
    """One line naming the machine the numbers come from."""
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def write_section(name: str, command: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``name`` with ``body``, stamped with the date and the command that made it."""
    text = path.read_text() if path.exists() else HEADER
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (f"<!-- {name}:begin -->\n## {name}\n\n_{stamp} — `{command}` — {machine()}_\n\n{body.rstrip()}\n"
             f"<!-- {name}:end -->")
    pattern = re.compile(rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
