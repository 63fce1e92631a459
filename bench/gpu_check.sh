#!/usr/bin/env bash
# TRA-PAN on a CUDA machine, < 5 minutes. Run from the repository root:  bash bench/gpu_check.sh
# 1. CPU vs CUDA agreement of the one-pair method on one seed (fp32, no autocast), and CUDA run-to-run repeatability.
#    Tolerance: the two devices differ by float rounding that training amplifies, so the check is on the result, not
#    the bits: mean |CPU − CUDA| below 1 % of the mean DN, and HQNR within 0.005.
# 2. Stage-2 step cost on CUDA at tiles 512 and 1024 (whole tile, RR, default crops), fp32 and bf16 autocast:
#    s/step, MP·steps/s, FLOPs per step (FlopCounterMode) and achieved FLOP/s against a dense conv measured in the run.
# Output: stdout, and $OUT/gpu_check.txt when OUT is set.
set -euo pipefail
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
LOG=${OUT:-/tmp}/gpu_check.txt
{
echo "== device"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 120 "$PY" - <<'PYEOF'
import dataclasses, time
import numpy as np, torch
from trapan_cloud import metrics
from trapan_cloud.method import TrapanConfig, fit_prior, refine_tile
from trapan_cloud.samples import bench_crops

assert torch.cuda.is_available(), "no CUDA device"
c = bench_crops()[1]  # SN6-t2, 256² PAN
pan, ms = c.pan.astype(float), c.ms.astype(float)
out = {}
for dev in ("cpu", "cuda", "cuda"):
    cfg = dataclasses.replace(TrapanConfig.default(), device=dev, rao_steps=30, patience=0)
    t0 = time.perf_counter()
    prior = fit_prior([(pan, ms)], c.sensor, cfg, seed=0, interp_mode="wrap")
    res = refine_tile(prior, pan, ms, seed=0, config=cfg, interp_mode="wrap")
    q = metrics.hqnr(res.fused.astype(float), ms, pan, c.sensor, c.ratio)[0]
    print(f"{dev}: {time.perf_counter() - t0:.1f} s, HQNR {q:.4f}, selected step {res.trace['selected_step']}")
    out.setdefault(dev, []).append((res.fused.astype(float), q))
(a, qa), (b, qb) = out["cpu"][0], out["cuda"][0]
rel = np.abs(a - b).mean() / a.mean()
print(f"CPU vs CUDA: mean |diff| / mean DN = {rel:.2e} (tolerance 1e-2), HQNR diff {abs(qa - qb):.4f} (tolerance 0.005)"
      f" -> {'PASS' if rel < 1e-2 and abs(qa - qb) < 0.005 else 'FAIL'}")
print(f"CUDA repeat bit-identical: {np.array_equal(out['cuda'][0][0], out['cuda'][1][0])}")
PYEOF
echo "== speed fp32"; timeout 75 "$PY" bench/speed.py --device cuda --tiles 512,1024 --steps 5 --no-write
echo "== speed bf16 autocast"; timeout 75 "$PY" bench/speed.py --device cuda --tiles 512,1024 --steps 5 --amp --no-write
} 2>&1 | tee "$LOG"
