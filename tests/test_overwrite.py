"""Overwrite safety (issues 15.1, 16.6): ``--overwrite`` / ``overwrite=True`` replaces only what this project wrote.

A store is ours when its Zarr root attributes hold the ``trapan_cloud`` run description and nothing else sits beside
its arrays; a GeoTIFF is ours when it carries the ``TRAPAN_CLOUD_PRODUCT`` metadata tag. Anything else (a user's
folder, a plain file, a GeoTIFF from elsewhere) is refused with one line naming the path, and left untouched. The CLI
checks run before any cluster starts: the client factory is replaced by one that fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from s3_server import s3_server  # noqa: F401  (session fixture)

from trapan_cloud.cli import main
from trapan_cloud.errors import InputError, StoreExistsError
from trapan_cloud.geotiff import PRODUCT_TAG, check_cog_target, is_own_cog, write_cog
from trapan_cloud.samples import load_sample, write_sample_item
from trapan_cloud.store import create_store, foreign_reason
from trapan_cloud.tiling import plan_tiles

CRS = "EPSG:32633"
TRANSFORM = Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 4_100_000.0)


@pytest.fixture(scope="module")
def item(tmp_path_factory) -> str:
    sample = load_sample("sn6-1").crop("ow", 0, 0, 32)  # 128x128 PAN: opening it reads headers only
    return write_sample_item(sample, str(tmp_path_factory.mktemp("ow")))


def new_store(url: str, **kwargs):
    plan = plan_tiles((40, 36), 4, tile_px=16, halo_px=4)
    return create_store(url, plan=plan, bands=("blue", "green", "red"), crs=CRS, transform=TRANSFORM,
                        manifest={"sensor": "WV2", "seed": 0}, **kwargs)


def user_folder(path):
    """A user's folder: a file and a sub-folder with a file."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text("keep me")
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("1,2")
    return path


def assert_user_folder_intact(path):
    assert (path / "notes.txt").read_text() == "keep me"
    assert (path / "sub" / "data.csv").read_text() == "1,2"


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


# ------------------------------------------------------------------------------------------------------ the store


def test_overwrite_replaces_a_trapan_store(tmp_path):
    url = str(tmp_path / "run.zarr")
    store = new_store(url)
    store.run["done"][0, 0] = 1  # something the replacement must not keep
    assert foreign_reason(url) is None
    assert not new_store(url, overwrite=True).done().any()


def test_overwrite_refuses_a_user_folder_and_keeps_it(tmp_path):
    out = user_folder(tmp_path / "mine")
    with pytest.raises(StoreExistsError, match=r"refusing to overwrite .*mine.*not a Zarr store") as info:
        new_store(str(out), overwrite=True)
    assert "\n" not in str(info.value)
    assert_user_folder_intact(out)


def test_overwrite_may_replace_an_empty_folder(tmp_path):
    out = tmp_path / "empty.zarr"
    out.mkdir()
    with pytest.raises(StoreExistsError, match="already exists"):
        new_store(str(out))
    assert not new_store(str(out), overwrite=True).done().any()


def test_overwrite_refuses_a_plain_file(tmp_path):
    out = tmp_path / "fused.zarr"
    out.write_text("not a store")
    with pytest.raises(StoreExistsError, match=r"fused.zarr: it is a file"):
        new_store(str(out), overwrite=True)
    assert out.read_text() == "not a store"


def test_overwrite_refuses_a_foreign_zarr_store(tmp_path):
    import zarr

    url = str(tmp_path / "other.zarr")
    zarr.open_group(url, mode="w").attrs["owner"] = "someone else"
    with pytest.raises(StoreExistsError, match="not a trapan_cloud store"):
        new_store(url, overwrite=True)
    assert zarr.open_group(url, mode="r").attrs["owner"] == "someone else"


def test_overwrite_refuses_a_trapan_store_holding_a_user_file(tmp_path):
    url = tmp_path / "run.zarr"
    new_store(str(url))
    (url / "notes.txt").write_text("keep me")
    with pytest.raises(StoreExistsError, match=r"entries that are not part of the store \(notes.txt\)"):
        new_store(str(url), overwrite=True)
    assert (url / "notes.txt").read_text() == "keep me"


def test_cli_overwrite_keeps_a_user_folder_before_any_cluster(item, tmp_path, no_cluster):
    out = user_folder(tmp_path / "out")
    result = CliRunner().invoke(main, ["run", "--stac", item, "--out", str(out), "--method", "exp", "--tile", "64", "--overlap", "32",
                                       "--overwrite"])
    assert result.exit_code == 1, result.output
    assert one_line(result.stderr) and "refusing to overwrite" in result.stderr and str(out) in result.stderr
    assert_user_folder_intact(out)


def test_cli_without_overwrite_refuses_a_trapan_store_before_any_cluster(item, tmp_path, no_cluster):
    out = str(tmp_path / "run.zarr")
    new_store(out)
    result = CliRunner().invoke(main, ["run", "--stac", item, "--out", out, "--method", "exp", "--tile", "64", "--overlap", "32"])
    assert result.exit_code == 1 and one_line(result.stderr) and "already exists" in result.stderr


