"""The `trapan` command driven through click's CliRunner on tiny real COGs cut from the bundled sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from trapan_cloud.cli import main
from trapan_cloud.samples import load_sample, write_sample_item


@pytest.fixture(scope="module")
def item(tmp_path_factory) -> str:
    sample = load_sample("sn6-1").crop("cli", 0, 0, 32)  # 128x128 PAN, 32x32 MS: quick
    return write_sample_item(sample, str(tmp_path_factory.mktemp("cli")))


def test_help_lists_every_command_and_the_exit_codes():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for cmd in ("run", "resume", "status", "evaluate", "baseline", "batch", "demo"):
        assert cmd in result.output
    assert "3 for a run that ended with tiles not done" in result.output.replace("\n", " ")


def test_shared_flags_mean_the_same_in_every_command():
    """``--json`` takes a file (or '-') everywhere; ``--gpu``/``--tile``/``--overwrite`` share one help text."""
    seen: dict[str, set] = {}
    for name, cmd in main.commands.items():
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                seen.setdefault(opt, set()).add((p.is_flag if hasattr(p, "is_flag") else None, p.help))
    for opt in ("--json", "--gpu", "--tile", "--overwrite", "--scheduler", "--preset", "--config"):
        assert len(seen[opt]) == 1, (opt, seen[opt])
    assert not next(iter(seen["--json"]))[0]  # takes a value


def test_run_needs_an_input_and_names_the_flags():
    result = CliRunner().invoke(main, ["run", "--out", "x.zarr"])
    assert result.exit_code == 2 and "--stac" in result.output and "--pan" in result.output


def test_baseline_then_evaluate_round_trip(item, tmp_path):
    out = str(tmp_path / "fs.tif")
    runner = CliRunner()
    result = runner.invoke(main, ["baseline", "--method", "mtf-glp-fs", "--stac", item, "--out", out])
    assert result.exit_code == 0, result.output
    scores_file = tmp_path / "scores.json"
    result = runner.invoke(main, ["evaluate", "--stac", item, "--fused", out, "--json", str(scores_file)])
    assert result.exit_code == 0, result.output
    scores = json.loads(scores_file.read_text())
    assert 0 < scores["HQNR"] <= 1 and scores["HQNR"] == pytest.approx((1 - scores["D_lambda_K"]) * (1 - scores["D_s"]))
    # an existing output is never replaced silently
    again = runner.invoke(main, ["baseline", "--method", "exp", "--stac", item, "--out", out])
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_errors_are_one_paragraph_naming_the_input(item, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--stac", item, "--fused", str(tmp_path / "missing.tif")])
    assert result.exit_code == 1
    assert "missing.tif" in result.output and "Traceback" not in result.output


def test_unknown_sensor_lists_the_known_ones(tmp_path):
    pan = tmp_path / "p.tif"
    result = CliRunner().invoke(main, ["baseline", "--method", "exp", "--pan", str(pan), "--ms", str(pan),
                                       "--sensor", "SPOT6", "--out", str(tmp_path / "o.tif")])
    assert result.exit_code == 1 and "WV3" in result.output


def test_run_status_resume_on_an_embedded_cluster(item, tmp_path, monkeypatch):
    """`trapan run` (classical local method, small tiles) → `status --json` → `resume` computes nothing more."""
    out = str(tmp_path / "run.zarr")
    runner = CliRunner()
    dry = runner.invoke(main, ["run", "--stac", item, "--out", out, "--tile", "64", "--overlap", "32", "--method", "exp", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.output)
    assert plan["tiles"]["total"] == 4 and plan["halo_px"] % 4 == 0
    assert not (tmp_path / "run.zarr").exists()  # a dry run writes nothing
    result = runner.invoke(main, ["run", "--stac", item, "--out", out, "--tile", "64", "--overlap", "32", "--method", "exp",
                                  "--json", "-", "--cog", str(tmp_path / "fused.tif")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # --json -: stdout holds the JSON document alone (progress is on stderr)
    assert payload["tiles_computed"] == 4 and payload["cog"] == str(tmp_path / "fused.tif")
    import rasterio

    from trapan_cloud.store import open_result

    with rasterio.open(tmp_path / "fused.tif") as cog:  # the COG carries the store's pixels and grid
        ds = open_result(out)
        assert cog.crs == ds.rio.crs and cog.transform == ds.rio.transform()
        np.testing.assert_array_equal(cog.read(), ds["fused"].values)
    status = runner.invoke(main, ["status", out, "--json", "-"])
    assert status.exit_code == 0, status.output
    info = json.loads(status.output)
    assert info["status"] == "complete" and info["tiles_done"] == 4 and info["tiles_pending"] == 0
    assert json.loads(runner.invoke(main, ["status", "--out", out, "--json", "-"]).output) == info  # same store
    assert runner.invoke(main, ["status"]).exit_code == 2
    import trapan_cloud.cluster as cluster

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for a resume with nothing to do")

    monkeypatch.setattr(cluster, "get_client", no_cluster)  # a complete store: resume starts no cluster
    again = runner.invoke(main, ["resume", out, "--json", "-"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["tiles_computed"] == 0
    # the same output again without --overwrite is refused before any work
    refused = runner.invoke(main, ["run", "--stac", item, "--out", out, "--tile", "64", "--overlap", "32", "--method", "exp"])
    assert refused.exit_code == 1 and "overwrite" in refused.output


def test_batch_over_a_local_catalog_then_nothing_to_do(tmp_path):
    """`trapan batch` on a catalog of the three bundled SpaceNet tiles (tiny crops, fast preset): every item gets a
    complete store; the second invocation skips every item and computes no tile."""
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location(
        "stac_batch_example", pathlib.Path(__file__).resolve().parents[1] / "examples" / "stac_batch.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    catalog = example.build_sample_catalog(str(tmp_path / "catalog"), size_ms=32)
    args = ["batch", "--catalog", catalog, "--out-prefix", str(tmp_path / "out"), "--preset", "fast",
            "--tile", "128", "--json", "-"]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["counts"]["done"] == 3  # --json -: only JSON on stdout
    assert first.stderr.count("trapan prior: done in ") == 3  # the progress of every item, on stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "catalog.json", "trapan-sample-sn6-1.zarr", "trapan-sample-sn6-2.zarr", "trapan-sample-sn6-3.zarr"]
    second = runner.invoke(main, args)
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["tiles_computed"] == 0 and {i["status"] for i in report["items"]} == {"skipped"}
