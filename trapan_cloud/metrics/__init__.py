"""Pansharpening quality indices, toolbox-exact (Vivone et al. 2021 toolbox; ``reference/METRICS.md`` §3).

All arrays are band-first ``(B, y, x)`` in DN (never normalised to [0, 1]: Q2n casts to uint16); PAN is ``(H, W)``.
Reduced-resolution indices compare a reference ``ref`` with ``fused`` of the same shape; full-resolution indices take
``fused`` at PAN scale, the MS at its own scale ``(B, h, w)`` and the PAN. Reference inputs (``ref``, ``ms``, ``pan``)
must be finite, non-negative DN; ``fused`` must be finite but may dip below zero (methods such as MTF-GLP-FS
overshoot; the toolbox scores them unclipped, ``thvalues = 0``).

Modules: `inputs` (checks, `BLOCK`), `reference` (SAM, ERGAS, Q, Q2n, SCC), `qnr` (D_λ, D_s, QNR, D_λ^K, HQNR),
`reprojection` (R- indices, D_ρ, coregistration) and `protocols` (`full_resolution`, `reduced_resolution`); every
public name is re-exported here, so ``trapan_cloud.metrics.<name>`` is the API.
"""

from __future__ import annotations

from .inputs import BLOCK
from .protocols import DIM_CUT, full_resolution, reduced_resolution
from .qnr import Moments, d_lambda, d_lambda_khan, d_s, hqnr, qnr
from .reference import ergas, q2n, q_index, sam, scc
from .reprojection import FLAT_REL, coregistration_phases, d_rho, d_rho_reference, reprojected

__all__ = ["BLOCK", "DIM_CUT", "FLAT_REL", "Moments", "coregistration_phases", "d_lambda", "d_lambda_khan", "d_rho",
           "d_rho_reference", "d_s", "ergas", "full_resolution", "hqnr", "q2n", "q_index", "qnr", "reduced_resolution",
           "reprojected", "sam", "scc"]
