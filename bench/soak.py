"""Soak: each fault scenario of ``tests/test_faults.py``, repeated with random kill moments; writes the "soak" section
of RESULTS.md.

Every trial is a real ``trapan run`` process (its own embedded cluster of 2 worker processes, TRA-PAN ``fast``) that
must end (directly, or after ``trapan resume``) with ``fused`` byte-identical to an undisturbed run's; a disturbed run
must never read as complete before then, and any ``trapan`` process still running after ``TIMEOUT_S`` counts as a
hang. Scenarios:

- ``worker-prior`` / ``worker-tiles``: SIGKILL one worker process of the run (the busiest / a random one) at a random
  moment of the prior fit / the tile phase; the nanny restarts it and the run must complete by itself (exit 0);
- ``run-prior`` / ``run-tiles`` / ``run-finalize``: SIGKILL the whole ``trapan run`` process group at a random moment
  of that phase, then ``trapan resume`` (a fresh ``trapan run`` if no store existed yet);
- ``sigint``: SIGINT to the ``trapan run`` process group (a terminal's ^C) at a random moment of the tile phase: exit
  130, one line on stderr, no traceback; then ``trapan resume``;
- ``s3-outage``: inputs and store on a SeaweedFS S3 server (credentials in the environment) that is stopped at a
  random moment of the tile phase for a random 8-30 s, then restarted on the same port and data directory; the run
  must complete by itself with no failed tile.

A moment is drawn uniformly within the phase's duration in the undisturbed run, counted from when the phase is seen in
the store (polled every 50 ms); the phase the store was in just before the signal is recorded (a signal can land in
the next phase, or after the end: "missed", when the run must have completed identically).

Run: ``.venv/bin/python bench/soak.py [--repeats 10] [--seed 0] [--scenarios a,b,...] [--no-write]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from _results import write_section  # noqa: E402
from cli_output import message_lines  # noqa: E402
from trapan_cloud.errors import IncompleteRunError  # noqa: E402
from trapan_cloud.geotiff import write_cog  # noqa: E402
from trapan_cloud.samples import load_sample  # noqa: E402
from trapan_cloud.store import open_result, open_store  # noqa: E402

SCENARIOS = ("worker-prior", "worker-tiles", "run-prior", "run-tiles", "run-finalize", "sigint", "s3-outage")
TILE, HALO, CROP = 64, 16, 48
"""9 tiles of a 192 x 192 PAN crop of the SpaceNet-6 sample: phases long enough on 2 shared cores to aim a signal."""
TIMEOUT_S = 300
"""A ``trapan`` process still running after this long is a hang (an undisturbed run takes well under a minute)."""
@dataclass
class Trial:
    """One disturbed run and how it ended."""

    scenario: str
    trial: int
    delay_s: float
    """Drawn delay after the phase was first seen (the outage length for ``s3-outage``: ``outage_s``)."""
    landed: str
    """Phase the store was in when the signal was sent ("missed": the run had already ended)."""
    outcome: str
    """"identical", or why not."""
    outage_s: float = 0.0
    seconds: float = 0.0


def phase(out: str, storage_options: dict | None = None) -> str:
    """Where a run is, read from its store: "none", "fitting prior", "tiles", "finalize" or "complete"."""
    try:
        store = open_store(out, storage_options)
        status, done = store.status, store.done()
    except Exception:  # noqa: BLE001 - not created yet, or half-written at this moment
        return "none"
    if status == "running":
        return "finalize" if done.all() else "tiles"
    return status


def wait_phase(out: str, want: str, alive: Callable[[], bool], storage_options: dict | None = None,
               timeout_s: float = 600) -> str:
    """Poll until the run reaches phase ``want`` or a later one (returned), or has ended ("missed")."""
    order = ["none", "fitting prior", "tiles", "finalize", "complete"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = phase(out, storage_options)
        if order.index(now) >= order.index(want):
            return now
        if not alive():
            return "missed"
        time.sleep(0.05)
    raise TimeoutError(f"{out}: phase {want!r} not reached in {timeout_s} s")


def aim(out: str, want: str, delay_s: float, alive: Callable[[], bool], fire: Callable[[], None],
        storage_options: dict | None = None) -> str:
    """Wait for phase ``want``, then ``delay_s``, then ``fire()``; the phase it landed in."""
    if wait_phase(out, want, alive, storage_options) == "missed":
        return "missed"
    time.sleep(delay_s)
    if not alive():
        return "missed"
    landed = phase(out, storage_options)
    fire()
    return landed


def read_fused(out: str, storage_options: dict | None = None) -> np.ndarray:
    """A complete store's ``fused`` DN, read in this process (`IncompleteRunError` for any other)."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        return np.asarray(open_result(out, storage_options)["fused"].values)


def compare(out: str, want: np.ndarray, storage_options: dict | None = None) -> str:
    """"identical" when the store is complete and its ``fused`` equals ``want`` byte for byte."""
    try:
        got = read_fused(out, storage_options)
    except IncompleteRunError as exc:
        return f"not complete: {exc}"[:300]
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"different dtype/shape {got.dtype}{got.shape}"
    n = int((got != want).sum())
    return "identical" if n == 0 else f"different in {n} values"


