"""trapan_cloud: TRA-PAN one-shot pansharpening of whole satellite scenes, from STAC/COG to georeferenced Zarr.

The public surface (``shared/API.md``) is re-exported here. Heavy rooms (torch, dask, xarray) are imported lazily
on first use, so that ``import trapan_cloud`` and ``trapan status`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = (
    "pansharpen",
    "open_scene",
    "run",
    "run_batch",
    "open_result",
    "TrapanConfig",
    "Runtime",
    "Prior",
    "RunResult",
    "metrics",
    "physics",
    "baselines",
    "sensors",
    "get_sensor",
    "Scene",
    "RunOptions",
    "RunManifest",
    "TileQA",
    "TileMethod",
    "register_method",
    "TrapanError",
    "InputError",
    "ResumeMismatchError",
    "StoreExistsError",
    "CorruptStoreError",
    "IncompleteRunError",
    "WorkerSettings",
    "configure_cluster",
    "worker_config",
    "__version__",
)

_LAZY = {
    "pansharpen": ("trapan_cloud.fusion", "pansharpen"),
    "open_scene": ("trapan_cloud.scene", "open_scene"),
    "run": ("trapan_cloud.runner", "run"),
    "RunOptions": ("trapan_cloud.runner", "RunOptions"),
    "RunManifest": ("trapan_cloud.runner", "RunManifest"),
    "Scene": ("trapan_cloud.scene", "Scene"),
    "TileQA": ("trapan_cloud.qa", "TileQA"),
    "TileMethod": ("trapan_cloud.registry", "TileMethod"),
    "register_method": ("trapan_cloud.registry", "register"),
    "run_batch": ("trapan_cloud.batch", "run_batch"),
    "open_result": ("trapan_cloud.store", "open_result"),
    "RunResult": ("trapan_cloud.runner", "RunResult"),
    "TrapanConfig": ("trapan_cloud.method.config", "TrapanConfig"),
    "Runtime": ("trapan_cloud.method.config", "Runtime"),
    "Prior": ("trapan_cloud.method.prior", "Prior"),
    "metrics": ("trapan_cloud.metrics", None),
    "physics": ("trapan_cloud.physics", None),
    "baselines": ("trapan_cloud.baselines", None),
    "sensors": ("trapan_cloud.sensors", None),
    "get_sensor": ("trapan_cloud.sensors", "get_sensor"),
    "TrapanError": ("trapan_cloud.errors", "TrapanError"),
    "InputError": ("trapan_cloud.errors", "InputError"),
    "ResumeMismatchError": ("trapan_cloud.errors", "ResumeMismatchError"),
    "StoreExistsError": ("trapan_cloud.errors", "StoreExistsError"),
    "CorruptStoreError": ("trapan_cloud.errors", "CorruptStoreError"),
    "IncompleteRunError": ("trapan_cloud.errors", "IncompleteRunError"),
    "WorkerSettings": ("trapan_cloud.cluster", "WorkerSettings"),
    "configure_cluster": ("trapan_cloud.cluster", "configure_cluster"),
    "worker_config": ("trapan_cloud.cluster", "worker_config"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'trapan_cloud' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
