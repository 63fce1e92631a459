"""The CLI's contract with scripts and people (issues 15.10, 16.4, 16.5, 16.9), on tiny real COGs, no cluster:

* ``--json -`` puts the JSON document alone on stdout (human text and logs go to stderr);
* ``--ms`` once per band stacks single-band files in the given order, and refuses files on different grids;
* a STAC Collection, ItemCollection or Catalog where an Item is expected is refused, naming ``trapan batch``;
* errors that need no cluster come before any cluster starts: non-zero exit, one line on stderr, no traceback;
* the bad-input table (issue 15): bad pixel types, truncated and missing files, wrong band counts, mismatched grids and
  CRSs, credentials in URLs, tiles too large for memory, halos too small, changed inputs on resume: each is one line
  naming the input, nothing that reads as a complete store, no secret echoed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from cli_output import message_lines
from scene_fixtures import write_cog, write_sample_cogs
from affine import Affine

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

CANARY = "SECRET-CANARY-5f3a9c"
"""A secret planted in URLs of the table: it must never come back in any output."""


@pytest.fixture(scope="module")
def bad(sample, tmp_path_factory) -> dict[str, str]:
    """Real-crop COGs broken one property at a time (written once for the module)."""
    d = tmp_path_factory.mktemp("bad")
    s = sample
    pan, ms = write_sample_cogs(d, s)
    t, mt, crs = s.pan_transform, s.ms_transform, s.crs
    files = {"pan": str(pan), "ms": str(ms)}

    def cog(name: str, array: np.ndarray, transform: Affine = mt, crs_: str = crs, nodata: float | None = 0) -> None:
        files[name] = str(write_cog(d / f"{name}.tif", array, transform, crs_, nodata))

    cog("pan_f32", (s.pan / 2047.0).astype(np.float32), t)
    cog("ms_f32", (s.ms / 2047.0).astype(np.float32))
    cog("ms_u8", (s.ms // 8).astype(np.uint8))
    cog("pan_i32", s.pan.astype(np.int32), t)
    cog("ms_i32", s.ms.astype(np.int32))
    cog("pan_2bands", np.stack([s.pan, s.pan]), t)
    cog("ms_3bands", s.ms[:3])
    cog("ms_far", s.ms, mt * Affine.translation(10_000, 0))
    cog("ms_utm32", s.ms, crs_="EPSG:32632")
    cog("ms_ratio_3_3", s.ms, Affine(t.a * 3.3, 0, t.c, 0, t.e * 3.3, t.f))
    cog("ms_nodata_1", s.ms, nodata=1)
    blob = Path(files["pan"]).read_bytes()
    (d / "pan_truncated.tif").write_bytes(blob[: len(blob) * 3 // 4])
    files["pan_truncated"] = str(d / "pan_truncated.tif")
    (d / "empty.tif").write_bytes(b"")
    files["empty"] = str(d / "empty.tif")
    (d / "notes.txt").write_text("not a raster")
    files["text"] = str(d / "notes.txt")
    (d / "item_not_json.json").write_text("{'id': 1")
    files["item_not_json"] = str(d / "item_not_json.json")
    (d / "feature.json").write_text(json.dumps({"type": "Feature", "id": "f", "geometry": None, "properties": {}}))
    files["feature"] = str(d / "feature.json")
    return files


@pytest.fixture(scope="module")
def finished(item, tmp_path_factory) -> tuple[str, Path]:
    """A complete store of a classical run on copies of the item's COGs (one cluster for the module), and the copy
    of its PAN: a case overwrites that PAN and resumes."""
    import shutil

    from trapan_cloud.cluster import get_client
    from trapan_cloud.runner import run

    d = tmp_path_factory.mktemp("finished")
    src = Path(item).parent
    for f in src.iterdir():
        shutil.copy(f, d / f.name)
    out = str(d / "run.zarr")
    client, _ = get_client(n_workers=1)
    try:
        assert run(str(d / Path(item).name), out, client=client, tile=64, overlap=32, method="exp").complete
    finally:
        client.close()
    return out, next(d.glob("*-pan.tif"))


def _input_cases(item: str, bad: dict[str, str], tmp_path) -> dict[str, tuple[list[str], int, str]]:
    """Bad inputs (issue 15): each is (args, exit status, words the one stderr line must hold)."""
    out = str(tmp_path / "new.zarr")
    files = ["--sensor", "WV2", "--out", out, "--method", "exp", "--tile", "64", "--overlap", "32"]
    pan, ms = bad["pan"], bad["ms"]
    nowhere = tmp_path / "nowhere"
    signed = f"http://127.0.0.1:9/item.json?X-Amz-Signature={CANARY}&X-Amz-Credential=AKIA{CANARY}"
    return {
        "float input, integer output": (["run", "--pan", bad["pan_f32"], "--ms", bad["ms_f32"], *files,
                                         "--dtype", "uint16"], 1, "dtype: the inputs are float32"),
        "PAN uint16, MS uint8": (["run", "--pan", pan, "--ms", bad["ms_u8"], *files], 1, "MS is uint8"),
        "int32 PAN": (["run", "--pan", bad["pan_i32"], "--ms", bad["ms_i32"], *files], 1, "pan_i32.tif"),
        "integer output narrower than the input": (["run", "--pan", pan, "--ms", ms, *files, "--dtype", "uint8"], 1,
                                                   "dtype: uint8 holds values up to 255"),
        "truncated PAN COG": (["run", "--pan", bad["pan_truncated"], "--ms", ms, *files], 1, "pan_truncated.tif"),
        "empty PAN file": (["run", "--pan", bad["empty"], "--ms", ms, *files], 1, "empty.tif"),
        "PAN is a text file": (["run", "--pan", bad["text"], "--ms", ms, *files], 1, "notes.txt"),
        "missing PAN": (["run", "--pan", str(nowhere / "pan.tif"), "--ms", ms, *files], 1, "pan: cannot open"),
        "missing MS": (["run", "--pan", pan, "--ms", str(nowhere / "ms.tif"), *files], 1, "ms: cannot open"),
        "missing MS band file": (["run", "--pan", pan, "--ms", ms, "--ms", str(nowhere / "b.tif"), *files], 1,
                                 "ms[1]: cannot open"),
        "missing STAC item": (["run", "--stac", str(nowhere / "item.json"), *files[2:]], 1,
                              "item: cannot read the STAC item"),
        "STAC item not JSON": (["run", "--stac", bad["item_not_json"], *files[2:]], 1, "is not JSON"),
        "STAC feature without assets": (["run", "--stac", bad["feature"], *files[2:]], 1, "no 'assets'"),
        "STAC URL with user-info and a signed query": (
            ["run", "--stac", f"https://user:{CANARY}@127.0.0.1:9/item.json?sig={CANARY}", *files[2:]], 1,
            "item: 'https://127.0.0.1:9/item.json' carries credentials"),
        "unreadable signed STAC URL": (["run", "--stac", signed, *files[2:]], 1,
                                       "cannot read the STAC item 'http://127.0.0.1:9/item.json'"),
        "PAN URL with user-info": (["run", "--pan", f"s3://AKIA:{CANARY}@bucket/pan.tif", "--ms", ms, *files], 1,
                                   "pan: 's3://bucket/pan.tif' carries credentials"),
        "s3 output with user-info": (["run", "--pan", pan, "--ms", ms, *files[:2], "--out",
                                      f"s3://AKIA:{CANARY}@bucket/x.zarr", *files[4:]], 1,
                                     "out: 's3://bucket/x.zarr' carries credentials"),
        "resume of an s3 store with user-info": (["resume", f"s3://AKIA:{CANARY}@bucket/x.zarr"], 1,
                                                 "out: 's3://bucket/x.zarr' carries credentials"),
        "PAN with 2 bands": (["run", "--pan", bad["pan_2bands"], "--ms", ms, *files], 1, "expected a single PAN band"),
        "MS with 3 bands for WV2": (["run", "--pan", pan, "--ms", bad["ms_3bands"], *files], 1, "3"),
        "PAN and MS do not overlap": (["run", "--pan", pan, "--ms", bad["ms_far"], *files], 1, "do not overlap"),
        "PAN and MS in different CRSs": (["run", "--pan", pan, "--ms", bad["ms_utm32"], *files], 1,
                                         "different CRSs"),
        "non-integer PAN/MS ratio": (["run", "--pan", pan, "--ms", bad["ms_ratio_3_3"], *files], 1,
                                     "expected an integer >= 2"),
        "PAN and MS declare different nodata": (["run", "--pan", pan, "--ms", bad["ms_nodata_1"], *files], 1,
                                                "gdal_edit.py -a_nodata"),
        "unknown sensor": (["run", "--pan", pan, "--ms", ms, *files[:1], "WV9", *files[2:]], 1, "WV9"),
        "huge tile": (["run", "--pan", pan, "--ms", ms, *files[:-4], "--tile", "1000000"], 1,
                      "use a smaller --tile"),
        "overlap below the method's reach": (["run", "--pan", pan, "--ms", ms, *files[:-2], "--overlap", "4"], 1,
                                             "overlap: 4 PAN px is narrower than the 16 px"),
        "--pan without --ms": (["run", "--pan", pan, *files], 2, "--ms"),
        "--stac and --pan together": (["run", "--stac", item, "--pan", pan, "--ms", ms, *files], 2, "--stac"),
    }


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
INPUT_CASES = ("float input, integer output", "PAN uint16, MS uint8", "int32 PAN",
               "integer output narrower than the input", "truncated PAN COG", "empty PAN file", "PAN is a text file",
               "missing PAN", "missing MS", "missing MS band file", "missing STAC item", "STAC item not JSON",
               "STAC feature without assets", "STAC URL with user-info and a signed query",
               "unreadable signed STAC URL", "PAN URL with user-info", "s3 output with user-info",
               "resume of an s3 store with user-info", "PAN with 2 bands", "MS with 3 bands for WV2",
               "PAN and MS do not overlap", "PAN and MS in different CRSs", "non-integer PAN/MS ratio",
               "PAN and MS declare different nodata", "unknown sensor", "huge tile",
               "overlap below the method's reach", "--pan without --ms", "--stac and --pan together")


def _check_one_line_error(result, code: int, words: str, seconds: float) -> None:
    """The contract of every refused input: its exit status, one ``Error:`` line holding ``words``, no traceback, no
    stdout, no planted secret, within 3 s, and no cluster."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert not isinstance(result.exception, AssertionError), "a cluster was started"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert CANARY not in result.output
    assert seconds < 3.0, seconds


