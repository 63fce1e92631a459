"""One registry of fusion methods: `pansharpen`, `run`, the CLI choices and the demo all read it.

A method is an object with the `TileMethod` protocol. TRA-PAN and every classical method register here once; adding a
method is one class (or one `ClassicalMethod` line) and one `register` call. Heavy code (torch, rasterio) is imported
only when a method runs, so listing the names stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class TileOutput:
    """What a method returns for one tile."""

    fused: np.ndarray
    """(B, H, W) float64 DN on the tile's PAN grid."""
    steps: float = math.nan
    """Optimisation steps run (NaN for methods without any)."""


@dataclass(frozen=True)
class MethodPlan:
    """What a dry run reports about a method on one tile plan."""

    steps_per_tile_max: int = 0
    """Optimisation steps a tile may run (0 for closed-form methods)."""
    prior: dict[str, int] | None = None
    """The prior's cost (sample tiles and steps), None without a prior."""
    extra_memory_bytes: int = 0
    """Peak memory of one tile task beyond the arrays every method holds (network activations, optimiser state)."""


@runtime_checkable
class TileMethod(Protocol):
    """A fusion method as the run drives it: an optional per-scene prior, then one call per tile."""

    name: str
    """Registry and manifest name (lower case)."""
    needs_prior: bool
    """Whether `fit_prior` runs once per scene before the tiles."""
    tileable: bool
    """Whether the method can run on tiles (a method needing whole files cannot)."""

    def resolve_config(self, config: Any) -> Any:
        """The config the method will run with (None for methods without one); refuses a wrong type."""

    def load_config(self, d: dict[str, Any] | None) -> Any:
        """The config a manifest recorded (its ``to_dict``), for a resume."""

    def describe(self, config: Any, slot_px: int, prior_tiles: int) -> MethodPlan:
        """Steps, prior cost and extra memory of one tile task of ``slot_px``² PAN pixels (``trapan run --dry-run``)."""

    def fit_prior(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], sensor: str, config: Any, seed: int,
                  nodata: float | None, runtime: Any) -> tuple[bytes, str]:
        """Fit the per-scene prior on sample windows; returns its bytes and their content hash."""

    def load_prior(self, data: bytes) -> Any:
        """The prior from the bytes `fit_prior` returned (once per worker)."""

    def refine_tile(self, prior: Any, pan: np.ndarray, ms: np.ndarray, *, sensor: str, ratio: int, seed: int,
                    nodata: float | None, config: Any, runtime: Any) -> TileOutput:
        """Fuse one tile's ext window: PAN (H, W) and MS (B, h, w) float64 DN."""

    def fuse_pair(self, pan: np.ndarray, ms: np.ndarray, sensor: Any, ratio: int, *, config: Any,
                  seed: int) -> np.ndarray:
        """Fuse a whole in-memory pair as the toolbox does (wrap-around boundaries): `pansharpen` and baselines."""


class _NoPrior:
    """Shared by methods without a prior or config."""

    needs_prior = False

    def resolve_config(self, config: Any) -> None:
        return None  # a TrapanConfig (e.g. the CLI's preset) has no meaning here

    def load_config(self, d: dict[str, Any] | None) -> None:
        return None

    def describe(self, config: Any, slot_px: int, prior_tiles: int) -> MethodPlan:
        return MethodPlan()

    def fit_prior(self, pairs: Any, sensor: str, config: Any, seed: int, nodata: float | None,
                  runtime: Any) -> tuple[bytes, str]:
        raise InputError(f"method {self.name}: has no prior")  # type: ignore[attr-defined]

    def load_prior(self, data: bytes) -> None:
        return None


@dataclass(frozen=True)
class ClassicalMethod(_NoPrior):
    """A function of `trapan_cloud.baselines`, run on tiles with tile-safe (reflecting) interpolation when it has an
    ``interp_mode``: the toolbox's circular one would wrap a tile's opposite edges into each other."""

    name: str
    function: str
    """Attribute of `trapan_cloud.baselines`."""
    tileable: bool = True
    tile_kwargs: tuple[tuple[str, str], ...] = (("interp_mode", "reflect"),)

    def fn(self) -> Callable[..., np.ndarray]:
        from . import baselines

        return getattr(baselines, self.function)

    def refine_tile(self, prior: Any, pan: np.ndarray, ms: np.ndarray, *, sensor: str, ratio: int, seed: int,
                    nodata: float | None, config: Any, runtime: Any) -> TileOutput:
        return TileOutput(np.asarray(self.fn()(pan, ms, sensor, ratio, **dict(self.tile_kwargs)), dtype=np.float64))

    def fuse_pair(self, pan: np.ndarray, ms: np.ndarray, sensor: Any, ratio: int, *, config: Any,
                  seed: int) -> np.ndarray:
        return self.fn()(pan, ms, sensor, ratio)


