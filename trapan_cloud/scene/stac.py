"""STAC items: read the item, pick the PAN and MS assets, take their grids from metadata (or the files), load lazily.

Real catalogs disagree on almost everything a PAN/MS loader needs (see ``shared/data/stac/README.md``): PAN is found
by ``eo:bands`` common name or by key; MS is one asset per band or one multi-band asset; grids are per asset, per item
with a PAN override, or absent; the CRS is ``proj:epsg`` or ``proj:code``; transforms have 6 or 9 elements; hrefs are
relative. This module reduces each item to a minimal, explicit one (absolute hrefs, ``proj:epsg``/``proj:wkt2``,
6-element transforms, ``raster:bands`` with the band count and dtype) holding only the assets that are read, and hands
that to odc-stac or stackstac with the exact native grid, so that neither library guesses. Assets that are not needed
(thumbnails, QA bands, other bands) are never opened.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

from affine import Affine

from ..errors import InputError
from ..redaction import redact, refuse_credentials
from ..sensors import KNOWN, Sensor, get_sensor, sensor_from_platform
from .cog import RasterInfo, read_info
from .fingerprint import is_url
from .grid import Grid

PAN_KEYS = frozenset({"pan", "pan_analytic", "panchromatic", "b8", "band_p"})
"""Asset keys / band names that mean PAN when no asset carries ``common_name: pan`` (Maxar, DEA, Landsat)."""

MS_KEYS = frozenset({"ms_analytic", "mss", "ms", "multispectral"})
"""Asset keys of multi-band MS assets that carry no band metadata."""

_SKIP_ROLES = frozenset({"thumbnail", "overview", "visual", "metadata", "data-mask", "cloud", "cloud-shadow",
                         "snow-ice", "water-mask", "saturation"})
_NON_RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".xml", ".txt", ".json", ".html", ".gpkg", ".rpb", ".yaml")

_ALIASES: dict[str, tuple[str, ...]] = {
    "nir": ("nir", "nir08", "nir1"),
    "nir08": ("nir08", "nir", "nir1"),
    "nir1": ("nir1", "nir08", "nir"),
    "nir2": ("nir2", "nir09"),
    "coastal": ("coastal", "coastal_aerosol"),
    "swir16": ("swir16", "swir_1", "swir1"),
    "swir22": ("swir22", "swir_2", "swir2"),
}
"""Sensor band name -> STAC common names / key suffixes that denote it (Maxar says nir08 where WV2 says nir1)."""

_VNIR_ORDER = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir")
"""Default MS bands, in wavelength order, for a sensor without a band table (``generic``)."""


@dataclass(frozen=True)
class ItemPlan:
    """What `plan_item` decided: the sensor, and the PAN and MS assets with their header information."""

    item: dict[str, Any]
    """The item as a plain dict (not modified)."""
    item_href: str | None
    """Where the item was read from (None for a dict or an in-memory pystac.Item without a self link)."""
    sensor: Sensor
    pan_key: str
    pan: RasterInfo
    ms_keys: tuple[str, ...]
    """One key for a multi-band MS asset, else one per band in the sensor's order."""
    ms: tuple[RasterInfo, ...]


# ---------------------------------------------------------------------------------------------------- reading items


_NOT_ITEMS = {"Collection": "a STAC Collection", "Catalog": "a STAC Catalog",
              "FeatureCollection": "a STAC ItemCollection", "ItemCollection": "a STAC ItemCollection"}
"""STAC ``type`` values (and pystac class names) of documents that hold items rather than being one."""


def not_an_item(d: Any, shown: str) -> InputError | None:
    """The error for a STAC document that is not an Item (a Collection, Catalog or ItemCollection), else None."""
    kind = _NOT_ITEMS.get(str(d.get("type"))) if isinstance(d, dict) else None
    if kind is None and isinstance(d, dict) and "features" in d and "assets" not in d:
        kind = _NOT_ITEMS["FeatureCollection"]
    if kind is None:
        return None
    return InputError(f"item: {shown} is {kind}, not a STAC Item; --stac and open_scene take one Item; to run "
                      "each of its items give it to `trapan batch --catalog` (Python: run_batch)")


