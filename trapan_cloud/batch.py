"""`run_batch`: every item of a STAC catalog, ItemCollection or API search, one resumable store per item.

A batch over many scenes must survive being killed and re-run: each item gets its own store
``{out_prefix}/{safe item id}.zarr``, so re-running the same batch skips items whose store is complete, resumes
those whose store is unfinished (only tiles not flagged done are computed, `runner.run(resume=True)`), and starts
the rest. One item's failure (a broken asset, a store made with other settings) is recorded and the others go on.

This module sits above `runner` (it is a second composition root, like `cli`): nothing imports it but the CLI and
``trapan_cloud.run_batch``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from .errors import InputError

log = logging.getLogger(__name__)

STATUSES = ("done", "skipped", "failed")


@dataclass
class ItemOutcome:
    """What the batch did with one item."""

    item_id: str
    """The STAC item id."""
    store: str
    """Its output store, ``{out_prefix}/{safe id}.zarr`` (credentials in the URL, if any, are masked)."""
    status: str
    """"done" (computed or resumed to completion now), "skipped" (already complete) or "failed"."""
    seconds: float = 0.0
    """Wall seconds spent on the item in this call."""
    tiles: int = 0
    """Tiles computed for the item in this call (0 when skipped)."""
    tiles_total: int | None = None
    """Tiles in the item's plan, when known."""
    resumed: bool = False
    """True when an unfinished store was continued rather than started."""
    error: str | None = None
    """Why the item failed: error type and message (no traceback)."""


@dataclass
class BatchResult:
    """Summary of a `run_batch` call, one `ItemOutcome` per item in input order."""

    out_prefix: str
    items: list[ItemOutcome] = field(default_factory=list)
    seconds: float = 0.0
    """Wall seconds of the whole call."""
    catalog: str | None = None
    """The STAC catalog of the complete stores' items (``{out_prefix}/catalog.json``), None when none is complete or
    a file of someone else's is in its place."""

    def _with(self, status: str) -> list[ItemOutcome]:
        return [o for o in self.items if o.status == status]

    @property
    def done(self) -> list[ItemOutcome]:
        """Items computed (or resumed) to completion by this call."""
        return self._with("done")

    @property
    def skipped(self) -> list[ItemOutcome]:
        """Items whose store was already complete."""
        return self._with("skipped")

    @property
    def failed(self) -> list[ItemOutcome]:
        """Items that raised or whose store is still incomplete; re-running the batch retries them."""
        return self._with("failed")

    @property
    def tiles_computed(self) -> int:
        """Tiles computed over all items by this call (0 means the call computed nothing)."""
        return sum(o.tiles for o in self.items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy, with per-status counts."""
        return {"out_prefix": self.out_prefix, "seconds": self.seconds, "catalog": self.catalog,
                "counts": {s: len(self._with(s)) for s in STATUSES}, "tiles_computed": self.tiles_computed,
                "items": [asdict(o) for o in self.items]}

    def to_json(self, indent: int | None = 1) -> str:
        """The summary as a JSON string (``trapan batch --json``)."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """A fixed-width text table, one row per item, then the totals."""
        head = ("item", "status", "tiles", "seconds", "store / error")
        rows = [(o.item_id, o.status + (" (resumed)" if o.resumed else ""),
                 "-" if o.tiles_total is None else f"{o.tiles}/{o.tiles_total}", f"{o.seconds:.1f}",
                 o.error if o.error else o.store) for o in self.items]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in [head, *rows]]
        lines.insert(1, "-" * len(lines[0]))
        counts = ", ".join(f"{len(self._with(s))} {s}" for s in STATUSES)
        lines.append(f"{len(self.items)} items: {counts}; {self.tiles_computed} tiles computed; {self.seconds:.1f} s")
        if self.catalog:
            lines.append(f"STAC catalog: {self.catalog}")
        return "\n".join(lines)


def safe_item_id(item_id: str) -> str:
    """A store name for an item id: characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``.

    >>> safe_item_id("LC09_L1TP_166072_20220203_02_T1")
    'LC09_L1TP_166072_20220203_02_T1'
    >>> safe_item_id("maxar/11:0313 11102001")
    'maxar_11_0313_11102001'
    >>> safe_item_id("..")
    'item'
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(item_id)).strip("._")
    return name or "item"


