"""The plain-dict STAC Item skeleton (no pystac): the sample items and the minimal items the odc/stackstac loaders
read come from `feature`; the items of finished runs are built with pystac (`store.product`)."""
from __future__ import annotations

from typing import Any

PROJ_V1 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
RASTER_V1 = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
EO_V1 = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"


def bbox_polygon(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    """GeoJSON polygon of a lon/lat box, counter-clockwise from the south-west corner.

    >>> bbox_polygon(0, 1, 2, 3)["coordinates"][0][:3]
    [[0, 1], [2, 1], [2, 3]]
    """
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


def feature(item_id: str, *, datetime: str, assets: dict[str, Any], properties: dict[str, Any] | None = None,
            bbox: list[float] | None = None, geometry: dict[str, Any] | None = None,
            extensions: list[str] | tuple[str, ...] = (), stac_version: str = "1.0.0") -> dict[str, Any]:
    """A STAC Item: ``geometry`` defaults to the polygon of ``bbox`` (west, south, east, north)."""
    if geometry is None and bbox is not None:
        geometry = bbox_polygon(*bbox)
    return {"type": "Feature", "stac_version": stac_version, "stac_extensions": list(extensions), "id": item_id,
            "geometry": geometry, "bbox": bbox, "properties": {"datetime": datetime, **(properties or {})},
            "links": [], "assets": assets}
