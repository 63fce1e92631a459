"""Sensor physics: MTF kernels and filtering, the 23-tap interpolator, MATLAB ``imresize`` and Wald degradation.

Everything follows the 2021 pansharpening toolbox (Vivone et al.) as described in ``reference/METRICS.md`` §4,
implemented from the formulas (no toolbox code). numpy functions take float64 band-first arrays ``(B, y, x)`` (or
single 2-D images) in DN and return float64; the ``*_torch`` twins take batch-first tensors ``(N, B, H, W)``, are
differentiable, run on any device, and use the very same kernel and tap definitions (``mtf_kernel``, ``CDF23``).

Boundary modes (shared by numpy and torch): ``"replicate"`` (MATLAB ``'replicate'``, edge pixel repeated),
``"reflect"`` (MATLAB ``'symmetric'``: mirror that repeats the edge pixel, scipy.ndimage ``'reflect'``),
``"wrap"`` (MATLAB ``'circular'``) and ``"constant"`` (zeros, MATLAB's default).

Modules: `filters` (modes, MTF kernels, `mtf_filter`), `resampling` (`interp23tap`, `imresize`, `decimate`,
`wald_degrade`) and `torch_twins`; every public name is re-exported here, so ``trapan_cloud.physics.<name>`` is the
API.
"""

from __future__ import annotations

from .filters import MODES, mtf_filter, mtf_kernel, mtf_kernels
from .resampling import CDF23, HALO_LR, TAPS23, decimate, imresize, interp23tap, interp_passes, wald_degrade
from .torch_twins import decimate_torch, interp23tap_torch, mtf_filter_torch

__all__ = ["CDF23", "HALO_LR", "MODES", "TAPS23", "decimate", "decimate_torch", "imresize", "interp23tap",
           "interp23tap_torch", "interp_passes", "mtf_filter", "mtf_filter_torch", "mtf_kernel", "mtf_kernels",
           "wald_degrade"]
