"""Object storage end to end on a real S3-compatible server on loopback (SeaweedFS): COGs read over S3 by GDAL,
the run store written to S3 by s3fs, then a resume from S3 that recomputes exactly the tiles not marked done.
Credentials reach every client only through the environment (never arguments, manifests or logs)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

import numpy as np
import pytest

from s3_server import ACCESS_KEY, SECRET_KEY, s3_server  # noqa: F401 - session fixture
from trapan_cloud.cluster import get_client
from trapan_cloud.runner import resume, run
from trapan_cloud.geotiff import write_cog
from trapan_cloud.samples import load_sample
from trapan_cloud.scene import open_scene
from trapan_cloud.store import open_result, open_store


@pytest.fixture()
def s3_env(s3_server, monkeypatch):  # noqa: F811
    """The server's credentials in the environment, plus GDAL's spelling of the endpoint (GDAL reads /vsis3/)."""
    host = urlparse(s3_server.endpoint).netloc
    env = {**s3_server.env, "AWS_S3_ENDPOINT": host, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return s3_server


def upload_sample_cogs(server, tmp_path) -> tuple[str, str]:
    """A real WorldView-2 crop as two local COGs, uploaded to the bucket; returns their s3:// URLs."""
    import s3fs

    s = load_sample("sn6-1").crop("s3", 0, 0, 48)  # PAN 192 x 192, MS 48 x 48
    pan = write_cog(str(tmp_path / "pan.tif"), s.pan, s.pan_transform, s.crs, 0, blocksize=64)
    ms = write_cog(str(tmp_path / "ms.tif"), s.ms, s.ms_transform, s.crs, 0, s.band_names, blocksize=64)
    fs = s3fs.S3FileSystem(**server.storage_options, skip_instance_cache=True)
    urls = server.url("inputs/pan.tif"), server.url("inputs/ms.tif")
    fs.put(pan, urls[0])
    fs.put(ms, urls[1])
    return urls


def test_run_reads_cogs_from_s3_writes_and_resumes_a_store_on_s3(s3_env, tmp_path):
    import s3fs

    pan_url, ms_url = upload_sample_cogs(s3_env, tmp_path)
    scene = open_scene(pan=pan_url, ms=ms_url, sensor="WV2")
    assert scene.attrs["ratio"] == 4 and scene["pan"].shape == (192, 192)
    out = s3_env.url("runs/scene.zarr")
    options = s3_env.storage_options  # the endpoint only: credentials come from the environment
    client, _ = get_client(n_workers=2)  # workers inherit the AWS_* environment set above
    try:
        first = run(scene, out, client=client, tile=64, overlap=32, method="exp", storage_options=options)
        assert first.complete and first.tiles_computed == 9
        want = np.asarray(open_result(out, options)["fused"].values)
        assert want.shape == (4, 192, 192) and (want > 0).all()

        # simulate a crash that lost the done flags of two tiles, then resume from the store alone
        store = open_store(out, options)
        flags = store.run["done"]
        flags[0, 1] = 0
        flags[2, 2] = 0
        info = dict(store.group.attrs["trapan_cloud"])
        info["status"] = "running"
        store.group.attrs["trapan_cloud"] = info
        with pytest.raises(Exception, match="complete"):
            open_result(out, options)  # an incomplete store never looks complete
        again = resume(out, client=client, storage_options=options)
    finally:
        client.close()
    assert again.complete and again.tiles_done_before == 7 and again.tiles_computed == 2
    got = np.asarray(open_result(out, options)["fused"].values)
    np.testing.assert_array_equal(got, want)

    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    for key in fs.find(out):
        if key.endswith((".json", ".zattrs", ".zarray", ".zgroup")):
            blob = fs.cat(key)
            assert ACCESS_KEY.encode() not in blob and SECRET_KEY.encode() not in blob, key
    manifest = json.dumps(open_store(out, options).manifest)
    assert "s3://" in manifest and SECRET_KEY not in manifest and ACCESS_KEY not in manifest
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRET_KEY  # the environment was the only credential path
