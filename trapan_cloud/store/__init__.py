"""The run's Zarr store: `layout` (what a store holds, creating one), `io` (`RunStore`, opening a store), `result` (`open_result`),
`integrity` (missing or damaged chunks), `export` (COG of a finished run), `product` (its STAC item, a batch's catalog), `status`
(`trapan status`)."""

from __future__ import annotations

from .export import export_cog
from .integrity import Integrity
from .io import RunStore, open_store, to_output_dtype
from .layout import (ATTR, COMPLETE, FORMAT_VERSION, RUNNING, check_overwrite, create_store, exists_error,
                     foreign_reason, output_exists, pixel_centres, remove_store)
from .product import publish, stac_item, stac_item_for_result, write_catalog, write_item
from .result import open_result
from .status import store_status

__all__ = ("create_store", "open_store", "open_result", "RunStore", "Integrity", "export_cog", "stac_item",
           "stac_item_for_result", "write_item", "write_catalog", "publish",
           "store_status", "output_exists", "exists_error", "check_overwrite", "foreign_reason", "remove_store",
           "to_output_dtype", "pixel_centres", "ATTR", "COMPLETE", "FORMAT_VERSION", "RUNNING")
