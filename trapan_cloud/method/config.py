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
    Chosen by measurement on the four bench crops (``bench/quality.py`` for every crop against every classical
    method, ``bench/ablation.py`` for one knob at a time on SN6-t2; one seed; ``bench/RESULTS.md``). It is judged at
    both resolutions, because the full-resolution index alone can be gamed:

    * losses: ZS-Pan's MSE terms only (λ_spe 8, λ_spa 1, ``lambda_dl = lambda_ds = 0``). The index-shaped block-UQI
      terms (the default until 2026-12) raise full-resolution HQNR on every crop, but they do it by moving the image
      away from the truth: at reduced resolution, where a reference exists, every checkpoint trained with them had a
      lower Q2n than the base it started from (SN6-t1: base BT-H 0.8758, checkpoints 0.840-0.868) while its HQNR rose.
      The D_λ^K term is the cause: it compares the low-passed fused image with the 23-tap upsampled MS, so driving it
      to 0 pulls the fused image towards the upsampled MS. That default scored Q2n 0.8397 / 0.8834 / 0.9269 / 0.9328
      (SN6-t1/t2/t3, L8) against the best classical 0.8758 / 0.9042 / 0.9320 / 0.9420: below on every crop;
    * selection: the last iterate. Selecting on on-the-fly HQNR picks the checkpoint that games the index best: with
      the ZS-Pan losses Q2n rises along the whole run (L8: HQNR falls from 0.976 to 0.952 while Q2n rises to 0.963),
      so HQNR selection returns an early checkpoint or the base (L8 RR Q2n 0.9263, SN6-t2 0.8993) where the last
      iterate reaches 0.9628 / 0.9137;
    * 200 steps at lr 3e-4: Q2n still rises at step 200 on every crop (SN6-t3 only just passes MTF-GLP-FS there:
      0.9328 vs 0.9320), so fewer steps or a slower rate give it away; there is nothing to stop on (``patience`` 0);
    * base image: ``base="auto"`` takes the classical result with the best HQNR on the pair (MTF-GLP-FS on the
      WorldView-2 crops, EXP on Landsat) and the last conv starts at zero (``last_init_scale=0``), so Stage 2 starts
      from that image; the paper's upsampled MS (``"lms"``) starts further from the truth;
    * schedule: the RR and FR losses summed at every step (``schedule="sum"``); on SN6-t2 RAO p = 0.3 / 0.5 / 0.7
      reached Q2n 0.9125 / 0.9112 / 0.9102 (sum: 0.9137), sequential 0.9134, FR only 0.9142 and RR only 0.8946;
    * a short warm-up (20 RR steps; without: Q2n 0.9126) and 256-px crops (a 256² tile is one crop; a 512² tile
      trains on one random 256² crop per step).

    Cheaper and as good on SN6-t2, not yet measured on the other crops or tiled, so not yet the default: batches of
    2 × 128² crops (Q2n 0.9137, HQNR 0.7890, 34 s instead of 79 s) and RAO p = 0.3 (0.9125 / 0.7844, 48 s).

    Result (``bench/quality.py``): reduced-resolution Q2n at least the best classical on all four crops (0.8834 /
    0.9137 / 0.9328 / 0.9628), full-resolution HQNR above every classical method on three (SN6-t1 0.9409 vs 0.9190,
    SN6-t3 0.9416 vs 0.9378, L8 0.9656 vs 0.9539) and below MTF-GLP-FS on SN6-t2 (0.783 vs 0.8435: D_s 0.10, the
    network adds PAN detail the index reads as spatial distortion; λ_spa 3 or 8 gave 0.797 / 0.783, λ_dl = λ_ds = 0.1
    / 0.3 raised HQNR to 0.876 / 0.877 but lowered Q2n to 0.880 / 0.871). The index-shaped terms are potent even at
    small weights, and each one trades one distortion for the other: λ_dl 0.01 alone gave D_λ^K 0.034 but D_s 0.144
    (HQNR 0.827, Q2n 0.896); λ_ds 0.03 alone, D_s 0.008 but D_λ^K 0.167 (0.827, 0.901); λ_dl = λ_ds = 0.01, HQNR
    0.846 (above MTF-GLP-FS's 0.8435) at Q2n 0.894 (below its 0.9042). Not solved: one configuration that wins on
    both indices on SN6-t2.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import InputError

CLASSICAL_BASES = ("mtf-glp-fs", "exp", "bt-h", "gsa", "mtf-glp-hpm")
BASES = ("lms", "auto") + CLASSICAL_BASES
SELECTIONS = ("hqnr", "fr_loss", "last", "holdout")
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
    rao_p_end: float = -1.0
    """RAO probability at the last step, reached linearly from ``rao_p`` (-1 = ``rao_p`` throughout)."""
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
    holdout: float = 0.0
    """Share of the reduced-resolution pair's rows (a bottom strip) never trained on, in either stage; with
    ``selection="holdout"`` its error picks the checkpoint and decides stopping (0 = no holdout)."""
    prior_steps: int = 0
    """Stage-2 steps run jointly on all of the prior's sample pairs before the prior is shipped (amortised Stage 2:
    what every tile would otherwise relearn); 0 = the prior is the warmed-up network."""
    clip: bool = False
    """Clip the output to [0, sensor max DN]."""
    selection: str = "fr_loss"
    """Checkpoint rule: "hqnr" (on-the-fly HQNR of the whole tile), "fr_loss" (whole-tile FR loss), "last"."""
    eval_every: int = 25
    """Stage-2 steps between two whole-tile evaluations (selection and stopping); step 0 is always evaluated.
    Unused with ``selection="last"``, which infers the whole tile once, after the last step."""
    patience: int = 0
    """Stop after this many evaluations without relative improvement above ``min_rel_improvement`` (0 = never)."""
    min_rel_improvement: float = 1e-3
    """Relative improvement of the selection score that resets the patience counter."""

    def __post_init__(self) -> None:
        choices = {"schedule": SCHEDULES, "loss_norm": NORMS, "base": BASES, "selection": SELECTIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"config.{name}: expected one of {', '.join(allowed)}, found {getattr(self, name)!r}")
        positive = ("width", "depth", "dam_hidden", "batch", "eval_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InputError(f"config.{name}: expected an integer >= 1, found {getattr(self, name)!r}")
        for name in ("dam_steps", "warmup_steps", "rao_steps", "crop_px", "warmup_crop_px", "patience", "prior_steps"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"config.{name}: expected an integer >= 0, found {getattr(self, name)!r}")
        if not 0.0 <= self.rao_p <= 1.0:
            raise InputError(f"config.rao_p: expected a probability in [0, 1], found {self.rao_p!r}")
        if not (self.rao_p_end == -1.0 or 0.0 <= self.rao_p_end <= 1.0):
            raise InputError(f"config.rao_p_end: expected a probability in [0, 1] or -1, found {self.rao_p_end!r}")
        if not 0.0 <= self.holdout < 1.0:
            raise InputError(f"config.holdout: expected a share in [0, 1), found {self.holdout!r}")
        if self.selection == "holdout" and self.holdout <= 0:
            raise InputError("config.selection: 'holdout' needs config.holdout > 0 (the share of rows held out)")
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
            last_init_scale=0.0, dam_steps=1000, dam_lr=5e-3, warmup_steps=20, warmup_lr=5e-4, rao_steps=200,
            rao_p=0.3, schedule="sum", lr=3e-4, lambda_dl=0.0, lambda_ds=0.0, crop_px=256, batch=1, warmup_crop_px=32,
            base="auto", clip=True, selection="last", eval_every=10, patience=0, min_rel_improvement=5e-4,
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


@dataclass(frozen=True)
class Runtime:
    """Where and how the method runs; it never changes what is computed, so it is neither hashed nor checked on
    resume (a run started on CPU workers may resume on GPUs, or with another thread count)."""

    device: str = "auto"
    """"auto" = CUDA when present, else CPU; or "cpu" / "cuda"."""
    amp: bool = False
    """bfloat16 autocast for the network on CUDA (ignored on CPU)."""
    threads: int = 0
    """torch.set_num_threads value for the computation (0 = leave torch's setting alone)."""
    trace_indices: bool = False
    """Record the initial and final HQNR / D_λ^K / D_s of each tile in the trace (costs two metric evaluations)."""

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise InputError(f"runtime.device: expected one of {', '.join(DEVICES)}, found {self.device!r}")
        if int(self.threads) < 0:
            raise InputError(f"runtime.threads: expected an integer >= 0, found {self.threads!r}")
