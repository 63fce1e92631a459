"""Planning a run: everything decided from the scene and the options before a cluster or a store is touched.

Besides the plan and the manifest, `prepare` refuses what would fail or mislead later: an output dtype that cannot
hold the input's values (`resolve_dtype`), a halo narrower than a method's reach (`check_halo`), and a tile whose
task would not fit in this machine's memory (`check_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputError
from ..registry import CallableMethod, TileMethod, get_method
from ..scene.model import Scene, as_scene
from ..sensors import Sensor
from ..tiling import TilePlan, plan_tiles
from .manifest import GridRecord, RunManifest
from .options import RunOptions

MIN_HALO_MS_PX = 4
"""Smallest halo of a registered method, in MS pixels per side (16 PAN px at ratio 4): the 23-tap interpolator that
every registered method starts from reaches that far within ~1.5 DN (measured on the SN6 crop: max |tiled - whole|
of EXP is 82 DN at 1 MS px, 30 at 2, 6.6 at 3, 1.45 at 4, 0.15 at 6). A user callable's reach is unknown: not
checked."""


@dataclass(frozen=True)
class Job:
    """A validated run: the scene, the tile plan, the method and its config, and the manifest (no prior yet)."""

    scene: Scene
    plan: TilePlan
    method: TileMethod
    config: Any
    sensor: str
    """Canonical sensor name."""
    manifest: RunManifest

    @property
    def nodata(self) -> float | None:
        """The scene's nodata DN."""
        return self.scene.meta.nodata


def prepare(scene: Any, options: RunOptions) -> Job:
    """Validate the inputs and build the plan and the manifest; no cluster, no store."""
    from ..sensors import get_sensor

    sc = as_scene(scene)
    method = get_method(options.method, tiled=True)
    config = method.resolve_config(options.config)
    sen = get_sensor(sc.meta.sensor)
    sen.check_bands(sc.bands, "scene ms")
    meta = sc.meta
    dtype = resolve_dtype(str(options.dtype), sc.pan.dtype, sen)
    plan = plan_tiles(tuple(sc.pan.shape), meta.ratio, tile_px=options.tile_px, halo_px=options.halo_px)
    check_halo(method, plan)
    manifest = RunManifest(
        trapan_cloud_version=__version__, inputs=sc.source.to_dict(), sensor=sen.name, bands=meta.band_names,
        nodata=meta.nodata,
        grid=GridRecord(crs=meta.crs, pan_transform=meta.pan_transform, ms_transform=meta.ms_transform,
                        subpixel_shift_px=meta.subpixel_shift_px, pan_shape=plan.shape, ratio=meta.ratio),
        tiling=plan.to_dict(), method=method.name,
        config=config.to_dict() if config is not None else None,
        config_hash=config.hash() if config is not None else None,
        prior_tiles=int(options.prior_tiles) if method.needs_prior else 0, seed=int(options.seed),
        dtype=dtype, zarr_format=int(options.zarr_format))
    job = Job(sc, plan, method, config, sen.name, manifest)
    check_memory(job)
    return job


def resolve_dtype(requested: str, input_dtype: Any, sensor: Sensor) -> str:
    """The output dtype: "auto" keeps the input's (uint8, uint16, int16; float inputs give float32); an explicit one
    must hold the input's values: no integer output for float inputs (0-1 reflectance would round to 0 or 1), and no
    integer type narrower than the input's range (its dtype's, bounded by the sensor's bit depth).

    >>> from trapan_cloud.sensors import get_sensor
    >>> wv2 = get_sensor("WV2")
    >>> resolve_dtype("auto", "uint8", wv2), resolve_dtype("auto", "float64", wv2)
    ('uint8', 'float32')
    >>> resolve_dtype("uint16", "int16", wv2)
    'uint16'
    """
    src = np.dtype(input_dtype)
    if requested == "auto":
        return "float32" if src.kind == "f" else src.name
    out = np.dtype(requested)
    if out.kind in "ui" and src.kind == "f":
        raise InputError(f"dtype: the inputs are {src.name} (e.g. reflectance 0-1) and an integer output ({out.name}) "
                         "would round their values away; use --dtype auto or float32 (Python: dtype=\"auto\")")
    if out.kind in "ui" and np.iinfo(out).max < min(np.iinfo(src).max, sensor.max_dn):
        raise InputError(f"dtype: {out.name} holds values up to {np.iinfo(out).max}, but the {src.name} inputs of "
                         f"{sensor.name} reach {min(np.iinfo(src).max, sensor.max_dn)}; use --dtype auto, a wider "
                         "type or float32")
    return out.name