def _check_item(d: Any, shown: str) -> None:
    error = not_an_item(d, shown)
    if error is not None:
        raise error


def read_item(item: Any) -> tuple[dict[str, Any], str | None]:
    """The item as a dict plus the href relative asset hrefs resolve against (its own location, else its self link).

    A Collection, Catalog or ItemCollection (as a file, URL, dict or pystac object) is refused with an `InputError`
    that says what it is and that ``trapan batch --catalog`` (`run_batch`) takes it."""
    if isinstance(item, dict):
        _check_item(item, repr(str(item.get("id", "the dict"))))
        return item, _self_href(item)
    kind = type(item).__name__
    if hasattr(item, "to_dict") and kind in _NOT_ITEMS:  # pystac.Collection / Catalog / ItemCollection
        raise not_an_item({"type": kind}, repr(str(getattr(item, "id", kind))))  # type: ignore[misc]
    if hasattr(item, "to_dict") and hasattr(item, "assets"):  # pystac.Item, without importing pystac
        d = item.to_dict(include_self_link=True, transform_hrefs=False)
        _check_item(d, repr(str(d.get("id", kind))))
        return d, item.get_self_href() or _self_href(d)
    if isinstance(item, (str, os.PathLike)):
        href = os.fspath(item)
        refuse_credentials(href, "item")
        try:
            if is_url(href):
                import fsspec

                with fsspec.open(href, "rt") as f:
                    text = f.read()
            else:
                with open(href, encoding="utf-8") as f:
                    text = f.read()
        except (OSError, ImportError, ValueError) as exc:
            raise InputError(f"item: cannot read the STAC item {redact(href)!r} ({redact(str(exc))}); check the "
                             "path/URL and, for remote items, the credentials in the environment") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"item: {redact(href)!r} is not JSON ({exc}); expected a STAC Item document") from None
        _check_item(d, repr(redact(href)))
        if not isinstance(d, dict) or "assets" not in d:
            raise InputError(f"item: {redact(href)!r} is not a STAC item (no 'assets'); "
                             "pass one Item (for a catalog or collection use run_batch)")
        return d, href
    raise InputError(f"item: expected a path, URL, dict or pystac.Item, got {type(item).__name__}")


def _self_href(d: dict[str, Any]) -> str | None:
    for link in d.get("links") or []:
        if link.get("rel") == "self" and link.get("href"):
            return link["href"]
    return None


def asset_href(d: dict[str, Any], key: str, base: str | None) -> str:
    """Absolute href of asset ``key``; relative hrefs resolve against ``base`` (the item's location).

    >>> asset_href({"assets": {"pan": {"href": "./p.tif"}}}, "pan", "/data/item.json")
    '/data/p.tif'
    >>> asset_href({"assets": {"pan": {"href": "p.tif"}}}, "pan", "https://h.org/a/item.json")
    'https://h.org/a/p.tif'
    """
    href = d["assets"][key].get("href")
    if not href:
        raise InputError(f"item {d.get('id')!r}: asset {key!r} has no href")
    refuse_credentials(str(href), f"item {d.get('id')!r} asset {key!r}")
    if is_url(href) or os.path.isabs(href):
        return href
    if base is None:
        raise InputError(f"item {d.get('id')!r}: asset {key!r} has the relative href {href!r} and the item has no "
                         "location to resolve it against; pass the item's path/URL instead of a dict, or make the "
                         "hrefs absolute")
    if is_url(base):
        return urljoin(base, href)
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(base)), href))


# ---------------------------------------------------------------------------------------------------- sensor, assets


