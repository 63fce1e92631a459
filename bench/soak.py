"""Soak: each fault scenario of ``tests/test_faults.py``, repeated with random kill moments; writes the "soak" section
of RESULTS.md.

Every trial must end (directly, or after `resume`) with ``fused`` byte-identical to an undisturbed run's, and a
disturbed run must never read as complete before then. Scenarios (TRA-PAN ``fast`` preset, 2 worker processes):

- ``worker-prior`` / ``worker-tiles``: SIGKILL one worker process at a random moment of the prior fit / the tile phase
  (`run` in this process; the nanny restarts the worker and the run completes by itself);
- ``run-prior`` / ``run-tiles`` / ``run-finalize``: SIGKILL the whole ``trapan run`` process group at a random moment
  of that phase, then `resume`;
- ``sigint``: SIGINT to the ``trapan run`` process group (a terminal's ^C) at a random moment of the tile phase: exit
  130, one line on stderr, no traceback; then `resume`;
- ``s3-outage``: inputs and store on a SeaweedFS S3 server that is stopped at a random moment of the tile phase for a
  random 8-30 s, then restarted on the same port and data directory; the run must complete with no failed tile.

A moment is drawn uniformly within the phase's duration in an undisturbed run, counted from when the phase is seen in
the store (polled every 50 ms); the phase the signal really landed in is recorded (a kill can land in the next phase,
or after the end: "missed").

Run: ``.venv/bin/python bench/soak.py [--repeats 10] [--seed 0] [--scenarios a,b,...] [--no-write]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
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
from trapan_cloud.cluster import get_client  # noqa: E402
from trapan_cloud.geotiff import write_cog  # noqa: E402
from trapan_cloud.method.config import TrapanConfig  # noqa: E402
from trapan_cloud.runner import resume, run  # noqa: E402
from trapan_cloud.samples import load_sample  # noqa: E402
from trapan_cloud.scene import open_scene  # noqa: E402
from trapan_cloud.store import open_result, open_store  # noqa: E402

SCENARIOS = ("worker-prior", "worker-tiles", "run-prior", "run-tiles", "run-finalize", "sigint", "s3-outage")
TILE, HALO, CROP = 64, 16, 60
"""16 tiles of a 240 x 240 PAN crop of the SpaceNet-6 sample: phases long enough on 2 shared cores to aim a signal."""
PROGRESS = re.compile(r"\r?tiles \d+/\d+")


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


def compare(out: str, want: np.ndarray, storage_options: dict | None = None) -> str:
    """"identical" when the store is complete and its ``fused`` equals ``want`` byte for byte (read in this process)."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        got = np.asarray(open_result(out, storage_options)["fused"].values)
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"different dtype/shape {got.dtype}{got.shape}"
    n = int((got != want).sum())
    return "identical" if n == 0 else f"different in {n} values"


