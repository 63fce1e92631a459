"""`TrapanConfig`: every knob of TRA-PAN's two stages, as one frozen, hashable dataclass, and `Runtime`: where it runs.

``TrapanConfig()`` is the shipped default, chosen by measurement on the four bench crops at both resolutions and
over three seeds (``bench/ablation.py``, ``bench/quality.py``; the tables and the decision rule are in
``bench/RESULTS.md``): the one-shot network refines the classical result with the best HQNR on the pair
(``base="auto"``), starting from that image (the last conv starts at zero), with Stage 2 randomly alternating
reduced-resolution supervision and full-resolution consistency (RAO, the paper's Stage 2; the chance of a
reduced-resolution step falls linearly from 1 to 0 over the steps) on small random crops with a small network
(FusionNet width 16, depth 2: it ties the width-32 network by the decision rule at a fifth of its compute), and the
last iterate kept.
The index-shaped losses and HQNR-based selection raise the no-reference index while moving the image away from the
truth, so the default uses neither.

Presets: ``default()`` (= ``TrapanConfig()``), ``fast()`` (seconds on a CPU: tests and smoke runs), ``best()``
(the highest mean reduced-resolution Q2n measured: the width-32 network, 600 steps, ten times the compute) and ``paper()`` (the reconstruction of
``reference/TRAPAN.md`` §4 with ZS-Pan's numbers where the paper is silent).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import InputError

CLASSICAL_BASES = ("mtf-glp-fs", "exp", "bt-h", "gsa", "mtf-glp-hpm")
BASES = ("lms", "auto") + CLASSICAL_BASES
SELECTIONS = ("hqnr", "fr_loss", "last", "holdout")
SCHEDULES = ("rao", "sequential", "sum")
NORMS = ("mse", "l1")
DEVICES = ("auto", "cpu", "cuda")
PRESETS = ("default", "fast", "best", "paper")
"""Names of the `TrapanConfig` preset constructors (the CLI's ``--preset`` choices)."""


@dataclass(frozen=True)
class TrapanConfig:
    """All settings of Stage 1 (DAM + warm-up) and Stage 2 (RAO); use the presets and `dataclasses.replace`."""

    width: int = 16
    """Feature channels of the FusionNet body."""
    depth: int = 2
    """Number of ResBlocks in the FusionNet body."""
    last_init_scale: float = 0.0
    """Factor on the initial weights of the last conv; near 0 makes step 0 reproduce the base image."""
    dam_hidden: int = 32
    """Hidden width of the DAM MLP (TRA-PAN appendix: 32)."""
    dam_steps: int = 1000
    """Adam steps fitting the DAM (MS → MTF-degraded PAN at MS scale), full batch of valid MS pixels."""
    dam_lr: float = 5e-3
    """DAM learning rate."""
    warmup_steps: int = 20
    """Supervised reduced-resolution steps of Stage 1b (0 = no warm-up)."""
    warmup_lr: float = 5e-4
    """Warm-up learning rate."""
    rao_steps: int = 300
    """Maximum number of Stage-2 steps (adaptive stopping may end earlier)."""
    rao_p: float = 1.0
    """Probability that the first Stage-2 step is the reduced-resolution supervised branch (1 = RR, 0 = FR); it
    moves linearly to ``rao_p_end`` at the last step."""
    rao_p_end: float = 0.0
    """RAO probability at the last step (-1 = ``rao_p`` throughout). The default anneals from 1 to 0: mostly
    reduced-resolution supervision first, mostly full-resolution consistency last, so the kept last iterate is not
    one a reduced-resolution step has just pulled away from the full-resolution pair."""
    schedule: str = "rao"
    """Stage-2 loss schedule: "rao" (random alternation), "sequential" (all RR steps first, then FR: ZS-Pan-like),
    "sum" (RR + FR losses summed at every step: G-ZAP-like)."""
    lr: float = 3e-4
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
    crop_px: int = 128
    """PAN-scale side of the random crops a Stage-2 step trains on (0 = the whole tile)."""
    batch: int = 1
    """Crops per Stage-2 step (ignored when ``crop_px`` is 0)."""
    warmup_crop_px: int = 32
    """MS-scale side of the random crops of the reduced-resolution pairs (warm-up and RR steps; 0 = whole image)."""
    base: str = "auto"
    """Image the network refines: "lms" (23-tap upsampled MS, the paper), a classical method's result, or "auto":
    the classical result with the best HQNR on the pair itself (MTF-GLP-FS where HQNR cannot be computed)."""
    holdout: float = 0.0
    """Share of the reduced-resolution pair's rows (a bottom strip) never trained on, in either stage; with
    ``selection="holdout"`` its error picks the checkpoint and decides stopping (0 = no holdout)."""
    prior_steps: int = 0
    """Stage-2 steps run jointly on all of the prior's sample pairs before the prior is shipped (amortised Stage 2:
    what every tile would otherwise relearn); 0 = the prior is the warmed-up network."""
    clip: bool = True
    """Clip the output to [0, sensor max DN]."""
    selection: str = "last"
    """Checkpoint rule: "last" (the last iterate), "holdout" (the lowest error on the held-out strip of the
    reduced-resolution pair), "hqnr" (on-the-fly HQNR of the whole tile) or "fr_loss" (whole-tile FR loss)."""
    eval_every: int = 10
    """Stage-2 steps between two evaluations (selection and stopping); step 0 is always evaluated.
    Unused with ``selection="last"``, which infers the whole tile once, after the last step."""
    patience: int = 0
    """Stop after this many evaluations without relative improvement above ``min_rel_improvement`` (0 = never)."""
    min_rel_improvement: float = 5e-4
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
        self._warn_inert()

    def _warn_inert(self) -> None:
        """Warn about knobs set away from their default that the chosen schedule or selection never reads."""
        inert = []
        if self.schedule == "sum":
            inert += ["rao_p", "rao_p_end"]
        elif self.schedule == "sequential":
            inert += ["rao_p_end"]
        if self.selection == "last":
            inert += ["eval_every", "patience", "min_rel_improvement"]
        defaults = {f.name: f.default for f in fields(self)}
        changed = [n for n in inert if getattr(self, n) != defaults[n]]
        if changed:
            warnings.warn(f"config: {', '.join(changed)} ha{'s' if len(changed) == 1 else 've'} no effect with "
                          f"schedule={self.schedule!r} and selection={self.selection!r}", UserWarning, stacklevel=4)

    # ------------------------------------------------------------------ presets
    @classmethod
    def default(cls) -> TrapanConfig:
        """The shipped default (= ``TrapanConfig()``; see the module docstring)."""
        return cls()

    @classmethod
    def fast(cls) -> TrapanConfig:
        """A few seconds on a CPU: for tests and smoke runs, not for quality."""
        return replace(cls(), width=16, depth=2, dam_steps=150, warmup_steps=10, rao_steps=12, crop_px=64, batch=2)

    @classmethod
    def best(cls) -> TrapanConfig:
        """The highest mean reduced-resolution Q2n measured on the bench crops (FusionNet 32/4, 600 steps), at about
        ten times the default's compute; it does not win on every crop or index (bench/RESULTS.md, "ablation")."""
        return replace(cls(), width=32, depth=4, rao_steps=600)

    @classmethod
    def paper(cls) -> TrapanConfig:
        """TRAPAN.md §4 reconstruction with ZS-Pan's settings: FusionNet 32/4 refining the 23-tap upsampled MS, MSE
        losses λ_spe 8 / λ_spa 1, DAM 2,500 steps, warm-up 80 steps, RAO p 0.5 for 250 whole-tile steps at lr 5e-4,
        checkpoint on the full-resolution loss, no clipping."""
        return cls(width=32, depth=4, last_init_scale=1.0, dam_steps=2500, dam_lr=5e-4, warmup_steps=80, warmup_lr=1e-3, rao_steps=250,
                   rao_p=0.5, schedule="rao", lr=5e-4, crop_px=0, batch=1, warmup_crop_px=0, base="lms", clip=False,
                   selection="fr_loss", eval_every=25, min_rel_improvement=1e-3)

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
