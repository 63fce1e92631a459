"""The per-scene prior: scan valid pixels per tile, pick the sample tiles, fit the prior once (or reuse the stored
one)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import enter_phase, submit_counting_steps
from ..redaction import redact
from ..retry import retry_io
from ..tiling import Tile, TilePlan
from .options import RunOptions
from .plan import Job
from .worker import fit_prior_task, input_names, read_input, window

log = logging.getLogger(__name__)


def scene_dask(job: Job) -> tuple[Any, Any]:
    """The scene's PAN (H, W) and MS (B, h, w) as dask arrays (numpy-backed ones wrapped, chunked like the tiles)."""
    import dask.array as da

    plan = job.plan
    side = plan.tile_px // plan.ratio
    out = []
    for arr, chunks in ((job.scene.pan, (plan.tile_px, plan.tile_px)), (job.scene.ms, (job.scene.bands, side, side))):
        data = arr.data
        out.append(data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=chunks))
    return out[0], out[1]


def valid_counts(job: Job, client: Any) -> np.ndarray:
    """Valid MS pixels per tile core, ``(n_rows, n_cols)``, computed on the cluster from the MS grid only (cheap);
    refuses a scene with none.

    A pixel is valid where no MS band equals nodata (`validate.ms_valid`, applied block by block).
    """
    from ..validate import ms_valid

    plan = job.plan
    if job.nodata is None:
        return np.array([[t.core_shape[0] * t.core_shape[1] // plan.ratio**2 for t in plan.tiles]]).reshape(
            plan.n_rows, plan.n_cols)
    _, ms = scene_dask(job)
    ys, xs = plan.core_chunks
    ms = ms.rechunk((ms.shape[0], tuple(v // plan.ratio for v in ys), tuple(v // plan.ratio for v in xs)))
    nodata = job.nodata
    per_tile = ms.map_blocks(lambda b: np.array([[ms_valid(b, nodata).sum()]], dtype=np.int64), dtype=np.int64,
                             drop_axis=0, chunks=((1,) * plan.n_rows, (1,) * plan.n_cols))
    counts = read_input(lambda: np.asarray(client.compute(per_tile).result()), "ms",
                        input_names(job.scene.source)[1])
    if counts.sum() == 0:
        raise InputError(f"scene: every pixel is nodata ({nodata:g}); there is nothing to pansharpen "
                         "(check the nodata value and the input windows)")
    return counts


def prior_sample(plan: TilePlan, counts: np.ndarray, k: int) -> list[Tile]:
    """``k`` tiles for the prior: the fully valid ones spread evenly over the scene, topped up by the most valid.

    Deterministic in the plan and the data, so a rerun fits the same prior.
    """
    frac = np.array([counts.flat[t.index] / max(t.core_shape[0] * t.core_shape[1] // plan.ratio**2, 1)
                     for t in plan.tiles])
    full = [t for t in plan.tiles if frac[t.index] >= 1.0]
    if len(full) >= k:
        picks = np.unique(np.linspace(0, len(full) - 1, k).round().astype(int))
        return [full[i] for i in picks]
    rest = sorted((t for t in plan.tiles if 0 < frac[t.index] < 1.0), key=lambda t: (-frac[t.index], t.index))
    return full + rest[: k - len(full)]


def ensure_prior(job: Job, client: Any, options: RunOptions, counts: np.ndarray, store: Any,
                 progress: Any = None) -> tuple[bytes | None, str | None]:
    """The prior's bytes and hash: none for a method without one, the one in ``store`` when it has one (a resume),
    else fitted once on a worker (a GPU one with ``gpu``) from `prior_sample`, its steps counted into ``progress``'s
    phase "prior", and saved in ``store``.

    The fit is deterministic in the scene, the options and the seed, so a run killed while fitting ("fitting prior")
    fits the same prior on resume.
    """
    if not job.method.needs_prior:
        return None, None
    if store.manifest.get("prior_hash"):
        log.info("resuming with the stored prior %s", store.manifest["prior_hash"][:12])
        return store.load_prior(), store.manifest["prior_hash"]
    sample = prior_sample(job.plan, counts, int(options.prior_tiles))
    log.info("fitting the prior on %d tile(s): %s", len(sample), [t.index for t in sample])
    pan, ms = scene_dask(job)
    names = input_names(job.scene.source)
    steps = job.method.describe(job.config, job.plan.slot_px, len(sample)).prior or {}
    enter_phase(progress, "prior", sum(v for k, v in steps.items() if k.endswith("_steps")) or None,
                f"on {len(sample)} tile(s)")
    prior_bytes, prior_hash = submit_counting_steps(client, progress, fit_prior_task, job.method,
                                                    [window(pan, ms, t, names) for t in sample], job.sensor,
                                                    job.config, int(options.seed), job.nodata, options.runtime,
                                                    resources=options.resources, pure=False, retries=1)
    retry_io(lambda: store.save_prior(prior_bytes, prior_hash), f"saving the prior in {redact(store.url)}")
    return prior_bytes, prior_hash
