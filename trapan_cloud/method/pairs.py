"""One PAN/MS pair turned into the tensors both stages train on: normalised, nodata-filled, with validity masks, the
base image, the reduced-resolution (Wald) pair and the constants of the index-shaped losses.

Everything is computed once per pair from `trapan_cloud.physics` (degradation, interpolation) and
`trapan_cloud.baselines` (classical base images); nothing here is re-implemented. Interpolation uses the tile-safe
``"reflect"`` boundary by default, not the toolbox's wrap-around, because tiles arrive with a halo that is cropped off
later; a whole image scored with the toolbox indices (whose D_λ^K and D_s compare against the wrap-interpolated MS)
is processed with ``"wrap"`` instead (`pansharpen_pair`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from .. import metrics, physics
from ..errors import InputError
from ..qa import Q_BLOCK, evaluation_window
from ..sensors import Sensor
from ..validate import full_scale, on_sensor_scale, validity
from .config import CLASSICAL_BASES
from .losses import block_uqi

TILE_MODE = "reflect"
"""Default boundary of the 23-tap interpolator inside the method: tile-safe (no wrap-around between tile edges)."""


@dataclass
class PairData:
    """Tensors of one pair, all ``(1, C, y, x)`` float32, normalised by the input's full scale (`full_scale`).

    Attributes
    ----------
    pan, base, lms, pan_lp : PAN-scale images (C = 1, B, B, 1); ``pan_lp`` = interp23tap(imresize(PAN, 1/ratio)),
        the low-pass PAN of the toolbox D_s.
    ms : MS-scale image ``(1, B, h, w)``.
    valid_pan, valid_ms : 1 where every band of the pixel is valid, at PAN and MS scale.
    pan_rr, base_rr, ms_rr_target, valid_rr : the reduced-resolution pair (Wald protocol): inputs at MS scale and
        the MS (cropped to a multiple of the ratio) as the target.
    rr_train_rows : rows of the RR pair training may use; the rows below are the held-out strip (``holdout``).
    q_low : ``(1, B, H//32, W//32)`` per-block UQI of (LMS_b, PAN_LP), the D_s reference.
    dam_target : MTF-PAN-filtered PAN decimated at the interp23tap phase, ``(1, 1, h, w)``: what the DAM learns.
    """

    pan: torch.Tensor
    ms: torch.Tensor
    base: torch.Tensor
    lms: torch.Tensor
    pan_lp: torch.Tensor
    valid_pan: torch.Tensor
    valid_ms: torch.Tensor
    pan_rr: torch.Tensor
    base_rr: torch.Tensor
    ms_rr_target: torch.Tensor
    valid_rr: torch.Tensor
    q_low: torch.Tensor
    dam_target: torch.Tensor
    ratio: int
    all_valid: bool
    base_name: str
    rr_train_rows: int

    def holdout_rows(self) -> int:
        """Rows of the held-out strip at the bottom of the RR pair (0 = nothing held out)."""
        return self.ms_rr_target.shape[-2] - self.rr_train_rows


def fill_invalid(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of band-first ``img`` with invalid pixels set to each band's valid mean (keeps filters and the network
    away from 0-DN cliffs at nodata edges; those pixels are masked out of every loss and of the output)."""
    out = np.array(img, dtype=np.float64, copy=True)
    if valid.all():
        return out
    for band in out.reshape(-1, *valid.shape):
        band[~valid] = band[valid].mean() if valid.any() else 0.0
    return out


def _t(a: np.ndarray, scale: float, device: torch.device) -> torch.Tensor:
    a = np.asarray(a, dtype=np.float64) / scale
    return torch.from_numpy(a.reshape((1,) * (4 - a.ndim) + a.shape).astype(np.float32)).to(device)


def indices(fused: np.ndarray, pan: np.ndarray, ms: np.ndarray, sensor: Sensor, ratio: int,
            scale: float | None = None) -> dict[str, float]:
    """Toolbox HQNR, D_λ^K and D_s on the `evaluation_window` of the pair.

    The toolbox's Q2n casts to uint16, so values on another full scale (``scale``, e.g. 1 for reflectance) are mapped
    onto the sensor's DN range first; without it they must be DN."""
    H, W = evaluation_window(pan.shape, ratio)
    if scale is not None:
        fused, pan, ms = on_sensor_scale((fused, pan, ms), scale, sensor.max_dn)
    q, dl, ds = metrics.hqnr(fused[:, :H, :W], ms[:, : H // ratio, : W // ratio], pan[:H, :W], sensor, ratio)
    return {"hqnr": q, "d_lambda_k": dl, "d_s": ds}


def choose_base(pan: np.ndarray, ms: np.ndarray, sensor: Sensor, ratio: int, mode: str, scorable: bool,
                clip: bool, scale: float | None = None) -> tuple[str, np.ndarray]:
    """``base="auto"``: the classical result (DN) with the highest HQNR on this pair — the same no-reference criterion
    Stage 2 selects its checkpoint with; MTF-GLP-FS when HQNR cannot be computed (nodata, tile under 32 px)."""
    if not scorable:
        return "mtf-glp-fs", base_image("mtf-glp-fs", pan, ms, sensor, ratio, mode)
    best: tuple[float, str, np.ndarray] | None = None
    for name in CLASSICAL_BASES:
        img = base_image(name, pan, ms, sensor, ratio, mode)
        shown = np.clip(img, 0, sensor.max_dn if scale is None else scale) if clip else img
        q = indices(shown, pan, ms, sensor, ratio, scale)["hqnr"]
        if best is None or q > best[0]:
            best = (q, name, img)
    return best[1], best[2]


def base_image(name: str, pan: np.ndarray, ms: np.ndarray, sensor: Sensor, ratio: int, mode: str) -> np.ndarray:
    """The image the network refines, (B, H, W) DN: 23-tap upsampled MS ("lms") or a classical method's result."""
    if name == "lms":
        return physics.interp23tap(ms, ratio, mode=mode)
    from ..baselines import METHODS

    return METHODS[name](pan, ms, sensor, ratio, interp_mode=mode)


def prepare_pair(pan: np.ndarray, ms: np.ndarray, sensor: Sensor, ratio: int, base: str, nodata: float | None,
                 device: torch.device, mode: str = TILE_MODE, clip: bool = False, holdout: float = 0.0,
                 scale: float | None = None) -> PairData:
    """All tensors of one validated DN pair (pan (H, W), ms (B, h, w)); ``mode`` = interpolation boundary, ``clip``
    whether outputs will be clipped (matters for ``base="auto"``), ``holdout`` the share of the RR pair's rows kept
    out of training (none when the pair is too small to spare a row and keep one), ``scale`` the normalisation
    constant (`full_scale`; default the sensor's max DN)."""
    valid_pan, valid_ms = validity(pan, ms, ratio, nodata)
    pan_f = fill_invalid(pan, valid_pan)
    ms_f = fill_invalid(ms, valid_ms)
    nb = ms.shape[0]
    scale = float(sensor.max_dn) if scale is None else float(scale)
    lms = physics.interp23tap(ms_f, ratio, mode=mode)
    if base == "auto":
        scorable = bool(valid_pan.all()) and min(evaluation_window(pan.shape, ratio)) > 0
        base, base_img = choose_base(pan_f, ms_f, sensor, ratio, mode, scorable, clip, scale)
    else:
        base_img = lms if base == "lms" else base_image(base, pan_f, ms_f, sensor, ratio, mode)
    pan_lp = physics.interp23tap(physics.imresize(pan_f, 1.0 / ratio)[None], ratio, mode=mode)[0]
    k_pan = physics.mtf_kernels(sensor, 1, ratio, band="pan")
    dam_target = physics.decimate(physics.mtf_filter(pan_f[None], k_pan), ratio)
    # Reduced-resolution pair on the largest window whose MS side is a multiple of the ratio.
    h, w = ms.shape[1] // ratio * ratio, ms.shape[2] // ratio * ratio
    ms_c, pan_c = ms_f[:, :h, :w], pan_f[: h * ratio, : w * ratio]
    ms_lr, pan_lr = physics.wald_degrade(ms_c, pan_c, sensor, ratio)
    base_rr = base_image(base, pan_lr, ms_lr, sensor, ratio, mode)
    dev = device
    t_lms, t_pan_lp = _t(lms, scale, dev), _t(pan_lp, scale, dev)
    q_low = block_uqi(t_lms, t_pan_lp, Q_BLOCK) if min(pan.shape) >= Q_BLOCK else torch.zeros(1, nb, 0, 0)
    return PairData(
        pan=_t(pan_f, scale, dev), ms=_t(ms_f, scale, dev), base=_t(base_img, scale, dev), lms=t_lms,
        pan_lp=t_pan_lp, valid_pan=_t(valid_pan, 1.0, dev), valid_ms=_t(valid_ms, 1.0, dev),
        pan_rr=_t(pan_lr, scale, dev), base_rr=_t(base_rr, scale, dev), ms_rr_target=_t(ms_c, scale, dev),
        valid_rr=_t(valid_ms[:h, :w], 1.0, dev), q_low=q_low.to(dev), dam_target=_t(dam_target, scale, dev),
        ratio=ratio, all_valid=bool(valid_pan.all()), base_name=base, rr_train_rows=h - held_out_rows(h, holdout),
    )


def held_out_rows(h: int, share: float) -> int:
    """Rows of an ``h``-row RR pair held out for ``share`` (at least one training row is kept).

    >>> held_out_rows(128, 0.25), held_out_rows(16, 0.25), held_out_rows(3, 0.25), held_out_rows(128, 0.0)
    (32, 4, 0, 0)
    """
    return min(int(h * share), h - 1) if share > 0 else 0


def rr_crops(data: PairData, size: int, batch: int, gen: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` aligned random crops (MS-scale side ``size``; 0 = whole image) of the RR pair's training rows:
    (pan_rr, base_rr, target, valid)."""
    h, w = data.rr_train_rows, data.ms_rr_target.shape[-1]
    if size <= 0 or (size >= h and size >= w):
        return tuple(t[..., :h, :] for t in (data.pan_rr, data.base_rr, data.ms_rr_target, data.valid_rr))
    sy, sx = min(size, h), min(size, w)
    ys = torch.randint(0, h - sy + 1, (batch,), generator=gen).tolist()
    xs = torch.randint(0, w - sx + 1, (batch,), generator=gen).tolist()

    def cut(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[..., y : y + sy, x : x + sx] for y, x in zip(ys, xs)])

    return cut(data.pan_rr), cut(data.base_rr), cut(data.ms_rr_target), cut(data.valid_rr)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when present, else CPU; ``"cuda"`` without a GPU is an `InputError`."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("config.device: 'cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)`` when ``n`` > 0, restoring the previous value afterwards."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
