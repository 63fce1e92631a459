"""Opening inputs: STAC items and COGs to a lazy PAN/MS `xarray.Dataset` (the only room that knows pystac,
odc-stac, stackstac and rioxarray; each is imported only when a scene is opened).

Modules: `grid` (metadata arithmetic and checks), `cog` (file headers and rioxarray), `stac` (items, asset choice,
odc-stac/stackstac), `dataset` (`open_scene` and the returned Dataset), `model` (`Scene`, `SceneMeta`, `Source`: the
typed scene every other room takes), `fingerprint` (what a run records of each input file, so a resume can refuse a
changed one).
"""

from __future__ import annotations

from .dataset import open_scene
from .model import Scene, SceneMeta, Source, as_scene

__all__ = ("open_scene", "Scene", "SceneMeta", "Source", "as_scene")
