"""Progress for terminals and log files (issue 16.7) and ``--json -`` through real pipes (issue 16.4).

The commands run as child processes, so stderr is a pipe (not a TTY) exactly as in a log file or a CI job.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time

import cloudpickle
import pytest

from trapan_cloud.progress import PHASES, LineProgress, submit_counting_steps
from trapan_cloud.samples import load_sample, write_sample_item

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/

LINE = re.compile(r"^trapan (\w+): (.*)$")


def trapan(*args: str) -> subprocess.CompletedProcess:
    """The real command in a child process, stdout and stderr kept apart (as a shell pipe sees them)."""
    return subprocess.run([sys.executable, "-m", "trapan_cloud.cli", *args], capture_output=True, text=True,
                          timeout=300)


def progress_lines(stderr: str) -> list[tuple[str, str]]:
    """(phase, text) of every progress line on stderr."""
    return [(m.group(1), m.group(2)) for m in map(LINE.match, stderr.splitlines()) if m]


@pytest.fixture(scope="module")
def item(tmp_path_factory) -> str:
    sample = load_sample("sn6-1").crop("prog", 0, 0, 32)  # 128x128 PAN, 4 x 32x32 MS
    return write_sample_item(sample, str(tmp_path_factory.mktemp("prog")))


def test_piped_commands_print_json_on_stdout_and_one_progress_line_per_event(item, tmp_path):
    """run → status → evaluate → resume → batch, each with ``--json -`` into json.loads; the run's
    stderr is one plain line per progress event (no carriage returns), naming every phase, with the prior's step
    count and the tiles; ``-q`` silences the progress."""
    out, cog = str(tmp_path / "run.zarr"), str(tmp_path / "run.tif")
    run = trapan("run", "--stac", item, "--out", out, "--tile", "64", "--overlap", "16", "--preset", "fast",
                 "--json", "-", "--cog", cog)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["complete"] and result["tiles_computed"] == 4 and result["cog"] == cog
    assert "\r" not in run.stderr and "trapan " not in run.stdout
    lines = progress_lines(run.stderr)
    assert lines and len(lines) == len([x for x in run.stderr.splitlines() if x.startswith("trapan ")])
    assert [p for p in dict.fromkeys(p for p, _ in lines)] == list(PHASES)  # every phase, in order
    for phase in PHASES:  # each starts and ends with a line of its own
        texts = [t for p, t in lines if p == phase]
        assert len(texts) >= 2 and texts[-1].startswith("done in "), (phase, texts)
    prior = [t for p, t in lines if p == "prior"]
    from trapan_cloud.method.config import TrapanConfig

    fast = TrapanConfig.fast()
    total = fast.dam_steps + fast.warmup_steps + fast.prior_steps  # one optimiser step each
    assert prior[0].startswith(f"0/{total} ") and any(t.startswith(f"{total}/{total} (100%)") for t in prior)
    assert any(t.startswith("4/4 (100%)") for p, t in lines if p == "tiles")
    # the rate limit (one step line per 10 s by default) holds: a few seconds of tiles give start, last, end
    assert len([t for p, t in lines if p == "tiles"]) <= 4

    status = trapan("status", out, "--json", "-")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["tiles_done"] == 4 and status.stderr == ""
    evaluate = trapan("evaluate", "--stac", item, "--fused", out, "--json", "-")
    assert evaluate.returncode == 0, evaluate.stderr
    assert 0 < json.loads(evaluate.stdout)["HQNR"] <= 1
    resume = trapan("resume", out, "--json", "-")
    assert resume.returncode == 0, resume.stderr
    assert json.loads(resume.stdout)["tiles_computed"] == 0
    assert [p for p, _ in progress_lines(resume.stderr)] == ["open", "open"]  # nothing to compute: no cluster
    quiet = trapan("-q", "resume", out, "--json", "-")
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout)["tiles_computed"] == 0
    batch = trapan("batch", "--catalog", item, "--out-prefix", str(tmp_path / "batch"), "--tile", "128", "--preset",
                   "fast", "--json", "-")
    assert batch.returncode == 0, batch.stderr
    summary = json.loads(batch.stdout)
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 0} and "\r" not in batch.stderr


def test_line_progress_rate_limits_steps_but_never_the_first_last_or_end():
    out = io.StringIO()
    p = LineProgress(out, interval_s=0.2)
    p.phase("tiles", total=30)
    for _ in range(30):
        p.update()
        time.sleep(0.02)  # 0.6 s: about 3 intervals
    p.phase("finalize")
    p.close(completed=False)
    lines = out.getvalue().splitlines()
    tiles = [x for x in lines if x.startswith("trapan tiles: ")]
    assert tiles[0] == "trapan tiles: 0/30" and tiles[-2].startswith("trapan tiles: 30/30 (100%), ")
    assert tiles[-1].startswith("trapan tiles: done in ")
    assert 3 <= len(tiles) <= 7  # not 32 lines: at most one step line per 0.2 s, plus the start, last and end
    assert re.match(r"trapan tiles: \d+/30 \(\d+%\), [\d.e+]+ tiles/s, ETA ", tiles[1])
    assert lines[-2:] == ["trapan finalize: started", lines[-1]] and lines[-1].startswith("trapan finalize: stopped ")


def test_terminal_display_has_a_row_per_phase_with_its_count():
    """The rich display (what a terminal gets); on a plain stream rich renders it once, when it stops."""
    from trapan_cloud.progress import RichProgress

    out = io.StringIO()
    p = RichProgress(out)
    p.phase("open", detail="item.json")
    p.phase("tiles", total=4)
    for _ in range(4):
        p.update()
    p.phase("finalize")
    p.close(completed=False)
    rows = out.getvalue().splitlines()
    assert [r.split()[0] for r in rows] == ["open", "tiles", "finalize"]
    assert "4/4" in rows[1] and "100%" in rows[1] and "(stopped)" in rows[2] and "\r" not in out.getvalue()


def optimiser_steps(n: int, pause_s: float) -> str:
    """A task that takes ``n`` torch optimiser steps, ``pause_s`` apart."""
    import torch

    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    for _ in range(n):
        opt.zero_grad()
        (w - 1).pow(2).sum().backward()
        opt.step()
        time.sleep(pause_s)
    return "fitted"


def test_worker_step_counts_reach_the_client_while_the_task_runs(client):
    """The prior is fitted in one task on a worker; its optimiser steps arrive as events before the task ends."""
    out = io.StringIO()
    p = LineProgress(out, interval_s=0)
    p.phase("prior", total=20)
    assert submit_counting_steps(client, p, optimiser_steps, 20, 0.1, pure=False) == "fitted"
    p.close()
    counts = [int(m.group(1)) for m in re.finditer(r"trapan prior: (\d+)/20", out.getvalue())]
    assert counts[0] == 0 and counts[-1] == 20
    assert any(0 < c < 20 for c in counts), counts  # a count from the worker while the task was still running
    assert counts == sorted(counts)
    # a plain tqdm-like object gets no events, and the task's result is the same
    assert submit_counting_steps(client, object(), optimiser_steps, 2, 0.0, pure=False) == "fitted"
