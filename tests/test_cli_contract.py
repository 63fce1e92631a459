"""The CLI's contract with scripts and people (issues 15.10, 16.4, 16.5, 16.9), on tiny real COGs, no cluster:

* ``--json -`` puts the JSON document alone on stdout (human text and logs go to stderr);
* ``--ms`` once per band stacks single-band files in the given order, and refuses files on different grids;
* a STAC Collection, ItemCollection or Catalog where an Item is expected is refused, naming ``trapan batch``;
* errors that need no cluster come before any cluster starts: non-zero exit, one line on stderr, no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from scene_fixtures import write_cog, write_sample_cogs

from trapan_cloud.cli import main
from trapan_cloud.errors import InputError
from trapan_cloud.samples import load_sample, write_sample_item


@pytest.fixture(scope="module")
def sample():
    return load_sample("sn6-1").crop("cc", 0, 0, 32)  # 128x128 PAN, 4 x 32x32 MS


@pytest.fixture(scope="module")
def item(sample, tmp_path_factory) -> str:
    return write_sample_item(sample, str(tmp_path_factory.mktemp("cc")))


@pytest.fixture(scope="module")
def fused(item, tmp_path_factory) -> str:
    """A baseline COG of the item (written once for the module)."""
    out = str(tmp_path_factory.mktemp("fused") / "fused.tif")
    result = CliRunner().invoke(main, ["baseline", "--method", "exp", "--stac", item, "--out", out])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def no_cluster(monkeypatch):
    """Any attempt to start or connect a Dask client fails the test."""
    import trapan_cloud.cluster as cluster

    def refuse(*args, **kwargs):
        raise AssertionError("a Dask cluster was started")

    monkeypatch.setattr(cluster, "get_client", refuse)


def trapan(*args: str) -> subprocess.CompletedProcess:
    """The real command in a child process, stdout and stderr kept apart (as a shell pipe sees them)."""
    return subprocess.run([sys.executable, "-m", "trapan_cloud.cli", *args], capture_output=True, text=True,
                          timeout=120)


# ------------------------------------------------------------------------------------------------- --json - (16.4)


def test_status_json_to_stdout_is_only_json(tmp_path):
    from affine import Affine

    from trapan_cloud.store import create_store
    from trapan_cloud.tiling import plan_tiles

    url = str(tmp_path / "run.zarr")
    create_store(url, plan=plan_tiles((40, 36), 4, tile_px=16, halo_px=4), bands=("b", "g", "r"), crs="EPSG:32633",
                 transform=Affine(0.5, 0, 5e5, 0, -0.5, 4.1e6), manifest={"seed": 0})
    piped = trapan("-vv", "status", url, "--json", "-")  # -vv: log lines too, all of them on stderr
    assert piped.returncode == 0, piped.stderr
    info = json.loads(piped.stdout)
    assert info["status"] == "running" and info["tiles_total"] == 9 and info["tiles_done"] == 0


def test_evaluate_json_to_stdout_is_only_json(item, fused):
    piped = trapan("-v", "evaluate", "--stac", item, "--fused", fused, "--json", "-")
    assert piped.returncode == 0, piped.stderr
    scores = json.loads(piped.stdout)
    assert 0 < scores["HQNR"] <= 1


def test_baseline_json_to_stdout_is_only_json(item, tmp_path):
    out = str(tmp_path / "b.tif")
    result = CliRunner().invoke(main, ["baseline", "--method", "exp", "--stac", item, "--out", out, "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"out": out, "method": "exp"}


def test_dry_run_json_file(item, tmp_path):
    plan_file = tmp_path / "plan.json"
    result = CliRunner().invoke(main, ["run", "--stac", item, "--out", str(tmp_path / "o.zarr"), "--tile", "64",
                                       "--overlap", "32", "--method", "exp", "--dry-run", "--json", str(plan_file)])
    assert result.exit_code == 0, result.output
    assert json.loads(plan_file.read_text())["tiles"]["total"] == 4


# ------------------------------------------------------------------------------------------ --ms once per band (16.9)


def _baseline(args: list[str], out) -> np.ndarray:
    result = CliRunner().invoke(main, ["baseline", "--method", "exp", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as src:
        return src.read()


def test_ms_once_per_band_stacks_in_the_given_order(sample, tmp_path):
    (tmp_path / "split").mkdir()
    (tmp_path / "whole").mkdir()
    pan, bands = write_sample_cogs(tmp_path / "split", sample, split_ms=True)
    _, ms = write_sample_cogs(tmp_path / "whole", sample)
    whole = _baseline(["--pan", str(pan), "--ms", str(ms), "--sensor", "WV2"], tmp_path / "whole.tif")
    per_band = [arg for b in bands for arg in ("--ms", str(b))]
    split = _baseline(["--pan", str(pan), *per_band, "--sensor", "WV2"], tmp_path / "split.tif")
    np.testing.assert_array_equal(split, whole)
    reverse = [arg for b in reversed(bands) for arg in ("--ms", str(b))]
    reversed_ = _baseline(["--pan", str(pan), *reverse, "--sensor", "WV2"], tmp_path / "reversed.tif")
    np.testing.assert_array_equal(reversed_, whole[::-1])


def test_ms_bands_on_different_grids_are_refused(sample, tmp_path):
    pan, bands = write_sample_cogs(tmp_path, sample, split_ms=True)
    t = sample.ms_transform
    shifted = write_cog(tmp_path / "shifted.tif", sample.ms[3], t * t.translation(1, 0), sample.crs, sample.nodata)
    args = ["baseline", "--method", "exp", "--pan", str(pan), *[a for b in bands[:3] for a in ("--ms", str(b))],
            "--ms", str(shifted), "--sensor", "WV2", "--out", str(tmp_path / "o.tif")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and "shifted.tif" in result.stderr and "one grid" in result.stderr
    assert not (tmp_path / "o.tif").exists()


# ------------------------------------------------------------------------- containers of items given as an item (15.10)


def _containers(item_path: str) -> dict[str, dict]:
    d = json.loads(open(item_path).read())
    collection = {**d, "type": "Collection", "stac_version": "1.1.0", "description": "x", "license": "other",
                  "extent": {"spatial": {"bbox": [d["bbox"]]}, "temporal": {"interval": [[None, None]]}}}
    return {"Collection": collection,  # with the item's assets: it once ran as an item
            "ItemCollection": {"type": "FeatureCollection", "features": [d]},
            "Catalog": {"type": "Catalog", "id": "cat", "stac_version": "1.1.0", "description": "x", "links": []}}


@pytest.mark.parametrize("kind", ["Collection", "ItemCollection", "Catalog"])
def test_stac_container_given_as_an_item_names_batch(item, tmp_path, kind, no_cluster):
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(_containers(item)[kind]))
    result = CliRunner().invoke(main, ["run", "--stac", str(path), "--out", str(tmp_path / "o.zarr"),
                                       "--method", "exp"])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert f"is a STAC {kind}, not a STAC Item" in result.stderr and "trapan batch --catalog" in result.stderr
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize("kind", ["Collection", "ItemCollection", "Catalog"])
def test_open_scene_refuses_stac_containers_as_dicts_and_pystac_objects(item, kind):
    import pystac

    from trapan_cloud.scene import open_scene

    d = _containers(item)[kind]
    with pytest.raises(InputError, match=f"is a STAC {kind}, not a STAC Item.*trapan batch --catalog"):
        open_scene(d)
    obj = {"Collection": pystac.Collection.from_dict, "Catalog": pystac.Catalog.from_dict,
           "ItemCollection": pystac.ItemCollection.from_dict}[kind](d)
    with pytest.raises(InputError, match=f"is a STAC {kind}, not a STAC Item"):
        open_scene(obj)


# ----------------------------------------------------------------------------- errors before any cluster (16.5)


def _no_cluster_cases(item: str, tmp_path) -> dict[str, tuple[list[str], int, str]]:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"steps": 10,}')
    a_list = tmp_path / "list.json"
    a_list.write_text("[1, 2]")
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"no_such_setting": 1}')
    existing = tmp_path / "existing.zarr"
    existing.mkdir(exist_ok=True)
    (existing / "notes.txt").write_text("keep me")
    run = ["run", "--stac", item, "--out", str(tmp_path / "new.zarr"), "--method", "exp", "--tile", "64",
           "--overlap", "32"]
    return {
        "unknown method": (["run", "--stac", item, "--out", str(tmp_path / "x.zarr"), "--method", "foo"], 2,
                           "--method"),
        "tile 0": ([*run, "--tile", "0"], 2, "--tile"),
        "tile too small for the halo": ([*run, "--tile", "8"], 1, "tile_px"),
        "existing output": ([*run[:4], str(existing), *run[5:]], 1, "already exists"),
        "existing output, --overwrite": ([*run[:4], str(existing), *run[5:], "--overwrite"], 1,
                                         "refusing to overwrite"),
        "cog in a missing folder": ([*run, "--cog", str(tmp_path / "nowhere" / "f.tif")], 1, "does not exist"),
        "cog is a folder": ([*run, "--cog", str(tmp_path)], 1, "is a folder"),
        "json in a missing folder": ([*run, "--json", str(tmp_path / "nowhere" / "r.json")], 1, "does not exist"),
        "json is a folder": ([*run, "--json", str(tmp_path)], 1, "is a folder"),
        "config malformed JSON": ([*run, "--config", str(bad_json)], 1, "not valid JSON"),
        "config not an object": ([*run, "--config", str(a_list)], 1, "expected an object"),
        "config unknown key": ([*run, "--config", str(unknown)], 1, "no_such_setting"),
        "config missing file": ([*run, "--config", str(tmp_path / "none.json")], 2, "--config"),
        "resume without a store": (["resume", str(tmp_path / "none.zarr")], 1, "no Zarr store"),
        "resume of a user folder": (["resume", str(existing)], 1, "no Zarr store"),
        "batch config malformed": (["batch", "--catalog", item, "--out-prefix", str(tmp_path / "b"), "--config",
                                    str(bad_json)], 1, "not valid JSON"),
        "batch tile 0": (["batch", "--catalog", item, "--out-prefix", str(tmp_path / "b"), "--tile", "0"], 2,
                         "--tile"),
        "batch json in a missing folder": (["batch", "--catalog", item, "--out-prefix", str(tmp_path / "b"),
                                            "--json", str(tmp_path / "nowhere" / "r.json")], 1, "does not exist"),
    }


CASES = ("unknown method", "tile 0", "tile too small for the halo", "existing output", "existing output, --overwrite",
         "cog in a missing folder", "cog is a folder", "json in a missing folder", "json is a folder",
         "config malformed JSON", "config not an object", "config unknown key", "config missing file",
         "resume without a store", "resume of a user folder", "batch config malformed", "batch tile 0",
         "batch json in a missing folder")


@pytest.mark.parametrize("case", CASES)
def test_errors_that_need_no_cluster_come_first(item, tmp_path, no_cluster, case):
    args, code, words = _no_cluster_cases(item, tmp_path)[case]
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, args)
    seconds = time.perf_counter() - t0
    assert result.exit_code == code, (result.exit_code, result.output)
    assert not isinstance(result.exception, AssertionError), "a cluster was started"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert seconds < 3.0, seconds
    assert (tmp_path / "existing.zarr" / "notes.txt").read_text() == "keep me"


def test_demo_json_to_stdout_is_the_report(tmp_path, monkeypatch):
    """The demo's plumbing only (the demo itself needs a cluster): --json - prints report.json alone on stdout."""
    import trapan_cloud.jobs as jobs

    def fake_demo(out_dir, preset, scheduler):
        (tmp_path / "report.json").write_text(json.dumps({"title": "demo", "results": {"trapan": {"HQNR": 0.9}}}))
        return "a human table"

    monkeypatch.setattr(jobs, "run_demo", fake_demo)
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"]["trapan"]["HQNR"] == 0.9
    text = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert text.stdout.strip() == "a human table"


def test_usage_errors_are_one_line_and_bare_trapan_shows_the_help():
    runner = CliRunner()
    for args in (["runn"], ["run", "--out", "x.zarr", "--bogus"], ["status"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith("Error: ") and "--help" in result.stderr
    bare = runner.invoke(main, [])
    assert "Usage: " in bare.output and "Commands:" in bare.output
