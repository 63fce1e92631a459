"""`Scene`: the typed contract between `open_scene` and every room that uses a scene (run, jobs, resume).

`open_scene` returns an ``xarray.Dataset`` (the public API); `Scene.from_dataset` is the one place its attributes are
read by name, and `SceneMeta.to_attrs` the one place they are written.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ResumeMismatchError
from .fingerprint import Fingerprint

if TYPE_CHECKING:
    import xarray as xr


def _floats(values: Any, n: int | None = None) -> tuple[float, ...]:
    """Plain floats (numpy scalars, lists, ``Affine`` all work), the first ``n`` when given."""
    out = tuple(float(v) for v in tuple(values))
    return out if n is None else out[:n]


def _nodata(value: Any) -> float | None:
    """The nodata value as a float; None for none (NaN declares no usable value).

    >>> _nodata(0), _nodata(None), _nodata(float("nan"))
    (0.0, None, None)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


@dataclass(frozen=True)
class SceneMeta:
    """What a scene's pixels mean: sensor, grids and nodata."""

    sensor: str
    """Sensor name (`trapan_cloud.sensors.KNOWN`)."""
    ratio: int
    """PAN pixels per MS pixel along each axis."""
    crs: str
    """CRS of both grids (EPSG code or WKT)."""
    pan_transform: tuple[float, ...]
    """PAN grid affine ``(a, b, c, d, e, f)``, rasterio order."""
    ms_transform: tuple[float, ...]
    """MS grid affine ``(a, b, c, d, e, f)``."""
    band_names: tuple[str, ...]
    """MS band names, one per band."""
    nodata: float | None = None
    """Nodata DN of PAN and MS (None: every pixel is valid)."""
    subpixel_shift_px: tuple[float, ...] = (0.0, 0.0)
    """Residual (y, x) shift of the MS pixel centres from the toolbox phase, in PAN pixels."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", int(self.ratio))
        object.__setattr__(self, "pan_transform", _floats(self.pan_transform, 6))
        object.__setattr__(self, "ms_transform", _floats(self.ms_transform, 6))
        object.__setattr__(self, "subpixel_shift_px", _floats(self.subpixel_shift_px))
        object.__setattr__(self, "band_names", tuple(str(b) for b in self.band_names))
        object.__setattr__(self, "nodata", _nodata(self.nodata))
        if self.ratio < 1:
            raise InputError(f"scene: ratio must be an integer >= 1, found {self.ratio}")

    def to_attrs(self, source: Source) -> dict[str, Any]:
        """The attributes of `open_scene`'s Dataset (lists, not tuples, as netCDF/Zarr attributes are)."""
        return {"sensor": self.sensor, "ratio": self.ratio, "crs": self.crs,
                "pan_transform": list(self.pan_transform), "ms_transform": list(self.ms_transform),
                "subpixel_shift_px": list(self.subpixel_shift_px), "nodata": self.nodata,
                "band_names": list(self.band_names), "source": source.to_dict()}


@dataclass(frozen=True)
class Source:
    """Where a scene's pixels come from, so that a resume can open it again; hrefs are kept `redact`-ed (they go into
    the run manifest)."""

    backend: str | None = None
    """"odc" or "stackstac" (STAC item), "rioxarray" (COG paths), None (built in memory)."""
    item: str | None = None
    """STAC item id."""
    item_href: str | None = None
    """Where the STAC item was read from (None: a dict or pystac object)."""
    pan_asset: str | None = None
    """Asset key of the PAN band."""
    ms_assets: tuple[str, ...] | None = None
    """Asset keys of the MS bands."""
    pan: str | None = None
    """PAN COG href."""
    ms: tuple[str, ...] | None = None
    """MS COG hrefs."""
    fingerprints: tuple[Fingerprint, ...] = ()
    """One per input file read (item, PAN, MS), so that a resume can refuse inputs that changed."""

    def __post_init__(self) -> None:
        from ..redaction import redact

        for name in ("item_href", "pan"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, redact(getattr(self, name)))
        if self.ms is not None:
            object.__setattr__(self, "ms", tuple(redact(h) for h in self.ms))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (tuples as lists, fingerprints keyed by name): the manifest's ``inputs``."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k != "fingerprints"}
        return {**d, "fingerprints": {f.name: f.to_dict() for f in self.fingerprints}}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Source:
        """The inverse of `to_dict`; keys it does not know (older in-memory markers) are ignored."""
        d = d or {}
        seq = lambda v: None if v is None else tuple(v)  # noqa: E731
        return cls(backend=d.get("backend"), item=d.get("item"), item_href=d.get("item_href"),
                   pan_asset=d.get("pan_asset"), ms_assets=seq(d.get("ms_assets")), pan=d.get("pan"),
                   ms=seq(d.get("ms")),
                   fingerprints=tuple(Fingerprint.from_dict(k, v) for k, v in (d.get("fingerprints") or {}).items()))

    def reopen(self, sensor: str, nodata: float | None) -> Scene:
        """Open the same scene again (`open_scene`); refuses a scene that was built in memory, and inputs whose
        fingerprint changed since the run started (`check_unchanged`)."""
        from .dataset import open_scene

        if self.item_href:
            ds = open_scene(self.item_href, sensor=sensor, backend=self.backend or "odc", pan_asset=self.pan_asset,
                            ms_assets=list(self.ms_assets) if self.ms_assets else None, nodata=nodata)
        elif self.pan and self.ms:
            ds = open_scene(pan=self.pan, ms=list(self.ms), sensor=sensor, nodata=nodata)
        else:
            raise InputError("scene: the run records no input files (the scene was built in memory); "
                             "resume it with run(scene, out, resume=True)")
        scene = Scene.from_dataset(ds)
        self.check_unchanged(scene.source)
        return scene

    def check_unchanged(self, now: Source) -> None:
        """Raise `ResumeMismatchError` naming every input whose fingerprint differs in ``now`` (or is gone)."""
        current = {f.name: f for f in now.fingerprints}
        changed = []
        for f in self.fingerprints:
            g = current.get(f.name)
            what = ["not read this time"] if g is None else f.changes(g)
            if what:
                changed.append(f"{f.name} {f.href!r} ({', '.join(what)})")
        if changed:
            raise ResumeMismatchError(f"inputs: {'; '.join(changed)} changed since the run started; restore the "
                                      "original file(s) to resume, or start a new run with overwrite")