@pytest.mark.parametrize("case", CASES)
def test_errors_that_need_no_cluster_come_first(item, tmp_path, no_cluster, case):
    args, code, words = _no_cluster_cases(item, tmp_path)[case]
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, args)
    _check_one_line_error(result, code, words, time.perf_counter() - t0)
    assert (tmp_path / "existing.zarr" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("case", INPUT_CASES)
def test_bad_inputs_are_one_line_before_any_cluster(item, bad, tmp_path, no_cluster, case):
    args, code, words = _input_cases(item, bad, tmp_path)[case]
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, args)
    _check_one_line_error(result, code, words, time.perf_counter() - t0)
    assert not (tmp_path / "new.zarr").exists()


def test_all_nan_ms_with_a_classical_method_is_one_line_after_the_scan(sample, tmp_path):
    """NaN is nodata (the nodata rule): an MS that is NaN everywhere leaves nothing to fuse. That needs the scan, so a
    cluster; the error still is one line, and no store is written."""
    pan = write_cog(tmp_path / "pan.tif", (sample.pan / 2047).astype(np.float32), sample.pan_transform, sample.crs)
    ms = write_cog(tmp_path / "ms.tif", np.full(sample.ms.shape, np.nan, np.float32), sample.ms_transform, sample.crs)
    result = CliRunner().invoke(main, ["run", "--pan", str(pan), "--ms", str(ms), "--sensor", "WV2", "--out",
                                       str(tmp_path / "o.zarr"), "--method", "mtf-glp-fs", "--tile", "64",
                                       "--overlap", "32"])
    assert result.exit_code == 1, result.output
    lines = message_lines(result.stderr)
    assert len(lines) == 1 and "every pixel is nodata" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "o.zarr").exists()


def test_resume_refuses_a_changed_input_naming_it(finished, no_cluster):
    """Overwrite the PAN of a finished run in place (same size, other pixels): resume names the PAN and stops."""
    out, pan = finished
    with rasterio.open(pan, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.write(dst.read() // 2 + 1)
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["resume", out])
    _check_one_line_error(result, 1, f"asset 'pan_analytic' '{pan}'", time.perf_counter() - t0)
    assert "changed since the run started" in result.stderr


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
