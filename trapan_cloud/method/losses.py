"""Differentiable losses of TRA-PAN, on normalised ``(N, C, H, W)`` tensors with validity masks.

* `masked_norm`: the MSE / L1 data terms of ZS-Pan (RR supervision, spectral and spatial FR terms), restricted to valid
  pixels, so that nodata never drives a gradient.
* `block_uqi`: the universal image quality index on non-overlapping S×S blocks (``reference/METRICS.md`` §3.6), the
  building block of D_s and, per band, of D_λ^K. It lets the full-resolution loss be shaped like the indices the
  method is judged on (as λ-PNN trains on a D_λ^K-like term): the metrics themselves stay the numpy reference in
  `trapan_cloud.metrics`; this is a differentiable proxy, not a second implementation of HQNR (Q2n's hypercomplex
  statistics and uint16 rounding are left out).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12


def masked_norm(diff: torch.Tensor, mask: torch.Tensor | None, norm: str) -> torch.Tensor:
    """Mean of ``diff**2`` ("mse") or ``|diff|`` ("l1") over the pixels where ``mask`` (broadcastable, 0/1) is 1."""
    err = diff.square() if norm == "mse" else diff.abs()
    if mask is None:
        return err.mean()
    m = mask.expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def block_uqi(x: torch.Tensor, y: torch.Tensor, block: int) -> torch.Tensor:
    """UQI of every band pair on non-overlapping ``block``-px blocks.

    ``(N, C, H, W)`` × ``(N, C|1, H, W)`` → ``(N, C, H//block, W//block)``;
    ``4 σxy μx μy / ((σx² + σy²)(μx² + μy²))``, as the toolbox's ``blockproc`` UQI.

    Trailing rows/columns that do not fill a block are ignored.
    """
    y = y.expand_as(x)
    mx, my = F.avg_pool2d(x, block), F.avg_pool2d(y, block)
    vx = F.avg_pool2d(x * x, block) - mx * mx
    vy = F.avg_pool2d(y * y, block) - my * my
    cxy = F.avg_pool2d(x * y, block) - mx * my
    return 4 * cxy * mx * my / ((vx + vy) * (mx * mx + my * my) + EPS)


def block_mask(valid: torch.Tensor, block: int) -> torch.Tensor:
    """1 for the blocks whose pixels are all valid: ``(N, 1, H, W)`` → ``(N, 1, H//block, W//block)``."""
    return -F.max_pool2d(-valid, block)


def dlambda_proxy(fused_lp: torch.Tensor, lms: torch.Tensor, mask: torch.Tensor, block: int) -> torch.Tensor:
    """1 − mean per-band block UQI between the MTF-filtered fused image and the upsampled MS (shape of D_λ^K)."""
    return 1.0 - (block_uqi(fused_lp, lms, block) * mask).sum() / (mask.sum() * fused_lp.shape[1]).clamp_min(1.0)


def ds_proxy(fused: torch.Tensor, pan: torch.Tensor, q_low: torch.Tensor, mask: torch.Tensor,
             block: int) -> torch.Tensor:
    """Mean over valid blocks and bands of ``|Q(fused_b, PAN) − Q(LMS_b, PAN_LP)|``: a per-block D_s, an upper bound
    of the toolbox D_s (which compares the block means per band) that stays meaningful on small crops (on SN6-t2 it
    lowered HQNR less than the block-mean form did)."""
    diff = (block_uqi(fused, pan, block) - q_low).abs() * mask
    return diff.sum() / (mask.sum() * fused.shape[1]).clamp_min(1.0)