@dataclass(frozen=True)
class CallableMethod(_NoPrior):
    """A user function ``f(pan (H, W), ms (B, h, w), sensor, ratio) -> (B, H, W)`` DN, run as is on every tile."""

    function: Callable[..., np.ndarray]
    tileable: bool = True

    @property
    def name(self) -> str:
        """``module:qualname``: how the manifest records a callable."""
        f = self.function
        return f"{getattr(f, '__module__', '?')}:{getattr(f, '__qualname__', repr(f))}"

    def refine_tile(self, prior: Any, pan: np.ndarray, ms: np.ndarray, *, sensor: str, ratio: int, seed: int,
                    nodata: float | None, config: Any, runtime: Any) -> TileOutput:
        return TileOutput(np.asarray(self.function(pan, ms, sensor, ratio), dtype=np.float64))

    def fuse_pair(self, pan: np.ndarray, ms: np.ndarray, sensor: Any, ratio: int, *, config: Any,
                  seed: int) -> np.ndarray:
        return self.function(pan, ms, sensor, ratio)


@dataclass(frozen=True)
class TrapanMethod:
    """TRA-PAN: Stage 1 fits one prior per scene (`fit_prior`), Stage 2 refines every tile from it (`refine_tile`)."""

    name: str = "trapan"
    needs_prior: bool = True
    tileable: bool = True

    def resolve_config(self, config: Any) -> Any:
        from .method.config import TrapanConfig

        config = TrapanConfig.default() if config is None else config
        if not isinstance(config, TrapanConfig):
            raise InputError(f"config: expected a TrapanConfig, found {type(config).__name__}")
        return config

    def load_config(self, d: dict[str, Any] | None) -> Any:
        from .method.config import TrapanConfig

        return TrapanConfig.from_dict(d or {})

    def describe(self, config: Any, slot_px: int, prior_tiles: int) -> MethodPlan:
        px = slot_px * slot_px
        infer = config.width * px * 4 * 4  # a few live feature maps at full tile size
        crop = (config.crop_px or slot_px) ** 2 * (config.batch if config.crop_px else 1)
        train = crop * config.width * 4 * (2 * config.depth + 2) * 3  # activations, gradients, Adam moments
        return MethodPlan(config.rao_steps, {"tiles": prior_tiles, "dam_steps": config.dam_steps,
                                             "warmup_steps": config.warmup_steps, "prior_steps": config.prior_steps},
                          infer + train)

    def fit_prior(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], sensor: str, config: Any, seed: int,
                  nodata: float | None, runtime: Any) -> tuple[bytes, str]:
        from .method.stage1 import fit_prior

        prior = fit_prior(list(pairs), sensor, config, seed=seed, nodata=nodata, runtime=runtime)
        return prior.to_bytes(), prior.hash

    def load_prior(self, data: bytes) -> Any:
        from .method.prior import Prior

        return Prior.from_bytes(data)

    def refine_tile(self, prior: Any, pan: np.ndarray, ms: np.ndarray, *, sensor: str, ratio: int, seed: int,
                    nodata: float | None, config: Any, runtime: Any) -> TileOutput:
        from .method.stage2 import refine_tile

        res = refine_tile(prior, pan, ms, seed=seed, nodata=nodata, config=config, runtime=runtime)
        return TileOutput(np.asarray(res.fused, dtype=np.float64), steps=int(res.trace.get("steps_run", 0)))

    def fuse_pair(self, pan: np.ndarray, ms: np.ndarray, sensor: Any, ratio: int, *, config: Any,
                  seed: int) -> np.ndarray:
        from .method import pansharpen_pair

        return pansharpen_pair(pan, ms, sensor, config=config, seed=seed, ratio=ratio)


_REGISTRY: dict[str, TileMethod] = {}


def register(method: TileMethod) -> TileMethod:
    """Add ``method`` under its (lower-case) name; a second method of the same name is refused."""
    if not isinstance(method, TileMethod):
        raise InputError(f"method: {method!r} does not have the TileMethod protocol")
    key = method.name.lower()
    if key in _REGISTRY and _REGISTRY[key] != method:
        raise InputError(f"method: {key!r} is already registered")
    _REGISTRY[key] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    _REGISTRY.pop(name.lower(), None)


def names(*, tileable: bool | None = None, classical: bool | None = None) -> tuple[str, ...]:
    """Registered names in registration order, optionally only the tileable or only the classical ones."""
    return tuple(k for k, m in _REGISTRY.items()
                 if (tileable is None or m.tileable == tileable)
                 and (classical is None or isinstance(m, ClassicalMethod) == classical))


def get_method(method: str | Callable[..., Any] | TileMethod, *, tiled: bool = False) -> TileMethod:
    """The registered method of that name, a `TileMethod` as is, or a user callable wrapped; ``tiled`` refuses the
    methods that cannot run on tiles."""
    if isinstance(method, TileMethod):
        found: TileMethod = method
    elif callable(method):
        found = CallableMethod(method)
    else:
        key = str(method).lower()
        choices = names(tileable=True if tiled else None)
        if key not in _REGISTRY:
            raise InputError(f"method: unknown method {method!r}; choose one of {', '.join(choices)}")
        found = _REGISTRY[key]
    if tiled and not found.tileable:
        raise InputError(f"method: {found.name} runs on whole files and cannot be tiled; use `trapan baseline` for "
                         f"it, or one of {', '.join(names(tileable=True))}")
    return found


register(TrapanMethod())
for _name, _function in (("exp", "exp"), ("bt-h", "bt_h"), ("mtf-glp-fs", "mtf_glp_fs"),
                         ("mtf-glp-hpm", "mtf_glp_hpm"), ("gsa", "gsa")):
    register(ClassicalMethod(_name, _function))
register(ClassicalMethod("gdal-brovey", "gdal_brovey", tileable=False, tile_kwargs=()))