def store_url(out_prefix: str, item_id: str) -> str:
    """The store of one item under ``out_prefix`` (local folder or fsspec URL).

    >>> store_url("s3://bucket/out/", "a b")
    's3://bucket/out/a_b.zarr'
    """
    return f"{str(out_prefix).rstrip('/')}/{safe_item_id(item_id)}.zarr"


# ----------------------------------------------------------------------------------------------- reading items
def _stac_io(storage_options: dict | None) -> Any:
    """A pystac StacIO that reads local files and http(s) as pystac does, and any other fsspec URL (s3://, gs://)
    through fsspec with ``storage_options``, so static catalogs on object stores walk like local ones."""
    from pystac.stac_io import DefaultStacIO

    class FsspecStacIO(DefaultStacIO):
        def read_text_from_href(self, href: str) -> str:
            scheme = href.split("://", 1)[0].lower() if "://" in href else ""
            if scheme in ("", "file", "http", "https"):
                return super().read_text_from_href(href)
            import fsspec

            with fsspec.open(href, "rt", encoding="utf-8", **(storage_options or {})) as f:
                return f.read()

    return FsspecStacIO()


def _absolute_assets(item: Any, base: str | None) -> Any:
    """Resolve relative asset hrefs against the item's own location, else against ``base`` (the file it came in)."""
    from pystac.utils import is_absolute_href, make_absolute_href

    anchor = item.get_self_href() or base
    if anchor:
        for asset in item.assets.values():
            if not is_absolute_href(asset.href):
                asset.href = make_absolute_href(asset.href, anchor)
    return item


def _items_from_href(href: str, storage_options: dict | None) -> list[Any]:
    import pystac

    stac_io = _stac_io(storage_options)
    try:
        d = json.loads(stac_io.read_text(href))
    except (OSError, ValueError) as exc:
        raise InputError(f"catalog: cannot read {href!r} as STAC JSON ({type(exc).__name__}: {exc})") from None
    kind = d.get("type") if isinstance(d, dict) else None
    if kind == "FeatureCollection":
        return [_absolute_assets(i, href) for i in pystac.ItemCollection.from_dict(d, preserve_dict=False)]
    if kind == "Feature":
        item = pystac.Item.from_dict(d, preserve_dict=False)
        item.set_self_href(href)
        return [_absolute_assets(item, href)]
    if kind in ("Catalog", "Collection"):
        root = pystac.read_dict(d, href=href, stac_io=stac_io)
        return [_absolute_assets(i, None) for i in root.get_items(recursive=True)]
    raise InputError(f"catalog: {href!r} is a {kind!r} document; expected a STAC Catalog, Collection, "
                     "ItemCollection (FeatureCollection) or Item")


def _items_from_object(obj: Any, storage_options: dict | None) -> list[Any]:
    """Items from a path/URL, a pystac Catalog/Collection/ItemCollection/Item, a dict, or an iterable of those."""
    import pystac

    if isinstance(obj, (str, os.PathLike)):
        return _items_from_href(os.fspath(obj), storage_options)
    if isinstance(obj, pystac.Item):
        return [_absolute_assets(obj, None)]
    if isinstance(obj, pystac.Catalog):  # also Collection
        return [_absolute_assets(i, None) for i in obj.get_items(recursive=True)]
    if isinstance(obj, pystac.ItemCollection):
        return [_absolute_assets(i, None) for i in obj]
    if isinstance(obj, dict):
        if obj.get("type") == "FeatureCollection":
            return [_absolute_assets(i, None) for i in pystac.ItemCollection.from_dict(obj, preserve_dict=True)]
        return [_absolute_assets(pystac.Item.from_dict(obj, preserve_dict=True), None)]
    if isinstance(obj, Iterable):
        return [i for o in obj for i in _items_from_object(o, storage_options)]
    raise InputError(f"items: expected a STAC path/URL, pystac object, dict or a list of them, "
                     f"got {type(obj).__name__}")