class Soak:
    """The inputs, the undisturbed reference and a shared 2-worker cluster for resumes and in-process runs."""

    def __init__(self, work: Path, rng: random.Random) -> None:
        self.work, self.rng = work, rng
        s = load_sample("sn6-1").crop("soak", 0, 0, CROP)
        self.pan = write_cog(str(work / "pan.tif"), s.pan, s.pan_transform, s.crs, 0, blocksize=64)
        self.ms = write_cog(str(work / "ms.tif"), s.ms, s.ms_transform, s.crs, 0, s.band_names, blocksize=64)
        self.client, _ = get_client(n_workers=2)
        res = run(self.scene(), str(work / "reference.zarr"), client=self.client, **self.kwargs())
        assert res.complete, res.errors
        self.want = np.asarray(open_result(str(work / "reference.zarr"))["fused"].values)
        self.seconds = dict(res.seconds)
        self.s3: Any = None

    def scene(self, pan: str | None = None, ms: str | None = None) -> Any:
        return open_scene(pan=pan or self.pan, ms=ms or self.ms, sensor="WV2")

    @staticmethod
    def kwargs() -> dict:
        return {"config": TrapanConfig.fast(), "tile": TILE, "overlap": HALO}

    def draw(self, phase_name: str) -> float:
        """A moment within the phase's undisturbed duration."""
        key = {"fitting prior": "prior", "tiles": "tiles", "finalize": "finalize"}[phase_name]
        return self.rng.uniform(0, self.seconds[key])

    def out(self, scenario: str, trial: int) -> str:
        return str(self.work / f"{scenario}-{trial}.zarr")

    def worker_kill(self, scenario: str, trial: int) -> Trial:
        """SIGKILL one worker process at a random moment of the phase; the run itself must complete identically."""
        want = "fitting prior" if scenario == "worker-prior" else "tiles"
        out, delay = self.out(scenario, trial), self.draw(want)
        finished = threading.Event()
        landed: list[str] = []

        def kill_one() -> None:
            os.kill(self.rng.choice(sorted(self.client.run(os.getpid).values())), signal.SIGKILL)

        watcher = threading.Thread(target=lambda: landed.append(aim(out, want, delay, lambda: not finished.is_set(),
                                                                    kill_one)))
        watcher.start()
        try:
            res = run(self.scene(), out, client=self.client, **self.kwargs())
        finally:
            finished.set()
            watcher.join()
        outcome = compare(out, self.want) if res.complete else f"incomplete: {res.errors}"
        return Trial(scenario, trial, delay, landed[0], outcome)

    def cli_run(self, out: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "trapan_cloud.cli", "run", "--pan", self.pan, "--ms", self.ms, "--sensor", "WV2",
               "--out", out, "--tile", str(TILE), "--overlap", str(HALO), "--preset", "fast"]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    def run_kill(self, scenario: str, trial: int) -> Trial:
        """SIGKILL (or SIGINT) the ``trapan run`` process group at a random moment of the phase, then resume."""
        want = {"run-prior": "fitting prior", "run-tiles": "tiles", "run-finalize": "finalize",
                "sigint": "tiles"}[scenario]
        sig = signal.SIGINT if scenario == "sigint" else signal.SIGKILL
        out, delay = self.out(scenario, trial), self.draw(want)
        proc = self.cli_run(out)
        landed = aim(out, want, delay, lambda: proc.poll() is None, lambda: os.killpg(proc.pid, sig))
        _, err = proc.communicate(timeout=600)
        if landed == "missed":
            outcome = compare(out, self.want) if proc.returncode == 0 else f"exit {proc.returncode}: {err[-300:]}"
            return Trial(scenario, trial, delay, landed, outcome)
        if sig == signal.SIGINT:
            lines = [ln for ln in PROGRESS.sub("", err).splitlines() if ln.strip()]
            if proc.returncode != 130 or "Traceback" in err or len(lines) != 1:
                return Trial(scenario, trial, delay, landed, f"^C gave exit {proc.returncode} and "
                                                             f"{len(lines)} stderr line(s): {err[-300:]!r}")
        elif proc.returncode != -signal.SIGKILL:
            return Trial(scenario, trial, delay, landed, f"not killed: exit {proc.returncode}")
        if landed != "complete":
            try:
                open_result(out)
                return Trial(scenario, trial, delay, landed, "a killed run read as complete")
            except Exception:  # noqa: BLE001 - IncompleteRunError (or no store yet): as it should be
                pass
        if phase(out) == "none":  # killed before the store existed: a fresh run is the way on
            res = run(self.scene(), out, client=self.client, **self.kwargs())
        else:
            res = resume(out, client=self.client)
        outcome = compare(out, self.want) if res.complete else f"resume incomplete: {res.errors}"
        return Trial(scenario, trial, delay, landed, outcome)

    @contextlib.contextmanager
    def on_s3(self) -> Iterator[None]:
        """A SeaweedFS server holding the inputs, its credentials in this process's environment."""
        import s3fs
        from s3_server import seaweedfs_s3

        with seaweedfs_s3(self.work / "seaweedfs") as s3:
            env = {**s3.env, "AWS_S3_ENDPOINT": urlparse(s3.endpoint).netloc, "AWS_HTTPS": "NO",
                   "AWS_VIRTUAL_HOSTING": "FALSE"}
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            fs = s3fs.S3FileSystem(**s3.storage_options, skip_instance_cache=True)
            fs.put(self.pan, s3.url("in/pan.tif"))
            fs.put(self.ms, s3.url("in/ms.tif"))
            client, _ = get_client(n_workers=2)  # its workers inherit the environment
            self.s3, self.s3_client = s3, client
            try:
                yield
            finally:
                client.close()
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def s3_outage(self, scenario: str, trial: int) -> Trial:
        """Stop the S3 server at a random moment of the tile phase for 8-30 s; the run must complete identically."""
        s3, options = self.s3, self.s3.storage_options
        out, delay, outage = s3.url(f"{scenario}-{trial}.zarr"), self.draw("tiles"), self.rng.uniform(8, 30)
        finished = threading.Event()
        landed: list[str] = []

        def outage_now() -> None:
            s3.stop()
            time.sleep(outage)
            s3.start()

        watcher = threading.Thread(target=lambda: landed.append(aim(out, "tiles", delay,
                                                                    lambda: not finished.is_set(), outage_now,
                                                                    options)))
        watcher.start()
        try:
            res = run(self.scene(s3.url("in/pan.tif"), s3.url("in/ms.tif")), out, client=self.s3_client,
                      storage_options=options, **self.kwargs())
            outcome = compare(out, self.want, options) if res.complete else f"incomplete: {res.errors}"
        except Exception as exc:  # noqa: BLE001 - the tally records why
            outcome = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            finished.set()
            watcher.join()
        return Trial(scenario, trial, outage, landed[0], outcome, outage_s=outage)


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
    notes = [f"Scene: SpaceNet-6 WV2 sn6-1, PAN {CROP * 4}x{CROP * 4}, tile {TILE} px, halo {HALO} px (16 tiles); "
             f"TRA-PAN `fast`, 2 worker processes x 1 thread. Undisturbed phases: "
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
                    fn = (soak.worker_kill if scenario.startswith("worker") else
                          soak.s3_outage if scenario == "s3-outage" else soak.run_kill)
                    try:
                        trial = fn(scenario, i)
                    except Exception as exc:  # noqa: BLE001 - a crash of the harness is a failure to tally too
                        trial = Trial(scenario, i, 0.0, "?", f"harness: {type(exc).__name__}: {exc}"[:300])
                    trial.seconds = time.monotonic() - t0
                    trials.append(trial)
                    print(json.dumps(asdict(trial)), flush=True)
        seconds = soak.seconds
        soak.client.close()
    body = table(trials, seconds)
    print(body)
    if not args.no_write:
        write_section("soak", f".venv/bin/python bench/soak.py --repeats {args.repeats} --seed {args.seed}", body)


if __name__ == "__main__":
    main()
