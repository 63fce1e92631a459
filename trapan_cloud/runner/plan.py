"""Planning a run: everything decided from the scene and the options before a cluster or a store is touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..registry import TileMethod, get_method
from ..scene.model import Scene, as_scene
from ..tiling import TilePlan, plan_tiles
from .manifest import GridRecord, RunManifest
from .options import RunOptions


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
    plan = plan_tiles(tuple(sc.pan.shape), meta.ratio, tile_px=options.tile_px, halo_px=options.halo_px)
    manifest = RunManifest(
        trapan_cloud_version=__version__, inputs=sc.source.to_dict(), sensor=sen.name, bands=meta.band_names,
        nodata=meta.nodata,
        grid=GridRecord(crs=meta.crs, pan_transform=meta.pan_transform, ms_transform=meta.ms_transform,
                        subpixel_shift_px=meta.subpixel_shift_px, pan_shape=plan.shape, ratio=meta.ratio),
        tiling=plan.to_dict(), method=method.name,
        config=config.to_dict() if config is not None else None,
        config_hash=config.hash() if config is not None else None,
        prior_tiles=int(options.prior_tiles) if method.needs_prior else 0, seed=int(options.seed),
        dtype=str(options.dtype), zarr_format=int(options.zarr_format))
    return Job(sc, plan, method, config, sen.name, manifest)


def describe(job: Job, out: str | None) -> dict[str, Any]:
    """The plan as `trapan run --dry-run` prints it: tiles, halo, memory per task (a rough peak: inputs, float64
    working copies, output, weights, plus what the method adds), steps per tile."""
    p = job.plan
    mp = job.method.describe(job.config, p.slot_px, job.manifest.prior_tiles)
    B, px = job.scene.bands, p.slot_px * p.slot_px
    base = px * 8 * 2 + B * px // (p.ratio**2) * 8 + B * px * (4 + 4 + 8 * 4)  # pan/weights, ms, fused/workspace
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
        "memory_per_task_mb_estimate": round((base + mp.extra_memory_bytes) / 2**20, 1),
        "steps_per_tile_max": mp.steps_per_tile_max,
        "prior": mp.prior,
        "config_hash": job.manifest.config_hash,
    }
