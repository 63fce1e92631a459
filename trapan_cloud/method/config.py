"""`TrapanConfig`: every knob of TRA-PAN's two stages, as one frozen, hashable dataclass.

Presets
-------
``fast()``
    Seconds on a CPU; for tests and smoke runs, not for quality.
``paper()``
    The reconstruction of ``reference/TRAPAN.md`` §4 with ZS-Pan's numbers where the paper is silent: FusionNet
    (width 32, 4 ResBlocks), base image = 23-tap upsampled MS, MSE losses with λ_spe 8 / λ_spa 1, Adam lr 5e-4,
    DAM 2,500 steps at lr 5e-4, warm-up 80 steps at lr 1e-3, RAO p = 0.5 for 250 steps, selection on the
    full-resolution loss, no clipping, no adaptive stopping.
``default()``
    Chosen from ``bench/ablation.py`` (``bench/RESULTS.md``, section "ablation"; one seed, SN6-t2 for the ablation,
    all four bench crops for the quality check). What the numbers said:

    * base image: ``base="auto"`` takes the classical result with the best HQNR on the pair (MTF-GLP-FS on the
      WorldView-2 crops, EXP on Landsat) and the last conv starts at zero (``last_init_scale=0``), so the output is
      never below that base (it is a selection candidate). With the index-shaped losses the paper's upsampled MS
      (``"lms"``) did as well on SN6-t2 (0.8697 vs 0.8647, one crop, within noise) — with ZS-Pan's own losses it
      stays below MTF-GLP-FS (``reference/ANCHORS.md``) — but it has no such floor;
    * losses: the ZS-Pan MSE terms alone barely move HQNR; adding the index-shaped block-UQI terms (``lambda_dl``,
      ``lambda_ds`` = 1) is what lowers D_λ^K;
    * schedule: summed RR + FR losses at every step (G-ZAP-like, 0.8647 on SN6-t2) and FR-only (0.8642) ended above
      RAO p = 0.3 (0.8574) in two ablation runs; p = 0.5 / 0.7, RR-only and sequential did not beat the base image
      within the patience. The margin is below the ~0.01 one crop can prove, but consistent, so the default sums the
      losses (``schedule="sum"``; the RR term costs a forward pass at 1/ratio² of the pixels); ``paper()`` keeps RAO;
    * a short warm-up (20 RR steps): 0.8647 vs 0.8595 without (within noise); where it hurts (Landsat: step 0 drops
      from 0.954 to 0.941) the base image stays a selection candidate (step -1);
    * 256-px crops (a 256² tile is one crop; a 512² tile trains on one random 256² crop per step): batches of two
      128² crops never beat the base image within the patience;
    * selection on on-the-fly HQNR with output clipping (0.8647 vs 0.8607 for last iterate, unclipped); evaluations
      every 10 steps and a stop after 3 evaluations without improvement: on the default's run it never triggered
      (HQNR still rising at step 60), on runs that never beat the base it halved the steps.
    * Stage-2 learning rate 1e-4 (was 3e-4; ``bench/quality.py``, and the on-the-fly HQNR of each evaluation in
      ``refine_tile``'s trace): at 3e-4 the first FR steps on L8-momotombo (ratio 2, 16-bit) knock HQNR from the
      EXP base's 0.954 down to 0.82-0.88 at step 10-20, the patience stops the run before it recovers and the base is
      returned unchanged (a tie with EXP, 0.9539); at 1e-4 the dip is 0.926 at step 10 and step 20 is selected:
      HQNR 0.9641, strictly above EXP. On the WorldView-2 crops 1e-4 costs a little, within the one-crop noise
      (SN6-t1/t2/t3 0.9498 / 0.8559 / 0.9539 vs 0.9506 / 0.8647 / 0.9561 at 3e-4), still well above MTF-GLP-FS
      (0.9190 / 0.8435 / 0.9378).

    Not solved by this default: reduced-resolution Q2n (``bench/RESULTS.md`` "quality": TRA-PAN below the best
    classical Q2n on every crop, e.g. SN6-t1 0.8397 vs BT-H 0.8758, L8 0.9378 vs MTF-GLP-FS 0.9420). Per-checkpoint
    diagnosis (true Q2n of each evaluated checkpoint, one seed, a script outside the repo): on the Wald-degraded SN6-t1
    pair the base is BT-H (Q2n 0.8758, the best classical) and every Stage-2 checkpoint with the
    index-shaped terms on has a lower Q2n (0.840-0.868) while its HQNR rises: those terms improve the no-reference
    index, not the fidelity. With ``lambda_dl = lambda_ds = 0`` the checkpoints do raise Q2n (0.876-0.879) but then
    HQNR selection keeps the warm-up network (Q2n 0.868), and on SN6-t2 at full resolution that variant never beats
    MTF-GLP-FS. The network's own RR-of-RR Q2n (the Wald-degraded pair of the pair) is no usable fidelity guard: the
    network trains on that pair, so it reads 0.88-0.91 where the true Q2n is 0.84-0.87, above BT-H's honest 0.886.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import InputError

CLASSICAL_BASES = ("mtf-glp-fs", "exp", "bt-h", "gsa", "mtf-glp-hpm")
BASES = ("lms", "auto") + CLASSICAL_BASES
SELECTIONS = ("hqnr", "fr_loss", "last")
SCHEDULES = ("rao", "sequential", "sum")
NORMS = ("mse", "l1")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrapanConfig:
    """All settings of Stage 1 (DAM + warm-up) and Stage 2 (RAO); use the presets and `dataclasses.replace`."""

    width: int = 32
    """Feature channels of the FusionNet body."""
    depth: int = 4
    """Number of ResBlocks in the FusionNet body."""
    last_init_scale: float = 1.0
    """Factor on the initial weights of the last conv; near 0 makes step 0 reproduce the base image."""
    dam_hidden: int = 32
    """Hidden width of the DAM MLP (TRA-PAN appendix: 32)."""
    dam_steps: int = 2500
    """Adam steps fitting the DAM (MS → MTF-degraded PAN at MS scale), full batch of valid MS pixels."""
    dam_lr: float = 5e-4
    """DAM learning rate."""
    warmup_steps: int = 80
    """Supervised reduced-resolution steps of Stage 1b (0 = no warm-up)."""
    warmup_lr: float = 1e-3
    """Warm-up learning rate."""
    rao_steps: int = 250
    """Maximum number of Stage-2 steps (adaptive stopping may end earlier)."""
    rao_p: float = 0.5
    """Probability that a Stage-2 step is the reduced-resolution supervised branch (1 = RR only, 0 = FR only)."""
    schedule: str = "rao"
    """Stage-2 loss schedule: "rao" (random alternation), "sequential" (all RR steps first, then FR: ZS-Pan-like),
    "sum" (RR + FR losses summed at every step: G-ZAP-like)."""
    lr: float = 5e-4
    """Stage-2 Adam learning rate."""
    lambda_spe: float = 8.0
    """Weight of the spectral FR term (MTF-degraded, decimated fused vs MS)."""
    lambda_spa: float = 1.0
    """Weight of the spatial FR term (DAM(fused) vs PAN)."""
    lambda_dl: float = 0.0
    """Weight of the D_λ^K-shaped FR term: 1 − per-band block UQI of MTF(fused) vs the upsampled MS (0 = off)."""
    lambda_ds: float = 0.0
    """Weight of the D_s-shaped FR term: per-block |Q(fused_b, PAN) − Q(LMS_b, low-pass PAN)| (0 = off)."""
    loss_norm: str = "mse"
    """Norm of the RR, spectral and spatial terms: "mse" (ZS-Pan) or "l1" (G-ZAP)."""
    crop_px: int = 0
    """PAN-scale side of the random crops a Stage-2 step trains on (0 = the whole tile)."""
    batch: int = 1
    """Crops per Stage-2 step (ignored when ``crop_px`` is 0)."""
    warmup_crop_px: int = 0
    """MS-scale side of the random crops of the reduced-resolution pairs (warm-up and RR steps; 0 = whole image)."""
    base: str = "lms"
    """Image the network refines: "lms" (23-tap upsampled MS, the paper), a classical method's result, or "auto":
    the classical result with the best HQNR on the pair itself (MTF-GLP-FS where HQNR cannot be computed)."""
    clip: bool = False
    """Clip the output to [0, sensor max DN]."""
    selection: str = "fr_loss"
    """Checkpoint rule: "hqnr" (on-the-fly HQNR of the whole tile), "fr_loss" (whole-tile FR loss), "last"."""
    eval_every: int = 25
    """Stage-2 steps between two whole-tile evaluations (selection and stopping); step 0 is always evaluated."""
    patience: int = 0
    """Stop after this many evaluations without relative improvement above ``min_rel_improvement`` (0 = never)."""
    min_rel_improvement: float = 1e-3
    """Relative improvement of the selection score that resets the patience counter."""
    trace_indices: bool = False
    """Record the initial and final HQNR / D_λ^K / D_s of each tile in the trace (costs two metric evaluations)."""
    device: str = "auto"
    """"auto" = CUDA when present, else CPU; or "cpu" / "cuda"."""
    amp: bool = False
    """bfloat16 autocast for the network on CUDA (ignored on CPU)."""
    threads: int = 0
    """torch.set_num_threads value for the computation (0 = leave torch's setting alone)."""

    def __post_init__(self) -> None:
        choices = {"schedule": SCHEDULES, "loss_norm": NORMS, "base": BASES, "selection": SELECTIONS,
                   "device": DEVICES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"config.{name}: expected one of {', '.join(allowed)}, found {getattr(self, name)!r}")
        positive = ("width", "depth", "dam_hidden", "batch", "eval_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InputError(f"config.{name}: expected an integer >= 1, found {getattr(self, name)!r}")
        for name in ("dam_steps", "warmup_steps", "rao_steps", "crop_px", "warmup_crop_px", "patience", "threads"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"config.{name}: expected an integer >= 0, found {getattr(self, name)!r}")
        if not 0.0 <= self.rao_p <= 1.0:
            raise InputError(f"config.rao_p: expected a probability in [0, 1], found {self.rao_p!r}")
        for name in ("dam_lr", "warmup_lr", "lr"):
            if not getattr(self, name) > 0:
                raise InputError(f"config.{name}: expected a learning rate > 0, found {getattr(self, name)!r}")
        for name in ("lambda_spe", "lambda_spa", "lambda_dl", "lambda_ds", "min_rel_improvement", "last_init_scale"):
            if getattr(self, name) < 0:
                raise InputError(f"config.{name}: expected a value >= 0, found {getattr(self, name)!r}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def paper(cls) -> TrapanConfig:
        """TRAPAN.md §4 reconstruction with ZS-Pan's settings (the dataclass defaults)."""
        return cls()

    @classmethod
    def default(cls) -> TrapanConfig:
        """The settings ``bench/ablation.py`` chose (see the module docstring)."""
        return cls(
            last_init_scale=0.0, dam_steps=1000, dam_lr=5e-3, warmup_steps=20, warmup_lr=5e-4, rao_steps=60,
            rao_p=0.3, schedule="sum", lr=1e-4, lambda_dl=1.0, lambda_ds=1.0, crop_px=256, batch=1, warmup_crop_px=32,
            base="auto", clip=True, selection="hqnr", eval_every=10, patience=3, min_rel_improvement=5e-4,
        )

    @classmethod
    def fast(cls) -> TrapanConfig:
        """A few seconds on a CPU: for tests and smoke runs."""
        return replace(cls.default(), width=16, depth=2, dam_steps=150, warmup_steps=10, rao_steps=12, crop_px=64,
                       batch=2, eval_every=6, patience=0)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrapanConfig:
        """Config from a dict (file, CLI flags); unknown keys are rejected by name, missing ones take the defaults."""
        if not isinstance(d, dict):
            raise InputError(f"config: expected a dict of settings, found {type(d).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError(f"config: unknown key(s) {', '.join(map(repr, unknown))}; "
                             f"known keys: {', '.join(known)}")
        values = {}
        for k, v in d.items():
            kind = type(known[k].default)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            ok = isinstance(v, kind) if kind in (str, bool) else number
            if not ok or (kind is int and float(v) != int(v)):
                raise InputError(f"config.{k}: expected {kind.__name__}, found {v!r}")
            values[k] = kind(v)
        return cls(**values)

    def hash(self) -> str:
        """sha256 of the canonical JSON of the fields (stable across runs; used in manifests and priors)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