class Soak:
    """The inputs, the undisturbed reference and the trials: every run and resume is a ``trapan`` process of its own
    (its own embedded 2-worker cluster), killed by process group if it outlives ``TIMEOUT_S`` (a hang is a failure)."""

    def __init__(self, work: Path, rng: random.Random) -> None:
        self.work, self.rng = work, rng
        s = load_sample("sn6-1").crop("soak", 0, 0, CROP)
        self.pan = write_cog(str(work / "pan.tif"), s.pan, s.pan_transform, s.crs, 0, blocksize=64)
        self.ms = write_cog(str(work / "ms.tif"), s.ms, s.ms_transform, s.crs, 0, s.band_names, blocksize=64)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.s3: Any = None
        self.options: dict | None = None
        ref = str(work / "reference.zarr")
        rc, err = self.finish(self.start(self.run_args(ref, "--json", str(work / "reference.json"))))
        assert rc == 0, err
        self.want = np.asarray(read_fused(ref))
        self.seconds = json.loads((work / "reference.json").read_text())["seconds"]

    def run_args(self, out: str, *extra: str) -> list[str]:
        pan, ms = (self.s3.url("in/pan.tif"), self.s3.url("in/ms.tif")) if self.s3 else (self.pan, self.ms)
        return ["run", "--pan", pan, "--ms", ms, "--sensor", "WV2", "--out", out, "--tile", str(TILE), "--overlap",
                str(HALO), "--preset", "fast", *extra]

    def start(self, args: list[str]) -> subprocess.Popen:
        """``trapan ARGS`` in a new process group (as a terminal runs a job), stdout and stderr to files."""
        stem = self.work / f"log-{time.monotonic_ns()}"
        out, log = open(f"{stem}.out", "w"), open(f"{stem}.err", "w+")
        proc = subprocess.Popen([sys.executable, "-m", "trapan_cloud.cli", *args], stdout=out, stderr=log, text=True,
                                start_new_session=True, env=self.env)
        proc.log = log  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen) -> tuple[int | str, str]:
        """Exit status (or "hang", after killing its group) and output of a started process."""
        try:
            rc: int | str = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = "hang"
        proc.log.seek(0)  # type: ignore[attr-defined]
        return rc, proc.log.read()  # type: ignore[attr-defined]

    def draw(self, phase_name: str) -> float:
        """A moment within the phase's undisturbed duration."""
        key = {"fitting prior": "prior", "tiles": "tiles", "finalize": "finalize"}[phase_name]
        return self.rng.uniform(0, self.seconds[key])

    def worker_pid(self, proc: subprocess.Popen, busiest: bool) -> int | None:
        """A worker process of a ``trapan run``: the busiest one (CPU over 0.3 s) or a random one; None when it has
        none left (the run is closing its cluster)."""
        import psutil

        workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        if not workers:
            return None
        if busiest:
            for p in workers:
                p.cpu_percent(None)
            time.sleep(0.3)
            return max(workers, key=lambda p: p.cpu_percent(None)).pid
        return self.rng.choice(workers).pid

    def trial(self, scenario: str, i: int) -> Trial:
        """One disturbed run, judged; see the module docstring."""
        want = {"worker-prior": "fitting prior", "run-prior": "fitting prior", "run-finalize": "finalize"}.get(
            scenario, "tiles")
        out = self.s3.url(f"{scenario}-{i}.zarr") if self.s3 else str(self.work / f"{scenario}-{i}.zarr")
        delay, outage = self.draw(want), self.rng.uniform(8, 30) if scenario == "s3-outage" else 0.0
        proc = self.start(self.run_args(out))

        missed: list[bool] = []

        def fire() -> None:
            if scenario.startswith("worker"):
                pid = self.worker_pid(proc, busiest=scenario == "worker-prior")
                if pid is None:
                    missed.append(True)
                else:
                    os.kill(pid, signal.SIGKILL)
            elif scenario == "s3-outage":
                self.s3.stop()
                time.sleep(outage)
                self.s3.start()
            else:
                os.killpg(proc.pid, signal.SIGINT if scenario == "sigint" else signal.SIGKILL)

        landed = aim(out, want, delay, lambda: proc.poll() is None, fire, self.options)
        landed = "missed" if missed else landed
        rc, err = self.finish(proc)
        result = functools.partial(Trial, scenario, i, delay, landed, outage_s=outage)
        if rc == "hang":
            return result(f"hang: no exit within {TIMEOUT_S} s ({phase(out, self.options)}): {err[-300:]!r}")
        if scenario.startswith(("worker", "s3")) or landed == "missed":  # the run must complete by itself
            return result(compare(out, self.want, self.options) if rc == 0 else f"exit {rc}: {err[-300:]!r}")
        if scenario == "sigint":
            lines = message_lines(err)  # the progress lines aside
            if landed == "complete" and rc == 0 and not lines:  # the ^C came after the work, as the command ended
                return result(compare(out, self.want))
            if rc != 130 or "Traceback" in err or len(lines) != 1:
                return result(f"^C gave exit {rc} and {len(lines)} stderr line(s): {err[-300:]!r}")
        elif rc != -signal.SIGKILL:
            return result(f"not killed: exit {rc}")
        if landed != "complete" and phase(out) in ("fitting prior", "tiles", "finalize"):
            try:
                read_fused(out)
                return result("a killed run read as complete")
            except IncompleteRunError:
                pass
        args = ["resume", out] if phase(out) != "none" else self.run_args(out)  # no store yet: a fresh run
        rc, err = self.finish(self.start(args))
        return result(compare(out, self.want) if rc == 0 else f"{args[0]} gave exit {rc}: {err[-300:]!r}")

    @contextlib.contextmanager
    def on_s3(self) -> Iterator[None]:
        """A SeaweedFS server holding the inputs; its credentials in the environment of the runs (never arguments)."""
        import s3fs
        from s3_server import seaweedfs_s3

        with seaweedfs_s3(self.work / "seaweedfs") as s3:
            env = {**s3.env, "AWS_S3_ENDPOINT": urlparse(s3.endpoint).netloc, "AWS_HTTPS": "NO",
                   "AWS_VIRTUAL_HOSTING": "FALSE"}
            saved = dict(os.environ)
            os.environ.update(env)
            self.env.update(env)
            fs = s3fs.S3FileSystem(**s3.storage_options, skip_instance_cache=True)
            fs.put(self.pan, s3.url("in/pan.tif"))
            fs.put(self.ms, s3.url("in/ms.tif"))
            self.s3, self.options = s3, s3.storage_options
            try:
                yield
            finally:
                self.s3, self.options = None, None
                os.environ.clear()
                os.environ.update(saved)
                self.env = {**os.environ, "PYTHONPATH": str(ROOT)}


