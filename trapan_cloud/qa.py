"""Per-tile quality control: `TileQA`, the one definition from which the store's QA arrays, `trapan status` (worst
tiles), the run summary and reports are derived.

Each field of `TileQA` carries its direction (is a higher value better?) and a description in its metadata, so adding
an index is one field here and, if it needs computing, one line in `score_tile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .errors import InputError

Q_BLOCK = 32
"""Side of the Q2n/HQNR block: an evaluation window's sides are multiples of it (and of the ratio)."""


def qa_field(higher_is_better: bool, description: str) -> Any:
    """A `TileQA` field: NaN until measured, with its direction and description."""
    return field(default=math.nan, metadata={"higher_is_better": higher_is_better, "description": description})


@dataclass(frozen=True)
class TileQA:
    """Quality values of one computed tile (NaN where not measurable)."""

    hqnr: float = qa_field(True, "HQNR of the tile core's largest 32-px-aligned window")
    d_lambda_k: float = qa_field(False, "Khan spectral distortion D_lambda^K of that window")
    d_s: float = qa_field(False, "spatial distortion D_s of that window")
    steps: float = qa_field(False, "Stage-2 steps run (NaN for methods without steps)")
    seconds: float = qa_field(False, "wall seconds of the tile's fusion")

    def to_dict(self) -> dict[str, float]:
        """Field name → value."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class QASpec:
    """One QA index as the store, `trapan status` and reports see it."""

    name: str
    higher_is_better: bool
    description: str

    @property
    def worst(self) -> str:
        """"min" or "max": the aggregate that picks the worst tile."""
        return "min" if self.higher_is_better else "max"


def qa_specs(qa: type[TileQA] = TileQA) -> tuple[QASpec, ...]:
    """The indices of a `TileQA` class (or a subclass that adds fields), in field order.

    >>> [s.name for s in qa_specs()]
    ['hqnr', 'd_lambda_k', 'd_s', 'steps', 'seconds']
    """
    return tuple(QASpec(f.name, bool(f.metadata["higher_is_better"]), str(f.metadata["description"]))
                 for f in fields(qa))


def evaluation_window(shape: tuple[int, int], ratio: int) -> tuple[int, int]:
    """Largest (h, w) from the origin whose sides are multiples of both the 32-px block and the ratio ((0, 0) if none).

    >>> evaluation_window((600, 600), 4), evaluation_window((20, 600), 3)
    ((576, 576), (0, 576))
    """
    step = math.lcm(Q_BLOCK, int(ratio))
    return shape[0] // step * step, shape[1] // step * step


def score_window(fused: np.ndarray, pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int,
                 window: tuple[int, int, int, int], valid: np.ndarray) -> tuple[dict[str, float], str | None]:
    """HQNR, D_λ^K and D_s of ``fused`` (B, H, W) DN on the largest evaluation window inside ``window``
    (y0, y1, x0, x1).

    Scored on values clipped at 0, as the stored DN are, mapped onto the sensor's DN range when the input is on another
    full scale (`validate.full_scale`: 0-1 reflectance, 8 bits); NaN where no window fits or it holds nodata. A metric
    that refuses the window gives NaN and its message (second value): quality control never fails a good tile.
    """
    from . import metrics
    from .sensors import get_sensor
    from .validate import full_scale, on_sensor_scale

    y0, y1, x0, x1 = window
    h, w = evaluation_window((y1 - y0, x1 - x0), ratio)
    out = {"hqnr": math.nan, "d_lambda_k": math.nan, "d_s": math.nan}
    if h == 0 or w == 0 or not valid[y0:y0 + h, x0:x0 + w].all():
        return out, None
    r = ratio
    f, m, p = (np.clip(fused[:, y0:y0 + h, x0:x0 + w], 0.0, None), ms[:, y0 // r:(y0 + h) // r, x0 // r:(x0 + w) // r],
               pan[y0:y0 + h, x0:x0 + w])
    max_dn = get_sensor(sensor).max_dn
    f, m, p = on_sensor_scale((f, m, p), full_scale([(p, m)], max_dn, None), max_dn)
    try:
        q, dl, ds = metrics.hqnr(f, m, p, sensor, r)
    except InputError as exc:
        return out, str(exc)
    return {"hqnr": float(q), "d_lambda_k": float(dl), "d_s": float(ds)}, None


def summarise(qas: list[TileQA], qa_errors: list[str]) -> dict[str, Any]:
    """Mean/min/max of every `TileQA` field over the computed tiles, and the QA errors (count and one example)."""
    out: dict[str, Any] = {"tiles": len(qas)}
    if qa_errors:
        out.update(qa_errors=len(qa_errors), qa_error_example=qa_errors[0])
    for spec in qa_specs(type(qas[0]) if qas else TileQA):
        vals = np.array([getattr(q, spec.name) for q in qas], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            out.update({f"{spec.name}_mean": float(vals.mean()), f"{spec.name}_min": float(vals.min()),
                        f"{spec.name}_max": float(vals.max())})
    return out
