"""Byte-identity check of the run layer: sha256 of the ``fused`` array of a classical and a fixed-seed TRA-PAN run.

Refactors of the run layer must not change a single output byte. Run before and after, compare the two lines:

    .venv/bin/python bench/identity.py [--workdir DIR]

The TRA-PAN config lists every field explicitly (the values of ``TrapanConfig.fast()`` on 2026-12-04), so that
changes to the presets or the dataclass defaults do not move these hashes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile

import numpy as np

FAST_2026_12_04 = {
    "width": 16, "depth": 2, "last_init_scale": 0.0, "dam_hidden": 32, "dam_steps": 150, "dam_lr": 5e-3,
    "warmup_steps": 10, "warmup_lr": 5e-4, "rao_steps": 12, "rao_p": 0.3, "schedule": "sum", "lr": 3e-4,
    "lambda_spe": 8.0, "lambda_spa": 1.0, "lambda_dl": 0.0, "lambda_ds": 0.0, "loss_norm": "mse", "crop_px": 64,
    "batch": 2, "warmup_crop_px": 32, "base": "auto", "clip": True, "selection": "last", "eval_every": 6,
    "patience": 0, "min_rel_improvement": 5e-4,
}
"""Every field of ``TrapanConfig.fast()`` as of commit c26a3fe."""
OFF_SINCE = {"rao_p_end": -1.0, "holdout": 0.0, "prior_steps": 0}
"""Fields added after c26a3fe, at the values that keep c26a3fe's behaviour (set when the config has them)."""


def identity_config() -> object:
    """The explicit fast config, with the later fields pinned off where this version has them."""
    from dataclasses import fields

    from trapan_cloud.method.config import TrapanConfig

    known = {f.name for f in fields(TrapanConfig)}
    return TrapanConfig.from_dict({**FAST_2026_12_04, **{k: v for k, v in OFF_SINCE.items() if k in known}})


def fused_sha256(store: str) -> str:
    """sha256 of the ``fused`` array's raw bytes (C order, stored dtype)."""
    import trapan_cloud as tc

    fused = np.ascontiguousarray(tc.open_result(store)["fused"].values)
    return hashlib.sha256(fused.tobytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="where the inputs and stores go (default: a temp dir)")
    args = parser.parse_args()
    import trapan_cloud as tc
    from trapan_cloud.cluster import get_client
    from trapan_cloud.samples import load_sample, write_sample_item

    work = args.workdir or tempfile.mkdtemp(prefix="trapan-identity-")
    scene = tc.open_scene(write_sample_item(load_sample("sn6-1"), os.path.join(work, "inputs")))
    config = identity_config()
    client, owned = get_client()
    try:
        for label, kwargs in (("mtf-glp-fs", {"method": "mtf-glp-fs"}),
                              ("trapan-fast-explicit", {"method": "trapan", "config": config})):
            store = os.path.join(work, f"{label}.zarr")
            result = tc.run(scene, store, client=client, tile=256, seed=7, overwrite=True, **kwargs)
            assert result.complete, result.summary()
            print(f"{label}: {fused_sha256(store)}", flush=True)
    finally:
        if owned:
            client.close()


if __name__ == "__main__":
    main()