def _items_from_api(api: str, collections: Sequence[str] | str | None, bbox: Sequence[float] | None,
                    datetime: str | None) -> list[Any]:
    import pystac_client

    try:
        client = pystac_client.Client.open(api)
        query = {k: v for k, v in (("collections", collections), ("bbox", bbox), ("datetime", datetime)) if v}
        return [_absolute_assets(i, None) for i in client.search(**query).items()]
    except InputError:
        raise
    except Exception as exc:  # pystac-client raises APIError, requests errors, NotImplementedError (conformance)
        raise InputError(f"api: the STAC API search at {api!r} failed ({type(exc).__name__}: {exc})") from None


def resolve_items(catalog: Any = None, *, items: Any = None, api: str | None = None,
                  collections: Sequence[str] | str | None = None, bbox: Sequence[float] | None = None,
                  datetime: str | None = None, storage_options: dict | None = None) -> list[Any]:
    """The ``pystac.Item`` list a batch runs on, from exactly one of ``catalog``, ``items`` or ``api``; asset hrefs
    are made absolute, so each item opens on its own wherever it came from."""
    given = [name for name, v in (("catalog", catalog), ("items", items), ("api", api)) if v is not None]
    if len(given) != 1:
        raise InputError(f"catalog: give exactly one of catalog, items or api (got {', '.join(given) or 'none'})")
    if api is None and (collections or bbox or datetime):
        raise InputError("collections/bbox/datetime: these filter an API search; they need api=URL")
    if api is not None:
        found = _items_from_api(api, collections, bbox, datetime)
        where = f"the search at {api!r}"
    else:
        found = _items_from_object(catalog if catalog is not None else items, storage_options)
        where = repr(catalog) if isinstance(catalog, (str, os.PathLike)) else "the given items"
    if not found:
        raise InputError(f"catalog: no STAC items in {where}; nothing to run")
    names: dict[str, str] = {}
    seen: set[str] = set()
    for item in found:
        other = names.setdefault(safe_item_id(item.id), item.id)
        if other != item.id or item.id in seen:
            raise InputError(f"items: {other!r} and {item.id!r} would share the store {safe_item_id(item.id)}.zarr; "
                             "item ids must be unique (filter the search by one collection, or rename the items)")
        seen.add(item.id)
    return found


# ----------------------------------------------------------------------------------------------- running
def _store_state(url: str, storage_options: dict | None) -> tuple[str, int | None]:
    """("absent" | "complete" | "incomplete", tiles in the store's plan); a foreign or corrupt store raises
    `ResumeMismatchError`, so an item never writes into data it did not make."""
    from .store import COMPLETE, open_store, output_exists

    if not output_exists(url, storage_options):
        return "absent", None
    store = open_store(url, storage_options=storage_options)
    return ("complete" if store.status == COMPLETE else "incomplete"), len(store.plan.tiles)


def _needs_work(url: str, storage_options: dict | None) -> bool:
    """Whether the item's store is not complete (an unreadable or foreign one counts: `_run_item` reports it)."""
    try:
        return _store_state(url, storage_options)[0] != "complete"
    except Exception:  # noqa: BLE001 - the item's own run names the problem
        return True