def table(trials: list[Trial], seconds: dict[str, float]) -> str:
    """The RESULTS.md body: per scenario, runs, identical, where the signals landed, and every failure."""
    rows = ["| scenario | runs | completed identical | signal landed in (phase: runs) | failures |",
            "|---|---|---|---|---|"]
    failures = []
    by = collections.defaultdict(list)
    for t in trials:
        by[t.scenario].append(t)
    for name, ts in by.items():
        ok = sum(t.outcome == "identical" for t in ts)
        landed = ", ".join(f"{k}: {v}" for k, v in sorted(collections.Counter(t.landed for t in ts).items()))
        bad = [t for t in ts if t.outcome != "identical"]
        failures += [f"- {t.scenario} #{t.trial} (landed in {t.landed}, delay {t.delay_s:.2f} s): {t.outcome}"
                     for t in bad]
        rows.append(f"| {name} | {len(ts)} | {ok} | {landed} | {len(bad)} |")
    mean_outage = [t.outage_s for t in trials if t.scenario == "s3-outage"]
    notes = [f"Scene: SpaceNet-6 WV2 sn6-1, PAN {CROP * 4}x{CROP * 4}, tile {TILE} px, halo {HALO} px (9 tiles); "
             f"TRA-PAN `fast`; every run and resume a `trapan` process with 2 worker processes x 1 thread. "
             f"Undisturbed phases: "
             + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + "."]
    if mean_outage:
        notes.append(f"S3 outages: {min(mean_outage):.0f}-{max(mean_outage):.0f} s (mean "
                     f"{sum(mean_outage) / len(mean_outage):.0f} s).")
    return "\n".join(rows) + "\n\n" + " ".join(notes) + "\n\n" + ("Failures:\n" + "\n".join(failures) if failures
                                                               else "No failures.") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-write", action="store_true", help="Print the table; leave RESULTS.md alone.")
    args = parser.parse_args()
    chosen = [s for s in args.scenarios.split(",") if s]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; choose from {', '.join(SCENARIOS)}")
    rng = random.Random(args.seed)
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="trapan-soak-") as tmp:
        soak = Soak(Path(tmp), rng)
        for scenario in chosen:
            with soak.on_s3() if scenario == "s3-outage" else contextlib.nullcontext():
                for i in range(args.repeats):
                    t0 = time.monotonic()
                    try:
                        trial = soak.trial(scenario, i)
                    except Exception as exc:  # noqa: BLE001 - a crash of the harness is a failure to tally too
                        trial = Trial(scenario, i, 0.0, "?", f"harness: {type(exc).__name__}: {exc}"[:300])
                    trial.seconds = time.monotonic() - t0
                    trials.append(trial)
                    print(json.dumps(asdict(trial)), flush=True)
        seconds = soak.seconds
    body = table(trials, seconds)
    print(body)
    if not args.no_write:
        write_section("soak", f".venv/bin/python bench/soak.py --repeats {args.repeats} --seed {args.seed}", body)


if __name__ == "__main__":
    main()