def resolve_sensor(d: dict[str, Any], sensor: str | Sensor | None) -> Sensor:
    """The ``sensor`` argument when given, else the one named by the item's ``platform``/``constellation``."""
    if sensor is not None:
        return get_sensor(sensor)
    props = d.get("properties") or {}
    for field in ("platform", "constellation"):
        found = sensor_from_platform(props.get(field))
        if found is not None:
            return found
    raise InputError(f"item {d.get('id')!r}: platform {props.get('platform')!r} / constellation "
                     f"{props.get('constellation')!r} is not a known sensor; pass sensor= "
                     f"(one of {', '.join(KNOWN)})")


def _band_meta(asset: dict[str, Any]) -> list[dict[str, Any]]:
    """eo:bands (STAC 1.0) or bands (STAC 1.1) of an asset."""
    return list(asset.get("eo:bands") or asset.get("bands") or [])


def _common_names(asset: dict[str, Any]) -> list[str]:
    return [str(b.get("common_name") or b.get("eo:common_name") or "").lower() for b in _band_meta(asset)]


def _meta_count(asset: dict[str, Any]) -> int:
    """Band count the metadata claims (0 when it says nothing)."""
    return len(asset.get("raster:bands") or []) or len(_band_meta(asset))


def _tokens(key: str, asset: dict[str, Any]) -> set[str]:
    """Lower-case names an asset answers to: its key, the key without a product prefix (nbart_), its band names."""
    k = key.lower()
    names = {k, k.split("_", 1)[-1], k.split(":", 1)[-1]}
    names.update(str(b.get("name", "")).lower() for b in _band_meta(asset))
    return names - {""}


def _is_raster(key: str, asset: dict[str, Any]) -> bool:
    """Whether an asset can be an image band: not a thumbnail, mask, metadata or non-image file."""
    roles = {str(r).lower() for r in asset.get("roles") or []}
    if roles & _SKIP_ROLES and "data" not in roles:
        return False
    mtype = str(asset.get("type") or "").lower()
    if mtype and not (mtype.startswith("image/tiff") or "geotiff" in mtype or mtype.startswith("image/jp2")):
        return False
    return not urlsplit(str(asset.get("href", ""))).path.lower().endswith(_NON_RASTER_SUFFIXES)


def _missing(d: dict[str, Any], key: str, what: str) -> InputError:
    return InputError(f"item {d.get('id')!r}: no asset {key!r} for {what}; the item has assets "
                      f"{', '.join(sorted(d['assets']))}")


def pick_pan(d: dict[str, Any], pan_asset: str | None) -> str:
    """Key of the PAN asset: ``pan_asset`` when given, else ``common_name: pan``, else a PAN-like key or band name."""
    assets = d.get("assets") or {}
    if pan_asset is not None:
        if pan_asset not in assets:
            raise _missing(d, pan_asset, "pan_asset")
        return pan_asset
    rasters = {k: a for k, a in assets.items() if _is_raster(k, a)}
    found = [k for k, a in rasters.items() if _common_names(a) == ["pan"]]
    if not found:
        found = [k for k, a in rasters.items() if not any(_common_names(a)) and _tokens(k, a) & PAN_KEYS]
    if len(found) == 1:
        return found[0]
    if found:
        raise InputError(f"item {d.get('id')!r}: several assets look like PAN ({', '.join(found)}); "
                         "choose one with pan_asset=")
    raise InputError(f"item {d.get('id')!r}: no PAN asset found (no eo:bands common_name 'pan', no key like "
                     f"{', '.join(sorted(PAN_KEYS))}); the item has assets {', '.join(sorted(assets))}; "
                     "name it with pan_asset=")