# -------------------------------------------------------------------------------------------------------- the COG


def test_our_cogs_carry_the_product_tag(tmp_path):
    path = write_cog(str(tmp_path / "a.tif"), np.ones((2, 16, 16), np.uint16), TRANSFORM, CRS, 0)
    with rasterio.open(path) as src:
        assert PRODUCT_TAG in src.tags()
    assert is_own_cog(path)


def test_cog_target_rules(tmp_path):
    ours = write_cog(str(tmp_path / "ours.tif"), np.ones((1, 16, 16), np.uint16), TRANSFORM, CRS, 0)
    check_cog_target(ours, overwrite=True)  # ours: may be replaced
    with pytest.raises(StoreExistsError, match="already exists; pass --overwrite"):
        check_cog_target(ours, overwrite=False)
    theirs = tmp_path / "theirs.tif"
    with rasterio.open(theirs, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(StoreExistsError, match=r"refusing to overwrite .*theirs.tif.*TRAPAN_CLOUD_PRODUCT"):
        check_cog_target(str(theirs), overwrite=True)
    text = tmp_path / "notes.txt"
    text.write_text("keep me")
    with pytest.raises(StoreExistsError, match="not a GeoTIFF written by trapan_cloud"):
        check_cog_target(str(text), overwrite=True)
    with pytest.raises(StoreExistsError, match="is a folder"):
        check_cog_target(str(tmp_path), overwrite=True)
    with pytest.raises(InputError, match="does not exist"):
        check_cog_target(str(tmp_path / "nowhere" / "f.tif"))
    with pytest.raises(InputError, match="local file path"):
        check_cog_target("s3://bucket/f.tif")


def test_cli_cog_existing_file_is_refused_before_any_cluster(item, tmp_path, no_cluster):
    cog = tmp_path / "fused.tif"
    cog.write_text("a user's file")
    runner = CliRunner()
    base = ["run", "--stac", item, "--out", str(tmp_path / "run.zarr"), "--method", "exp", "--tile", "64", "--overlap", "32",
            "--cog", str(cog)]
    refused = runner.invoke(main, base)
    assert refused.exit_code == 1 and one_line(refused.stderr) and "already exists" in refused.stderr
    forced = runner.invoke(main, [*base, "--overwrite"])
    assert forced.exit_code == 1 and one_line(forced.stderr) and "not a GeoTIFF written by" in forced.stderr
    assert cog.read_text() == "a user's file"
    assert not (tmp_path / "run.zarr").exists()


def test_baseline_overwrite_replaces_only_its_own_cog(item, tmp_path):
    runner = CliRunner()
    out = tmp_path / "b.tif"
    first = runner.invoke(main, ["baseline", "--method", "exp", "--stac", item, "--out", str(out)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, ["baseline", "--method", "exp", "--stac", item, "--out", str(out), "--overwrite"])
    assert again.exit_code == 0, again.output and is_own_cog(str(out))
    user = tmp_path / "user.tif"
    user.write_bytes(b"II*\x00not really")
    refused = runner.invoke(main, ["baseline", "--method", "exp", "--stac", item, "--out", str(user), "--overwrite"])
    assert refused.exit_code == 1 and one_line(refused.stderr) and str(user) in refused.stderr
    assert user.read_bytes() == b"II*\x00not really"


def test_python_run_with_overwrite_refuses_a_user_folder_before_any_cluster(item, tmp_path, no_cluster):
    import trapan_cloud as tc

    out = user_folder(tmp_path / "out")
    with pytest.raises(StoreExistsError, match="refusing to overwrite"):
        tc.run(item, str(out), method="exp", tile=64, overlap=32, overwrite=True)
    assert_user_folder_intact(out)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_overwrite_on_s3_replaces_our_store_and_refuses_a_stranger(s3_server, monkeypatch, zarr_format):  # noqa: F811
    import s3fs

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    options = s3_server.storage_options
    url = s3_server.url(f"overwrite/v{zarr_format}.zarr")
    new_store(url, storage_options=options, zarr_format=zarr_format).run["done"][0, 0] = 1
    assert foreign_reason(url, options) is None
    assert not new_store(url, storage_options=options, zarr_format=zarr_format, overwrite=True).done().any()
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.pipe(f"{url}/notes.txt".split("://", 1)[1], b"keep me")
    with pytest.raises(StoreExistsError, match=r"not part of the store \(notes.txt\)"):
        new_store(url, storage_options=options, overwrite=True)
    assert fs.cat(f"{url}/notes.txt".split("://", 1)[1]) == b"keep me"
    user = s3_server.url("overwrite/user-prefix")
    fs.pipe(f"{user}/a.csv".split("://", 1)[1], b"1,2")
    with pytest.raises(StoreExistsError, match="refusing to overwrite"):
        new_store(user, storage_options=options, overwrite=True)
    assert fs.cat(f"{user}/a.csv".split("://", 1)[1]) == b"1,2"
