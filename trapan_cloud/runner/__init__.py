"""The run layer: one scene, tile by tile on Dask, into a resumable Zarr store (the composition root).

Named ``runner``, not ``run``: ``trapan_cloud.run`` is the public function, and importing a subpackage of that name
would replace it on the package.

Modules: `options` (`RunOptions`), `plan` (validation, tile plan, manifest: `Job`), `manifest` (`RunManifest`),
`prior` (valid-pixel scan, sample tiles, the per-scene prior), `scheduling` (which tile goes out when), `worker`
(tile windows, the per-worker `RunContext`, the tasks), `result` (`RunResult`), `driver` (`run`, `resume`, `resume_plan`, `plan_run`, `check_run`).
"""

from __future__ import annotations

from .driver import check_run, plan_run, resume, resume_plan, run
from .manifest import RunManifest
from .options import RunOptions
from .result import RunResult
from .worker import tile_seed

__all__ = ("run", "resume", "resume_plan", "plan_run", "check_run", "RunOptions", "RunManifest", "RunResult", "tile_seed")
