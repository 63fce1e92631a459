"""Canaries (issue 15.8): secrets planted in the environment, in a STAC item URL (user-info and a signed query string)
and in s3:// URLs never appear in stdout, stderr, logs or any byte the run stores (every object of the output store,
the STAC item, the exported COG, the JSON report).

The S3 case runs against the real SeaweedFS server of ``s3_server.py``: the item and its COGs are read through
presigned URLs (their signatures and the access key are in the query strings), the store is written to the bucket
with the credentials in the environment only.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlparse

import pytest
from click.testing import CliRunner

from s3_server import ACCESS_KEY, SECRET_KEY, s3_server  # noqa: F401 - session fixture
from trapan_cloud.cli import main
from trapan_cloud.cluster import get_client
from trapan_cloud.runner import run
from trapan_cloud.samples import load_sample, write_sample_item
from trapan_cloud.scene import open_scene
from trapan_cloud.store import export_cog, open_store

PLANTED = {"AWS_ACCESS_KEY_ID": "AKIACANARY0000000001", "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-7d1e0f2b",
           "AWS_SESSION_TOKEN": "canary-session-token-52ab91", "AZURE_STORAGE_ACCESS_KEY": "canary-azure-key-0c4e8a",
           "GS_SECRET_ACCESS_KEY": "canary-gs-secret-9f31c7"}
"""Credentials in the environment of the local run (no S3 there, so the AWS ones are never used)."""
URL_SECRET = "canary-url-secret-3b7f60"
"""Planted in URLs as a password and as a signature."""


def leaks(blob: bytes | str, secrets: list[str]) -> list[str]:
    """The secrets (also URL-quoted) found in ``blob``."""
    data = blob.encode() if isinstance(blob, str) else blob
    return [s for s in secrets if s.encode() in data or quote(s, safe="").encode() in data]


def scan_tree(root: Path, secrets: list[str]) -> dict[str, list[str]]:
    """Every file under ``root`` (or ``root`` itself) that holds a secret."""
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    assert files, root
    return {str(p): found for p in files if (found := leaks(p.read_bytes(), secrets))}


@pytest.fixture(scope="module")
def item(tmp_path_factory) -> str:
    return write_sample_item(load_sample("sn6-1").crop("canary", 0, 0, 32), str(tmp_path_factory.mktemp("item")))


def test_local_run_with_secrets_in_the_environment(item, tmp_path, monkeypatch):
    """The whole CLI run, with every log on (-vv), a COG and a JSON report, on its embedded cluster (the workers
    inherit the planted environment): no planted secret anywhere."""
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    out, cog, report = tmp_path / "run.zarr", tmp_path / "fused.tif", tmp_path / "report.json"
    done = CliRunner().invoke(main, ["-vv", "run", "--stac", item, "--out", str(out), "--method", "exp", "--tile", "64",
                                     "--overlap", "32", "--cog", str(cog), "--json", str(report)])
    assert done.exit_code == 0, done.output[-2000:]
    status = CliRunner().invoke(main, ["-vv", "status", str(out), "--json", "-"])
    assert json.loads(status.stdout)["status"] == "complete"
    secrets = list(PLANTED.values())
    for text in (done.stdout, done.stderr, status.stdout, status.stderr):
        assert not leaks(text, secrets)
    for path in (out, cog, report, Path(item).parent):
        assert scan_tree(path, secrets) == {}


def _refused(item: str, out: str) -> dict[str, list[str]]:
    """Commands whose URLs carry a planted secret: each must be refused."""
    run_ = ["--out", out, "--method", "exp"]
    return {
        "STAC URL with user-info and a signed query": [
            "run", "--stac", f"https://reader:{URL_SECRET}@127.0.0.1:9/item.json?X-Amz-Signature={URL_SECRET}", *run_],
        "unreadable signed STAC URL": [
            "run", "--stac", f"http://127.0.0.1:9/item.json?X-Amz-Credential=AKIA%2F{URL_SECRET}&sig={URL_SECRET}",
            *run_],
        "s3 PAN with user-info": ["run", "--pan", f"s3://AKIA:{URL_SECRET}@bucket/pan.tif", "--ms",
                                  "s3://bucket/ms.tif", "--sensor", "WV2", *run_],
        "s3 output with user-info": ["run", "--stac", item, "--method", "exp", "--out",
                                     f"s3://AKIA:{URL_SECRET}@bucket/run.zarr"],
        "resume of an s3 store with user-info": ["resume", f"s3://AKIA:{URL_SECRET}@bucket/run.zarr"],
        "status of an s3 store with user-info": ["status", f"s3://AKIA:{URL_SECRET}@bucket/run.zarr"],
    }


@pytest.mark.parametrize("case", ["STAC URL with user-info and a signed query", "unreadable signed STAC URL",
                                  "s3 PAN with user-info", "s3 output with user-info",
                                  "resume of an s3 store with user-info", "status of an s3 store with user-info"])
def test_urls_with_secrets_are_refused_without_echo(item, tmp_path, monkeypatch, case):
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["-vv", *_refused(item, str(tmp_path / "o.zarr"))[case]])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not leaks(result.output, [URL_SECRET, *PLANTED.values()])
    assert not (tmp_path / "o.zarr").exists()


# ------------------------------------------------------------------------------------------------ S3, presigned URLs


@pytest.fixture()
def s3_env(s3_server, monkeypatch):  # noqa: F811
    """The server's credentials in the environment (the only place they are given), GDAL's spelling of the endpoint,
    GET instead of HEAD for presigned URLs (a signature is for one method), and unrelated planted secrets."""
    host = urlparse(s3_server.endpoint).netloc
    env = {**s3_server.env, "AWS_S3_ENDPOINT": host, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
           "CPL_VSIL_CURL_USE_HEAD": "NO", "AZURE_STORAGE_ACCESS_KEY": PLANTED["AZURE_STORAGE_ACCESS_KEY"],
           "GS_SECRET_ACCESS_KEY": PLANTED["GS_SECRET_ACCESS_KEY"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return s3_server


def test_s3_run_from_presigned_urls_stores_no_secret(s3_env, tmp_path, caplog, capfd):
    import logging

    import s3fs

    caplog.set_level(logging.DEBUG, logger="trapan_cloud")
    fs = s3fs.S3FileSystem(**s3_env.storage_options, skip_instance_cache=True)
    local = Path(write_sample_item(load_sample("sn6-1").crop("s3canary", 0, 0, 32), str(tmp_path / "item")))
    d = json.loads(local.read_text())
    signed = []
    for asset in d["assets"].values():
        key = f"canary/{asset['href'][2:]}"
        fs.put(str(local.parent / asset["href"][2:]), s3_env.url(key))
        asset["href"] = fs.url(s3_env.url(key), expires=3600)  # ?AWSAccessKeyId=...&Signature=...
        signed.append(asset["href"])
    fs.pipe(s3_env.url("canary/item.json"), json.dumps(d).encode())
    item_url = fs.url(s3_env.url("canary/item.json"), expires=3600)
    signed.append(item_url)
    signatures = [v for url in signed for k, v in parse_qsl(urlparse(url).query) if k == "Signature"]
    assert len(signatures) == 3 and ACCESS_KEY in item_url
    secrets = [SECRET_KEY, ACCESS_KEY, *signatures, PLANTED["AZURE_STORAGE_ACCESS_KEY"],
               PLANTED["GS_SECRET_ACCESS_KEY"]]

    out = s3_env.url("canary/run.zarr")
    client, _ = get_client(n_workers=1)  # the worker inherits the environment set above
    try:
        result = run(open_scene(item_url), out, client=client, tile=64, overlap=32, method="exp",
                     storage_options=s3_env.storage_options)
    finally:
        client.close()
    assert result.complete
    manifest = open_store(out, s3_env.storage_options).manifest
    assert manifest["inputs"]["item_href"] == s3_env.endpoint + "/" + s3_env.bucket + "/canary/item.json"
    keys = fs.find(out)
    assert any(k.endswith((".zattrs", "zarr.json")) for k in keys) and any("/fused/" in k for k in keys)
    stored = {k: found for k in keys if (found := leaks(fs.cat(k), secrets))}
    assert stored == {}
    cog = export_cog(out, str(tmp_path / "fused.tif"), storage_options=s3_env.storage_options)
    assert scan_tree(Path(cog), secrets) == {}
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, caplog.text):
        assert not leaks(text, secrets)
