"""Stage-2 step cost on this machine → bench/RESULTS.md, section "speed".

    .venv/bin/python bench/speed.py [--tiles 256,512] [--steps 5] [--device cpu]

For each tile size: seconds per Stage-2 step on the whole tile (RR and FR branches timed separately, and the
default's crop batch), PAN megapixels·steps per second, FLOPs per step counted with
`torch.utils.flop_counter.FlopCounterMode` (convolutions and matmuls; the depthwise 41×41 MTF filter is a
convolution and is counted), and the achieved FLOP/s as a fraction of a dense rate measured in the same run (a
3×3 conv of 32 → 32 channels at 256², the network's dominant layer shape, forward + backward).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from trapan_cloud.method import Runtime, TrapanConfig, fit_prior
from trapan_cloud.method.pairs import prepare_pair, resolve_device
from trapan_cloud.method.stage2 import Refiner
from trapan_cloud.samples import load_sample
from trapan_cloud.sensors import get_sensor

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402


def dense_rate(device: torch.device, reps: int = 5) -> float:
    """FLOP/s of a dense conv3×3 32→32 at 256² (batch 4), forward + backward: the reference 'peak' of this run."""
    conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(device)
    x = torch.randn(4, 32, 256, 256, device=device, requires_grad=True)

    def once() -> None:
        conv(x).sum().backward()

    with FlopCounterMode(display=False) as fc:
        once()
    flops = fc.get_total_flops()
    once()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    _sync(device)
    return flops * reps / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(ref: Refiner, kind: str, steps: int) -> tuple[float, int]:
    """Mean seconds and FLOPs of one optimiser step of branch ``kind`` ("fr", "rr" or "fr-crops")."""
    opt = torch.optim.Adam(ref.net.parameters(), lr=1e-4)

    def step() -> None:
        if kind == "rr":
            loss = ref.rr_loss()
        else:
            loss = ref.fr_loss(ref.fr_batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    _sync(ref.d.pan.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(ref.d.pan.device)
    return (time.perf_counter() - t0) / steps, fc.get_total_flops()


def measure(tiles: list[int], steps: int, device_name: str, amp: bool = False) -> list[dict]:
    """One row per (tile, branch): seconds/step, MP·steps/s, GFLOP/step, achieved GFLOP/s and fraction of dense."""
    device = resolve_device(device_name)
    peak = dense_rate(device)
    sample = load_sample("sn6-1")
    sen = get_sensor("WV2")
    rows = []
    for tile in tiles:
        n = tile // 4
        s = sample.crop("speed", 0, 0, min(n, sample.ms.shape[1]))
        reps = -(-n // s.ms.shape[1])
        pan = np.tile(s.pan.astype(np.float64), (reps, reps))[:tile, :tile]
        ms = np.tile(s.ms.astype(np.float64), (1, reps, reps))[:, :n, :n]
        base = TrapanConfig.default()
        cfg = dataclasses.replace(base, base="mtf-glp-fs", dam_steps=10, warmup_steps=0)
        prior = fit_prior([(pan[:128, :128], ms[:, :32, :32])], sen, cfg, runtime=Runtime(device=device_name))
        data = prepare_pair(pan, ms, sen, 4, cfg.base, None, device)
        for kind, c in (("fr whole tile", dataclasses.replace(cfg, crop_px=0)),
                        ("rr whole tile", dataclasses.replace(cfg, warmup_crop_px=0)),
                        (f"fr crops {base.batch}×{base.crop_px}²", cfg)):
            ref = Refiner(prior.fusion_net().to(device), prior.dam().to(device), c, data, sen, device,
                          torch.Generator().manual_seed(0), amp)
            sec, flops = time_step(ref, kind.split()[0] if "crops" not in kind else "fr-crops", steps)
            px = tile * tile if "crops" not in kind else min(base.crop_px, tile) ** 2 * base.batch
            if kind.startswith("rr"):
                px = (tile // 4) ** 2
            rows.append({"tile": tile, "kind": kind, "s_step": sec, "mp_steps_s": px / 1e6 / sec,
                         "gflop_step": flops / 1e9, "gflops": flops / sec / 1e9, "frac": flops / sec / peak,
                         "peak_gflops": peak / 1e9, "device": str(device), "amp": amp})
            print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| tile | step | s/step | MP·steps/s (pixels trained) | GFLOP/step | GFLOP/s | of dense rate |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['tile']}² | {r['kind']} | {r['s_step']:.3f} | {r['mp_steps_s']:.3f} | {r['gflop_step']:.2f} "
                   f"| {r['gflops']:.1f} | {100 * r['frac']:.0f} % |")
    out.append(f"\nDense reference (conv3×3 32→32, 4×256², fwd+bwd) on {rows[0]['device']}: "
               f"{rows[0]['peak_gflops']:.1f} GFLOP/s; network autocast bf16: {rows[0]['amp']}.")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default="256,512")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast of the network (CUDA only)")
    ap.add_argument("--no-write", action="store_true", help="print only (e.g. on a GPU machine)")
    a = ap.parse_args()
    rows = measure([int(t) for t in a.tiles.split(",")], a.steps, a.device, a.amp)
    if not a.no_write:
        write_section("speed", "python bench/speed.py " + " ".join(sys.argv[1:]), table(rows))
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
