"""The two assessment protocols: every full-resolution index at once, and the Wald reduced-resolution protocol."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..physics import interp23tap, wald_degrade
from ..sensors import Sensor, get_sensor
from ..validate import check_pair
from .inputs import BLOCK, _as_fused, _check_blocks_fit, _fr_inputs
from .qnr import _d_lambda, _d_lambda_khan, _d_s
from .reference import ergas, q2n, q_index, sam, scc
from .reprojection import _d_rho, _d_rho_reference, _reprojected


DIM_CUT = 21
"""Toolbox border cut before the reduced-resolution indices: MATLAB ``21:end-21`` = numpy ``[20:-21]``."""


def full_resolution(fused: Any, pan: Any, ms: Any, sensor: str | Sensor, ratio: int | None = None) -> dict[str, float]:
    """Every full-resolution index at once: ``{"HQNR", "D_lambda_K", "D_s", "QNR", "D_lambda"}`` plus the
    reprojection protocol's ``{"R-Q2n", "R-Q", "R-SAM", "R-ERGAS", "D_rho", "D_rho_ref"}``.

    ``fused`` (B, H, W) and ``pan`` (H, W) at PAN scale, ``ms`` (B, h, w) at its own scale, DN; toolbox defaults
    (``indexes_evaluation_FS``: I_MS = circular `interp23tap`(ms), S = 32, p = q = 1). Sides must be multiples of 32.
    The R- indices are `reprojected`, ``D_rho`` is `d_rho` and ``D_rho_ref`` is `d_rho_reference` (the truth's D_ρ
    at reduced resolution, to read D_ρ against; reference/FR_PROTOCOL.md); ``D_rho_ref`` is NaN when the MS is
    smaller than the ratio and cannot be degraded again.
    """
    f, m, p, r = _fr_inputs(fused, ms, pan, ratio)
    _check_blocks_fit(f.shape, "fused")
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    i_ms = interp23tap(m, r)
    dlk, ds, dl = _d_lambda_khan(f, i_ms, sen, r), _d_s(f, i_ms, p, r), _d_lambda(f, i_ms)
    return {"HQNR": (1 - dlk) * (1 - ds), "D_lambda_K": dlk, "D_s": ds, "QNR": (1 - dl) * (1 - ds), "D_lambda": dl,
            **_reprojected(f, m, p, sen, r), "D_rho": _d_rho(f, p, r),
            "D_rho_ref": _d_rho_reference(p, m, sen, r) if min(m.shape[1:]) >= r else float("nan")}


def reduced_resolution(method_fn: Callable[[np.ndarray, np.ndarray], Any], pan: Any, ms: Any,
                       sensor: str | Sensor, ratio: int | None = None, dim_cut: int = DIM_CUT) -> dict[str, float]:
    """Wald-protocol scores of a method: ``{"Q2n", "Q", "SAM", "ERGAS", "SCC"}``.

    ``(pan, ms)`` are degraded by `wald_degrade` (MS: MTF + decimation; PAN: bicubic ``imresize``), the method is
    called as ``method_fn(pan_lr, ms_lr)`` and must return the fused image at MS scale ``(B, h, w)``; it is scored
    against the original ``ms`` after the toolbox border cut ``[20:-21]`` (``indexes_evaluation``, no clipping).
    ``dim_cut=0`` is the toolbox's ``flag_cut_bounds = 0`` (no cut), for crops too small to lose 41 px per axis.
    """
    p, m, r = check_pair(pan, ms, ratio)
    sen = get_sensor(sensor)
    sen.check_bands(m.shape[0])
    if dim_cut < 0:
        raise InputError(f"dim_cut: expected 0 (no cut) or a positive border width, found {dim_cut}")
    need = 2 * dim_cut - 1 + BLOCK if dim_cut else BLOCK
    if min(m.shape[1:]) < need:
        raise InputError(f"ms: the reduced-resolution indices cut {dim_cut} px per side and need {BLOCK}×{BLOCK} "
                         f"windows, so MS sides of at least {need} px; found {m.shape[1:]} (dim_cut=0 disables the cut)")
    ms_lr, pan_lr = wald_degrade(m, p, sen, r)
    fused = _as_fused(method_fn(pan_lr, ms_lr), "method_fn(pan_lr, ms_lr)")
    if fused.shape != m.shape:
        raise InputError(f"method_fn(pan_lr, ms_lr): expected the fused image at MS scale {m.shape}, "
                         f"found shape {fused.shape}")
    cut = np.s_[:, dim_cut - 1:-dim_cut, dim_cut - 1:-dim_cut] if dim_cut else np.s_[:, :, :]
    gt, fu = m[cut], fused[cut]
    return {"Q2n": q2n(gt, fu), "Q": q_index(gt, fu), "SAM": sam(gt, fu), "ERGAS": ergas(gt, fu, r), "SCC": scc(gt, fu)}
