"""The two networks of TRA-PAN: the FusionNet-style residual CNN f_θ and the DAM spectral-response MLP g_φ.

Both work on normalised reflectance-like values (DN / sensor max DN), band-first tensors ``(N, C, H, W)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _trunc_normal_fan_in_(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    """ZS-Pan / FusionNet init (TRAPAN.md §4.1): truncated normal, std = sqrt(1/fan_in)/0.8796, cut at ±2σ.

    0.8796 is the std of a unit normal truncated at ±2, so the *truncated* draw has variance 1/fan_in.
    """
    fan_in = weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)


class ResBlock(nn.Module):
    """conv3×3 → ReLU → conv3×3, plus the identity."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))


class FusionNet(nn.Module):
    """FusionNet (Deng et al.), as in ZS-Pan: fused = base + R(PAN repeated − base).

    Parameters
    ----------
    bands : int
        Number of MS bands C.
    width, depth : int
        Body channels and number of ResBlocks (ZS-Pan: 32 and 4).
    last_init_scale : float
        Factor on the last conv's initial weights; near 0 the untrained net returns (almost) its base image, which
        matters when the base is already a good classical fusion (``base="mtf-glp-fs"``).
    generator : torch.Generator, optional
        Source of the initial weights (deterministic per seed).
    """

    def __init__(self, bands: int, width: int = 32, depth: int = 4, last_init_scale: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.head = nn.Conv2d(bands, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(depth)])
        self.tail = nn.Conv2d(width, bands, 3, padding=1)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    _trunc_normal_fan_in_(m.weight, generator)
                    m.bias.zero_()
            self.tail.weight.mul_(last_init_scale)

    def forward(self, pan: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Fused ``(N, C, H, W)`` from PAN ``(N, 1, H, W)`` and the base image ``(N, C, H, W)`` (normalised)."""
        x = pan.expand_as(base) - base
        return base + self.tail(self.body(torch.relu(self.head(x))))


class DAM(nn.Module):
    """Degradation-aware model: per-pixel MLP C → hidden → hidden → 1 with Sigmoid (TRAPAN.md §4.2).

    Maps an MS-like image ``(N, C, H, W)`` to a PAN-like image ``(N, 1, H, W)``; per-pixel, so it works at MS scale
    (where it is fitted) and at PAN scale (where it constrains the fused image).
    """

    def __init__(self, bands: int, hidden: int = 32, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(bands, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)
        with torch.no_grad():
            for m in (self.fc1, self.fc2, self.fc3):
                bound = 1.0 / math.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(1, -1)
        y = self.fc3(torch.sigmoid(self.fc2(torch.sigmoid(self.fc1(y)))))
        return y.movedim(-1, 1)
