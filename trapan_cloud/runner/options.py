"""`RunOptions`: every setting of one `run`, frozen and checked before any cluster or store is touched."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

DTYPES = ("auto", "uint8", "uint16", "int16", "float32")
"""Output dtypes; "auto" resolves to the input's (`plan.resolve_dtype`)."""
ZARR_FORMATS = (2, 3)


@dataclass(frozen=True)
class RunOptions:
    """How to run a scene; the scene, the output, the client and the progress are `run`'s own arguments."""

    config: Any = None
    """The method's config: a `TrapanConfig` for "trapan" (default ``TrapanConfig.default()``); ignored otherwise."""
    tile_px: int = 512
    """Core tile side in PAN pixels."""
    halo_px: int | None = None
    """Halo per side in PAN pixels (default: `tiling.default_halo_px`)."""
    resume: bool = False
    """Continue into an existing store made with the same settings: only tiles not marked done are computed."""
    method: str | Callable[..., Any] | Any = "trapan"
    """A registered method name (`trapan_cloud.registry`), a `TileMethod`, or a callable
    ``f(pan (H, W), ms (B, h, w), sensor, ratio) -> (B, H, W)`` DN."""
    seed: int = 0
    """Run seed; the prior uses it and each tile uses `tile_seed` (seed, tile index)."""
    gpu: bool = False
    """Route prior and tile tasks to workers with the resource ``GPU`` (refused when the cluster has none)."""
    overwrite: bool = False
    """Replace an existing output store, if it is a trapan_cloud store (anything else there is refused)."""
    dtype: str = "auto"
    """Output values: "auto" keeps the input's dtype (uint8, uint16 or int16; float inputs give float32), an integer
    type rounds and clips DN, "float32" keeps them (`plan.resolve_dtype` refuses a type that cannot hold the input)."""
    zarr_format: int = 2
    """Zarr format of the store: 2 (default; GDAL/QGIS, xarray and zarr-python read it) or 3 (xarray and zarr-python;
    the GDAL 3.10 in rasterio's wheels cannot)."""
    storage_options: Mapping[str, Any] | None = None
    """fsspec options for the output URL (credentials are best left to the environment)."""
    prior_tiles: int = 4
    """Tiles the prior is fitted on (the most valid, spread over the scene); kept in the store for a resume."""
    runtime: Any = None
    """`Runtime` (device, precision, threads, tracing) of the method on the workers; not part of the manifest, so a
    resume may use another one. None: ``Runtime()``."""
    dry_run: bool = False
    """Validate and plan only: nothing is computed or written (see `plan_run`)."""
    keep_tiles: bool = False
    """Keep the stage-A tiles (``run/tiles``) after completion; by default they are deleted, which leaves the store
    little larger than its product (a repair then recomputes the tiles around a damaged core)."""

    def __post_init__(self) -> None:
        if str(self.dtype) not in DTYPES:
            raise InputError(f"dtype: expected one of {', '.join(DTYPES)}, found {self.dtype!r}")
        if int(self.zarr_format) not in ZARR_FORMATS:
            raise InputError(f"zarr_format: expected 2 or 3, found {self.zarr_format!r}")
        if int(self.prior_tiles) < 1:
            raise InputError(f"prior_tiles: expected an integer >= 1, found {self.prior_tiles!r}")

    @property
    def resources(self) -> dict[str, int] | None:
        """Dask resources every prior and tile task asks for."""
        return {"GPU": 1} if self.gpu else None

    def storage(self) -> dict[str, Any] | None:
        """``storage_options`` as the plain dict fsspec and zarr take."""
        return dict(self.storage_options) if self.storage_options else None
