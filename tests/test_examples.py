"""The examples run as users run them (a fresh Python process, bundled sample, ``--preset fast``) and leave their
outputs; the batch example run twice computes nothing the second time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from trapan_cloud.store import open_result, open_store

ROOT = Path(__file__).resolve().parents[1]
IDS = ("trapan-sample-sn6-1", "trapan-sample-sn6-2", "trapan-sample-sn6-3")


def run_example(name: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=400)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


def test_python_api_example_writes_store_and_quicklook(tmp_path):
    import matplotlib.image

    out = tmp_path / "api"
    stdout = run_example("python_api.py", "--out", str(out), "--preset", "fast", "--size", "32", "--tile", "64",
                         "--overlap", "16", cwd=tmp_path)
    assert "complete" in stdout and "quicklook:" in stdout
    assert sorted(p.name for p in (out / "inputs").glob("*.tif")) == ["sn6-1-ms.tif", "sn6-1-pan.tif"]
    assert open_store(str(out / "fused.zarr")).status == "complete"
    ds = open_result(str(out / "fused.zarr"))
    assert ds["fused"].shape == (4, 128, 128) and ds.rio.crs.to_epsg() == 32631
    png = matplotlib.image.imread(out / "quicklook.png")
    assert png.shape[:2] == (128, 128) and float(np.std(png[..., :3])) > 0.05  # an image, not a blank


def test_stac_batch_example_runs_every_item_then_computes_nothing(tmp_path):
    out = tmp_path / "batch"
    args = ("--out", str(out), "--preset", "fast", "--tile", "128", "--overlap", "16", "--json")
    first = run_example("stac_batch.py", *args, str(tmp_path / "first.json"), cwd=tmp_path)
    summary = json.loads((tmp_path / "first.json").read_text())
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 0} and summary["tiles_computed"] == 3
    assert all(i in first for i in IDS)
    assert (out / "catalog" / "catalog.json").exists()
    stores = [out / f"{i}.zarr" for i in IDS]
    assert all(open_store(str(s)).status == "complete" for s in stores)
    before = {p: p.stat().st_mtime_ns for s in stores for p in s.rglob("*") if p.is_file()}

    second = run_example("stac_batch.py", *args, str(tmp_path / "second.json"), cwd=tmp_path)
    summary = json.loads((tmp_path / "second.json").read_text())
    assert summary["counts"] == {"done": 0, "skipped": 3, "failed": 0} and summary["tiles_computed"] == 0
    assert "3 skipped" in second
    assert {p: p.stat().st_mtime_ns for s in stores for p in s.rglob("*") if p.is_file()} == before