def _match_band(d: dict[str, Any], band: str, candidates: dict[str, dict[str, Any]]) -> str | None:
    """Key of the single-band asset that is ``band``: by common name first, else by key/band name."""
    aliases = _ALIASES.get(band, (band,))
    by_common = [k for k, a in candidates.items() if _common_names(a)[:1] and _common_names(a)[0] in aliases]
    by_name = [k for k, a in candidates.items() if not any(_common_names(a)) and _tokens(k, a) & set(aliases)]
    for found in (by_common, by_name):
        if len(found) > 1:
            raise InputError(f"item {d.get('id')!r}: several assets match the {band!r} band ({', '.join(found)}); "
                             "choose with ms_assets=")
        if found:
            return found[0]
    return None


def _band_sets(sensor: Sensor) -> list[tuple[str, ...]]:
    """Band sets to look for, preferred first: the 4-band (B, G, R, NIR) set, then larger sets, then smaller."""
    if not sensor.band_sets:
        return [_VNIR_ORDER]
    return sorted(sensor.band_sets, key=lambda s: (len(s) != 4, -len(s)))


def pick_ms(d: dict[str, Any], sensor: Sensor, pan_key: str, ms_assets: str | list[str] | None) -> tuple[str, ...]:
    """Keys of the MS assets: ``ms_assets`` when given, else one asset per band of the sensor, else one multi-band one.

    Per-band: the first of the sensor's band sets (the B, G, R, NIR set preferred) whose every band is an asset,
    matched by ``eo:bands`` common name, else by key (``nbart_blue`` is blue). A sensor without a band table
    (``generic``) takes the visible/NIR bands present, in wavelength order. Multi-band: the one data asset (other
    than PAN) with several bands, or with a key such as ``ms_analytic``/``MSS``.
    """
    assets = d.get("assets") or {}
    if ms_assets is not None:
        keys = (ms_assets,) if isinstance(ms_assets, str) else tuple(ms_assets)
        for k in keys:
            if k not in assets:
                raise _missing(d, k, "ms_assets")
        if not keys:
            raise InputError("ms_assets: expected at least one asset key, got an empty list")
        return keys
    singles = {k: a for k, a in assets.items() if k != pan_key and _is_raster(k, a) and _meta_count(a) <= 1}
    for bands in _band_sets(sensor):
        keys = [_match_band(d, b, singles) for b in bands]
        if not sensor.band_sets:
            keys = [k for k in keys if k is not None]
            if len(keys) >= 2:
                return tuple(keys)
        elif all(keys):
            return tuple(keys)  # type: ignore[arg-type]
    multi = [k for k, a in assets.items() if k != pan_key and _is_raster(k, a)
             and (_meta_count(a) > 1 or (_meta_count(a) == 0 and k.lower() in MS_KEYS))]
    if len(multi) == 1:
        return (multi[0],)
    if multi:
        raise InputError(f"item {d.get('id')!r}: several multi-band assets could be the MS ({', '.join(multi)}); "
                         "choose with ms_assets=")
    wanted = " or ".join("/".join(s) for s in _band_sets(sensor))
    raise InputError(f"item {d.get('id')!r}: no MS assets found for {sensor.name} (looked for one asset per band "
                     f"{wanted}, or one multi-band asset); the item has assets {', '.join(sorted(assets))}; "
                     "name them with ms_assets=")


# ---------------------------------------------------------------------------------------------------- asset metadata


def _crs_from(fields: dict[str, Any]) -> tuple[bool, Any]:
    """(whether the fields say anything about the CRS, the rasterio CRS or None when they say it is null)."""
    from rasterio.crs import CRS

    for field, make in (("proj:epsg", lambda v: CRS.from_epsg(int(v))), ("proj:code", CRS.from_user_input),
                        ("proj:wkt2", CRS.from_wkt), ("proj:projjson", lambda v: CRS.from_user_input(json.dumps(v)))):
        if field in fields and fields[field] is not None:
            return True, make(fields[field])
    said = any(f in fields for f in ("proj:epsg", "proj:code", "proj:wkt2", "proj:projjson"))
    return said, None


