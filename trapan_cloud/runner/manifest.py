"""`RunManifest`: the settings a run store was made with, versioned; a resume must match it field for field."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import ResumeMismatchError

MANIFEST_VERSION = 1
"""Version of the manifest's layout; `RunManifest.from_dict` refuses any other."""


@dataclass(frozen=True)
class GridRecord:
    """The output grid: the scene's PAN grid and where its MS grid sits."""

    crs: str
    pan_transform: tuple[float, ...]
    ms_transform: tuple[float, ...]
    subpixel_shift_px: tuple[float, ...]
    pan_shape: tuple[int, int]
    ratio: int


@dataclass(frozen=True)
class RunManifest:
    """Everything that decides a run's output bytes (the runtime, which does not, is left out)."""

    trapan_cloud_version: str
    """Package version that made the store (another version may refine tiles differently)."""
    inputs: dict[str, Any]
    """The scene's `Source` (credential-free hrefs), for `resume` to open it again."""
    sensor: str
    bands: tuple[str, ...]
    nodata: float | None
    grid: GridRecord
    tiling: dict[str, Any]
    """`TilePlan.to_dict`."""
    method: str
    """Registry name, or ``module:qualname`` of a user callable."""
    config: dict[str, Any] | None
    """The method's config (`TrapanConfig.to_dict`), None for methods without one."""
    config_hash: str | None
    prior_tiles: int
    seed: int
    dtype: str
    zarr_format: int
    prior_hash: str | None = None
    """Content hash of the stored prior (None until fitted, and for methods without one)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with ``manifest_version``: what the store keeps."""
        return json.loads(json.dumps({"manifest_version": MANIFEST_VERSION, **asdict(self)}))

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "store") -> RunManifest:
        """The manifest in a store; refuses another version or unknown keys with a message naming them."""
        version = d.get("manifest_version") if isinstance(d, dict) else None
        if version != MANIFEST_VERSION:
            raise ResumeMismatchError(f"{where}: run manifest version {version!r}, this trapan_cloud reads version "
                                      f"{MANIFEST_VERSION}; finish it with the version that started it, or start a "
                                      "new run with overwrite")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - {"manifest_version"})
        if unknown:
            raise ResumeMismatchError(f"{where}: run manifest has unknown keys {unknown}")
        values = {k: v for k, v in d.items() if k in known}
        values["grid"] = GridRecord(**{**values["grid"], **{k: tuple(values["grid"][k]) for k in
                                                             ("pan_transform", "ms_transform", "subpixel_shift_px",
                                                              "pan_shape")}})
        values["bands"] = tuple(values["bands"])
        return cls(**values)

    def with_prior(self, prior_hash: str | None) -> RunManifest:
        """A copy naming the prior."""
        return replace(self, prior_hash=prior_hash)

    def diff(self, other: RunManifest) -> list[str]:
        """Every key whose value differs, in full, as ``key: self VALUE, other VALUE`` (nested keys dotted)."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        missing = "(absent)"
        return [f"{k}: {json.dumps(a.get(k, missing))} vs {json.dumps(b.get(k, missing))}"
                for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys.

    >>> _flatten({"a": {"b": 1, "c": [2]}, "d": None})
    {'a.b': 1, 'a.c': [2], 'd': None}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume(stored: RunManifest, expected: RunManifest, where: str) -> None:
    """Raise `ResumeMismatchError` listing every setting in which ``expected`` differs from the store's."""
    differences = stored.diff(expected)
    if differences:
        raise ResumeMismatchError(f"{where} was made with other settings (store vs now: {'; '.join(differences)}); "
                                  "resume with the same settings, or start a new run with overwrite")