@dataclass(frozen=True, eq=False)
class Scene:
    """A PAN/MS pair on aligned grids: ``pan`` (y, x) and ``ms`` (band, y_ms, x_ms) DataArrays, lazily loaded.

    Compared by identity (comparing the arrays would read them)."""

    pan: xr.DataArray
    """PAN DN (H, W), H = ratio·h."""
    ms: xr.DataArray
    """MS DN (B, h, w)."""
    meta: SceneMeta
    """Sensor, grids, nodata and band names."""
    source: Source = field(default_factory=Source)
    """Where the pixels come from (for a resume)."""

    def __post_init__(self) -> None:
        pan, ms, r = self.pan, self.ms, self.meta.ratio
        if pan.ndim != 2 or ms.ndim != 3:
            raise InputError(f"scene: expected pan (y, x) and ms (band, y_ms, x_ms), found pan {pan.dims} and "
                             f"ms {ms.dims}")
        if tuple(pan.shape) != (r * ms.shape[1], r * ms.shape[2]):
            raise InputError(f"scene: pan shape {tuple(pan.shape)} is not ratio {r} x the ms grid "
                             f"{tuple(ms.shape[1:])}")
        if len(self.meta.band_names) != ms.shape[0]:
            raise InputError(f"scene: {len(self.meta.band_names)} band names for {ms.shape[0]} MS bands")

    @property
    def bands(self) -> int:
        """Number of MS bands."""
        return int(self.ms.shape[0])

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> Scene:
        """The scene in an `open_scene` Dataset; a message names what is missing."""
        missing = [k for k in ("pan", "ms") if k not in ds]
        if missing:
            raise InputError(f"scene: expected variables 'pan' and 'ms' (from open_scene), missing {missing}")
        absent = [k for k in ("sensor", "ratio", "crs", "pan_transform") if k not in ds.attrs]
        if absent:
            raise InputError(f"scene: attributes {absent} are missing; open the scene with trapan_cloud.open_scene")
        a, ms = ds.attrs, ds["ms"]
        names = a.get("band_names")
        if names is None:
            from ..sensors import get_sensor

            names = ms.coords["band"].values if "band" in ms.coords else get_sensor(a["sensor"]).bands_for(
                ms.shape[0])
        r, (pa, pb, pc, pd, pe, pf) = int(a["ratio"]), _floats(a["pan_transform"], 6)
        ms_transform = a.get("ms_transform") or (pa * r, pb, pc, pd, pe * r, pf)  # corner-aligned by default
        meta = SceneMeta(sensor=a["sensor"], ratio=r, crs=str(a["crs"]), pan_transform=a["pan_transform"],
                         ms_transform=ms_transform, band_names=tuple(names),
                         nodata=a.get("nodata"), subpixel_shift_px=a.get("subpixel_shift_px") or (0.0, 0.0))
        source = a.get("source")
        return cls(ds["pan"], ms, meta, Source.from_dict(source if isinstance(source, dict) else None))

    def to_dataset(self) -> xr.Dataset:
        """The `open_scene` Dataset of this scene."""
        import xarray as xr

        return xr.Dataset({"pan": self.pan, "ms": self.ms}, attrs=self.meta.to_attrs(self.source))

    def arrays(self) -> tuple[Any, Any]:
        """PAN (H, W) and MS (B, h, w) loaded into memory as float64 DN."""
        import numpy as np

        return np.asarray(self.pan.values, dtype=np.float64), np.asarray(self.ms.values, dtype=np.float64)


def as_scene(scene: Any) -> Scene:
    """A `Scene` from a Scene, an `open_scene` Dataset, or anything `open_scene` accepts (STAC item, path, URL)."""
    if isinstance(scene, Scene):
        return scene
    import xarray as xr

    if isinstance(scene, xr.Dataset):
        return Scene.from_dataset(scene)
    from .dataset import open_scene

    return Scene.from_dataset(open_scene(scene))