def _meta_grid(d: dict[str, Any], key: str, asset: dict[str, Any]) -> Grid | None:
    """The asset's grid from projection metadata (asset first, item as fallback), or None when incomplete.

    The item-level shape/transform is inherited only when the asset's own ``gsd`` does not contradict its pixel size
    (so an item-level MS grid is never taken for a PAN asset).
    """
    props = d.get("properties") or {}
    said, crs = _crs_from(asset)
    if not said:
        said, crs = _crs_from(props)
    shape, transform = asset.get("proj:shape"), asset.get("proj:transform")
    if shape is None or transform is None:
        shape, transform = props.get("proj:shape"), props.get("proj:transform")
        gsd = asset.get("gsd") or next((b.get("gsd") for b in _band_meta(asset) if b.get("gsd")), None)
        if transform is not None and gsd and abs(abs(transform[0]) - gsd) > 1e-6 * gsd:
            shape = transform = None
    if said and crs is None and transform is None:
        rpcs = [k for k, a in d["assets"].items() if "rpb" in k.lower() or "rpc" in k.lower()]
        raise InputError(f"item {d.get('id')!r}: asset {key!r} is not orthorectified (proj:epsg is null and there "
                         f"is no proj:transform{'; RPC assets ' + ', '.join(rpcs) if rpcs else ''}); "
                         "orthorectify it first (e.g. gdalwarp -rpc -t_srs EPSG:<utm zone>) and catalog the result")
    if crs is None or shape is None or transform is None:
        return None
    if len(transform) not in (6, 9):
        raise InputError(f"item {d.get('id')!r}: asset {key!r} has a proj:transform of {len(transform)} elements; "
                         "expected 6 or 9 (a, b, c, d, e, f[, 0, 0, 1])")
    return Grid(crs, Affine(*map(float, transform[:6])), (int(shape[0]), int(shape[1])))


def asset_info(d: dict[str, Any], key: str, href: str) -> RasterInfo:
    """Grid, band count, dtype and nodata of one asset: its file header, checked against the item's metadata.

    The header is always read (one small request per needed asset), so an unreadable or missing file fails here,
    before any tile is computed; metadata and header must agree, else `InputError` (a stale catalog entry would
    otherwise be resampled).
    """
    asset = d["assets"][key]
    grid = _meta_grid(d, key, asset)
    rbands = asset.get("raster:bands") or []
    info = read_info(href, f"item {d.get('id')!r} asset {key!r}")
    if grid is not None and (grid.shape != info.grid.shape or grid.crs != info.grid.crs
                             or not grid.transform.almost_equals(info.grid.transform, precision=1e-6)):
        raise InputError(f"item {d.get('id')!r}: asset {key!r} metadata says grid {grid.shape} "
                         f"{tuple(grid.transform)[:6]} but the file {redact(href)!r} has {info.grid.shape} "
                         f"{tuple(info.grid.transform)[:6]}; fix the item's proj: fields")
    if rbands and "nodata" in rbands[0]:
        nodata = rbands[0]["nodata"]
        info = replace(info, nodata=None if nodata is None else float(nodata))
    return info


def plan_item(item: Any, sensor: str | Sensor | None, pan_asset: str | None,
              ms_assets: str | list[str] | None) -> ItemPlan:
    """Read an item and decide what to load; only the chosen assets' metadata (or headers) are looked at."""
    d, base = read_item(item)
    if not isinstance(d.get("assets"), dict):
        raise InputError(f"item {d.get('id')!r}: no 'assets' mapping; expected a STAC Item")
    s = resolve_sensor(d, sensor)
    pan_key = pick_pan(d, pan_asset)
    ms_keys = pick_ms(d, s, pan_key, ms_assets)
    pan = asset_info(d, pan_key, asset_href(d, pan_key, base))
    ms = tuple(asset_info(d, k, asset_href(d, k, base)) for k in ms_keys)
    href = base if isinstance(item, (str, os.PathLike)) else None
    return ItemPlan(d, href, s, pan_key, pan, ms_keys, ms)
