"""`run_batch` on real data: a local STAC catalog of the three bundled SpaceNet tiles (tiny COGs), on a real
LocalCluster, with a classical method so that the batch logic (not the network) is what takes the time.

Covered: every store completes; a second call computes nothing (no file touched); an interrupted store is resumed;
a broken asset fails its item only; an ItemCollection file; a nested catalog; a STAC API search against a
loopback stand-in (http.server serving the landing page and /search).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pystac
import pytest

from trapan_cloud.batch import BatchResult, resolve_items, run_batch, safe_item_id, store_url
from trapan_cloud.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
RUN = {"method": "exp", "tile": 64, "overlap": 16}
"""Per-item run settings: 32 MS px crops → 128² PAN → 4 tiles per item."""
IDS = ["trapan-sample-sn6-1", "trapan-sample-sn6-2", "trapan-sample-sn6-3"]


def _example():
    spec = importlib.util.spec_from_file_location("stac_batch_example", ROOT / "examples" / "stac_batch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> str:
    return _example().build_sample_catalog(str(tmp_path_factory.mktemp("stac") / "catalog"), size_ms=32)


@pytest.fixture(scope="module")
def client():
    from trapan_cloud.cluster import get_client

    c, owned = get_client(n_workers=1)
    assert owned
    yield c
    c.close()


@pytest.fixture(scope="module")
def first_run(catalog, client, tmp_path_factory) -> tuple[str, BatchResult]:
    out = str(tmp_path_factory.mktemp("out"))
    return out, run_batch(catalog, out, client=client, **RUN)


def snapshot(folder: str) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in Path(folder).rglob("*") if p.is_file()}


def test_every_item_gets_a_complete_store(first_run):
    from trapan_cloud.store import open_result, open_store

    out, result = first_run
    assert [o.item_id for o in result.items] == IDS
    assert [o.status for o in result.items] == ["done"] * 3, result.table()
    assert all(o.tiles == o.tiles_total == 4 and not o.resumed and o.error is None for o in result.items)
    for item_id in IDS:
        url = store_url(out, item_id)
        assert os.path.isdir(url) and open_store(url).status == "complete"
        ds = open_result(url)
        assert ds["fused"].shape == (4, 128, 128) and ds.rio.crs is not None
    summary = json.loads(result.to_json())
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 0} and summary["tiles_computed"] == 12


def test_second_run_computes_nothing(first_run, catalog, client):
    out, _ = first_run
    before = snapshot(out)
    again = run_batch(catalog, out, client=client, **RUN)
    assert [o.status for o in again.items] == ["skipped"] * 3
    assert again.tiles_computed == 0 and not again.failed
    assert snapshot(out) == before, "a skipped item must not touch its store"
    table = again.table()
    assert all(i in table for i in IDS) and "0/4" in table and "3 skipped" in table


def test_a_batch_of_finished_items_starts_no_cluster(first_run, catalog, no_cluster):
    again = run_batch(catalog, first_run[0], **RUN)  # client=None: it would start an embedded one
    assert [o.status for o in again.items] == ["skipped"] * 3


def test_api_search_runs_the_found_items(first_run, catalog, client):
    out, _ = first_run
    features = []
    for item in pystac.Catalog.from_file(catalog).get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        d = item.to_dict(include_self_link=False)
        d["collection"] = "sn6"
        d["links"] = []
        features.append(d)
    with stac_api(features) as (url, requests):
        result = run_batch(None, out, client=client, api=url, collections=["sn6"], bbox=[4.0, 51.0, 5.0, 52.0],
                           datetime="2019-01-01/2020-01-01", **RUN)
        with pytest.raises(InputError, match="no STAC items"):
            run_batch(None, out, client=client, api=url, collections=["other"], **RUN)
    assert [o.item_id for o in result.items] == IDS
    assert [o.status for o in result.items] == ["skipped"] * 3  # same ids → same stores as the catalog run
    search = requests[0]
    assert search["collections"] == ["sn6"]
    assert search["datetime"].startswith("2019-01-01") and "/2020-01-01" in search["datetime"]  # normalised by client
    assert [float(v) for v in search["bbox"]] == [4.0, 51.0, 5.0, 52.0]


def test_interrupted_store_is_resumed(catalog, client, tmp_path):
    from trapan_cloud import runner
    from trapan_cloud.scene import open_scene
    from trapan_cloud.store import open_store

    item = next(i for i in resolve_items(catalog) if i.id == IDS[0])
    url = store_url(str(tmp_path), item.id)

    def stop(*_):
        raise KeyboardInterrupt("killed after the first tile")

    with pytest.raises(KeyboardInterrupt):
        runner.run(open_scene(item), url, client=client, progress=stop, **RUN)
    deadline = time.monotonic() + 30
    while any(client.processing().values()) and time.monotonic() < deadline:  # let the tasks in flight land
        time.sleep(0.2)
    store = open_store(url)
    done_before = int(store.done().sum())
    assert store.status != "complete" and 0 < done_before < 4
    result = run_batch(None, str(tmp_path), client=client, items=[item], **RUN)
    (o,) = result.items
    assert o.status == "done" and o.resumed and o.tiles == 4 - done_before, result.table()
    assert open_store(url).status == "complete"


def test_broken_asset_fails_only_its_item(catalog, client, tmp_path):
    items = resolve_items(catalog)
    broken = copy.deepcopy(items[1])
    broken.id = "broken-pan"
    bad = tmp_path / "broken-pan.tif"
    bad.write_bytes(b"II*\x00 this is not a GeoTIFF")
    broken.assets["pan_analytic"].href = str(bad)
    collection = tmp_path / "items.json"
    collection.write_text(json.dumps(pystac.ItemCollection([items[0], broken, items[2]]).to_dict()))
    result = run_batch(str(collection), str(tmp_path / "out"), client=client, **RUN)
    assert [(o.item_id, o.status) for o in result.items] == [(IDS[0], "done"), ("broken-pan", "failed"),
                                                             (IDS[2], "done")]
    failed = result.failed[0]
    assert "broken-pan.tif" in failed.error  # the reader names the broken file
    assert "broken-pan.tif" in result.table() and json.loads(result.to_json())["counts"]["failed"] == 1


def test_nested_catalog_is_walked_recursively(catalog, tmp_path):
    items = list(pystac.Catalog.from_file(catalog).get_items(recursive=True))
    root = pystac.Catalog("root", "nested")
    child = pystac.Catalog("child", "a sub-catalog")
    root.add_child(child)
    for i, item in enumerate(items):
        item.make_asset_hrefs_absolute()
        (root if i == 0 else child).add_item(item.clone())
    root.normalize_and_save(str(tmp_path / "nested"), pystac.CatalogType.SELF_CONTAINED)
    found = resolve_items(str(tmp_path / "nested" / "catalog.json"))
    assert sorted(i.id for i in found) == IDS
    assert all(os.path.isabs(a.href) and os.path.exists(a.href) for i in found for a in i.assets.values())


def test_inputs_are_checked_before_any_work(catalog, tmp_path):
    with pytest.raises(InputError, match="exactly one of"):
        resolve_items(catalog, api="http://127.0.0.1:9/")
    with pytest.raises(InputError, match="need api"):
        resolve_items(catalog, collections=["x"])
    with pytest.raises(InputError, match="resume"):
        run_batch(catalog, str(tmp_path), resume=True)
    one = resolve_items(catalog)[0]
    twin = one.clone()
    twin.id = one.id.replace("-", " ")  # a different id with the same store name
    assert safe_item_id(twin.id) != twin.id
    with pytest.raises(InputError, match="share the store"):
        resolve_items(items=[one, twin, one.clone()])
    with pytest.raises(InputError, match="expected a STAC Catalog"):
        bad = tmp_path / "geom.json"
        bad.write_text(json.dumps({"type": "Polygon", "coordinates": []}))
        resolve_items(str(bad))


# ---------------------------------------------------------------------------------------------------- API stand-in

class stac_api:
    """A minimal STAC API on 127.0.0.1: landing page (item-search conformance) and GET/POST /search."""

    def __init__(self, features: list[dict]) -> None:
        self.features, self.requests = features, []

    def __enter__(self) -> tuple[str, list[dict]]:
        features, requests = self.features, self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _send(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _search(self, params: dict) -> None:
                requests.append(params)
                wanted = params.get("collections")
                hits = [f for f in features if not wanted or f["collection"] in wanted]
                self._send({"type": "FeatureCollection", "features": hits, "links": []})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                base = f"http://{self.headers['Host']}"
                if parts.path == "/search":
                    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    self._search({"collections": q["collections"].split(",") if "collections" in q else None,
                                  "bbox": q["bbox"].split(",") if "bbox" in q else None,
                                  "datetime": q.get("datetime")})
                elif parts.path in ("", "/"):
                    self._send({"type": "Catalog", "id": "stand-in", "description": "test STAC API",
                                "stac_version": "1.0.0",
                                "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                               "https://api.stacspec.org/v1.0.0/item-search"],
                                "links": [{"rel": "self", "href": f"{base}/", "type": "application/json"},
                                          {"rel": "root", "href": f"{base}/", "type": "application/json"},
                                          {"rel": "search", "href": f"{base}/search", "method": "GET",
                                           "type": "application/geo+json"},
                                          {"rel": "search", "href": f"{base}/search", "method": "POST",
                                           "type": "application/geo+json"}]})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                if urlsplit(self.path).path != "/search":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                self._search(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/", requests

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