def _run_item(item: Any, url: str, shown: str, config: Any, client: Any, storage_options: dict | None,
              run_kwargs: dict[str, Any]) -> ItemOutcome:
    from . import runner
    from .redaction import redact
    from .scene import open_scene

    t0 = time.perf_counter()
    outcome = ItemOutcome(item.id, shown, "failed")
    try:
        state, outcome.tiles_total = _store_state(url, storage_options)
        if state == "complete":
            outcome.status = "skipped"
            log.info("item %s: %s is complete, skipped", item.id, shown)
            return outcome
        outcome.resumed = state == "incomplete"
        log.info("item %s: %s %s", item.id, "resuming" if outcome.resumed else "writing", shown)
        result = runner.run(open_scene(item), url, config=config, client=client, resume=outcome.resumed,
                            storage_options=storage_options, **run_kwargs)
        outcome.tiles, outcome.tiles_total = result.tiles_computed, result.tiles_total
        if result.complete:
            outcome.status = "done"
        else:
            first = next(iter(result.errors.values()), "unknown error")
            outcome.error = f"{result.tiles_failed} tile(s) failed, e.g. {first}; re-run the batch to retry them"
    except Exception as exc:  # one item's failure must not stop the others; the message is kept for the report
        outcome.error = redact(f"{type(exc).__name__}: {exc}")
        log.warning("item %s failed: %s", item.id, outcome.error)
        log.debug("item %s traceback", item.id, exc_info=True)
    finally:
        outcome.seconds = time.perf_counter() - t0
    return outcome


def run_batch(catalog: Any, out_prefix: str, config: Any = None, client: Any = None, *, items: Any = None,
              api: str | None = None, collections: Sequence[str] | str | None = None,
              bbox: Sequence[float] | None = None, datetime: str | None = None, storage_options: dict | None = None,
              **run_kwargs: Any) -> BatchResult:
    """Pansharpen every item of a catalog or search into one resumable store per item.

    Parameters
    ----------
    catalog
        A static STAC Catalog/Collection (all items, recursively), an ItemCollection JSON, or one Item: path, URL
        (http(s), s3://, ...), dict or pystac object. None when ``items`` or ``api`` is given.
    out_prefix
        Local folder or fsspec prefix; item ``I`` is written to ``{out_prefix}/{safe_item_id(I)}.zarr``.
    config, client
        As in `trapan_cloud.run`; with ``client=None`` one embedded cluster serves the whole batch.
    items
        An explicit list of items (pystac Items, dicts, paths) instead of ``catalog``.
    api, collections, bbox, datetime
        Search a STAC API instead (pystac-client); the filters are passed to its item search.
    storage_options
        fsspec options for the output stores (and for reading catalogs on object stores); never logged.
    **run_kwargs
        Passed to `trapan_cloud.run` for every item (``tile``, ``method``, ``seed``, ``gpu``, ``progress``, ...).
        Re-running with other settings makes unfinished items fail with `ResumeMismatchError` instead of mixing them.

    Returns
    -------
    BatchResult
        Per item: done / skipped / failed, error, seconds, tiles computed; ``table()`` and ``to_json()``.
    """
    for key in ("resume", "overwrite", "dry_run"):
        if run_kwargs.get(key):
            raise InputError(f"{key}: run_batch decides per item (complete → skip, unfinished → resume); "
                             f"remove {key}=True, or delete a store to recompute its item")
        run_kwargs.pop(key, None)
    t0 = time.perf_counter()
    found = resolve_items(catalog, items=items, api=api, collections=collections, bbox=bbox, datetime=datetime,
                          storage_options=storage_options)
    from .cluster import client_for
    from .redaction import redact
    from .store import write_catalog

    result = BatchResult(redact(str(out_prefix)))
    with contextlib.ExitStack() as stack:
        cluster = None  # started for the first item with work to do: a batch of finished items starts none
        for n, item in enumerate(found, start=1):
            url = store_url(out_prefix, item.id)
            log.info("item %d/%d: %s", n, len(found), item.id)
            if cluster is None and _needs_work(url, storage_options):
                cluster = stack.enter_context(client_for(client=client, gpu=bool(run_kwargs.get("gpu", False))))
            result.items.append(_run_item(item, url, redact(url), config, cluster, storage_options, run_kwargs))
    result.catalog = write_catalog(out_prefix, [store_url(out_prefix, o.item_id) for o in result.items
                                                if o.status != "failed"], storage_options)
    result.seconds = time.perf_counter() - t0
    log.info("batch: %d done, %d skipped, %d failed", len(result.done), len(result.skipped), len(result.failed))
    return result