def check_halo(method: TileMethod, plan: TilePlan) -> None:
    """Refuse a halo narrower than `MIN_HALO_MS_PX` MS pixels for a registered method: its tiles would differ from
    the whole-scene result at every core edge (by hundreds of DN at 1 MS pixel)."""
    need = MIN_HALO_MS_PX * plan.ratio
    if not isinstance(method, CallableMethod) and plan.halo_px < need:
        raise InputError(f"overlap: {plan.halo_px} PAN px is narrower than the {need} px (= {MIN_HALO_MS_PX} MS px at "
                         f"ratio {plan.ratio}) that method {method.name!r} reaches across a tile edge; use --overlap "
                         f"{need} or more (default: {_default_halo(plan.ratio)})")


def _default_halo(ratio: int) -> int:
    from ..tiling import default_halo_px

    return default_halo_px(ratio)


def task_memory_bytes(job: Job) -> int:
    """A rough peak of one tile task: inputs, float64 working copies, output, weights, plus what the method adds."""
    p = job.plan
    mp = job.method.describe(job.config, p.slot_px, job.manifest.prior_tiles)
    B, px = job.scene.bands, p.slot_px * p.slot_px
    return px * 8 * 2 + B * px // (p.ratio**2) * 8 + B * px * (4 + 4 + 8 * 4) + mp.extra_memory_bytes


def worker_memory_bytes(client: Any) -> int | None:
    """The smallest memory limit among the client's workers (None when none sets one)."""
    limits = [int(w.get("memory_limit") or 0) for w in client.scheduler_info().get("workers", {}).values()]
    limits = [v for v in limits if v > 0]
    return min(limits) if limits else None


def check_memory(job: Job, limit_bytes: int | None = None) -> None:
    """Refuse a tile whose task (`task_memory_bytes`) needs more than ``limit_bytes`` (None: this machine's memory as
    distributed sees it, cgroup limits included), before any work: it would die with a MemoryError inside the tile.
    `prepare` checks against this machine, `run` again against the smallest worker once a cluster is there."""
    from distributed.system import MEMORY_LIMIT

    limit = int(MEMORY_LIMIT) if limit_bytes is None else int(limit_bytes)
    need = task_memory_bytes(job)
    if need > limit:
        p = job.plan
        where = "of memory here" if limit_bytes is None else "a worker has"
        raise InputError(f"tile: a {p.tile_px} px tile (slot {p.slot_px} px with the halo) needs about "
                         f"{need / 2**30:.1f} GiB per task, more than the {limit / 2**30:.1f} GiB {where}; "
                         "use a smaller --tile (default 512)")


def describe(job: Job, out: str | None) -> dict[str, Any]:
    """The plan as `trapan run --dry-run` prints it: tiles, halo, memory per task (a rough peak: inputs, float64
    working copies, output, weights, plus what the method adds), steps per tile."""
    p = job.plan
    mp = job.method.describe(job.config, p.slot_px, job.manifest.prior_tiles)
    B = job.scene.bands
    return {
        "out": out,
        "method": job.method.name,
        "sensor": job.sensor,
        "pan_shape": list(p.shape),
        "ratio": p.ratio,
        "bands": B,
        "tile_px": p.tile_px,
        "halo_px": p.halo_px,
        "tiles": {"rows": p.n_rows, "cols": p.n_cols, "total": len(p.tiles)},
        "overlap_overhead": round(sum(t.ext_shape[0] * t.ext_shape[1] for t in p.tiles) / (p.shape[0] * p.shape[1])
                                  - 1.0, 4),
        "memory_per_task_mb_estimate": round(task_memory_bytes(job) / 2**20, 1),
        "steps_per_tile_max": mp.steps_per_tile_max,
        "prior": mp.prior,
        "config_hash": job.manifest.config_hash,
    }
