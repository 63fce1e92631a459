"""Small jobs composed from the rooms for the command line: evaluate a fused image, run a classical baseline on a
whole scene, the demo (the main job on the bundled real sample), and the CLI's early checks (``--config``,
``--json``)."""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import numpy as np

from .errors import InputError
from .qa import Q_BLOCK, evaluation_window
from .redaction import redact
from .scene.model import as_scene
from .validate import full_scale, on_sensor_scale, validity

log = logging.getLogger(__name__)


def load_config(preset: str, config_file: str | None = None) -> Any:
    """The preset's `TrapanConfig` with the fields of the JSON file ``config_file`` on top (``--config``).

    A file that is not JSON, or JSON that is not an object, is an `InputError` naming the file (unknown keys too)."""
    import json

    from .method.config import TrapanConfig

    config = getattr(TrapanConfig, preset)()
    if not config_file:
        return config
    try:
        with open(config_file) as f:
            overrides = json.load(f)
    except json.JSONDecodeError as exc:
        raise InputError(f"config: {config_file} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno}); expected an object of TrapanConfig fields") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"config: cannot read {config_file} ({exc})") from None
    if not isinstance(overrides, dict):
        raise InputError(f"config: {config_file} holds a JSON {type(overrides).__name__}; expected an object of "
                         "TrapanConfig fields")
    return TrapanConfig.from_dict({**config.to_dict(), **overrides})


def check_json_target(path: str | None) -> None:
    """Refuse, before any work, a ``--json`` file that could not be written at the end (``-`` is stdout)."""
    if not path or path == "-":
        return
    if os.path.isdir(path):
        raise InputError(f"json: {path} is a folder; give a file name (or '-' for stdout)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError(f"json: the folder of {path} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"json: {path} is not writable; choose another path (or '-' for stdout)")


def scene_arrays(scene: Any) -> tuple[np.ndarray, np.ndarray]:
    """Load a scene's (`Scene`, `open_scene` Dataset, ...) PAN (H, W) and MS (B, h, w) into memory as float64 DN."""
    return as_scene(scene).arrays()


def load_fused(path: str) -> np.ndarray:
    """A fused image (B, H, W) from a trapan Zarr store or a GeoTIFF."""
    if path.rstrip("/").endswith(".zarr") or os.path.isdir(path):
        from .store import open_result

        return np.asarray(open_result(path)["fused"].values, dtype=np.float64)
    import rioxarray

    try:
        return np.asarray(rioxarray.open_rasterio(path).values, dtype=np.float64)
    except Exception as exc:  # rasterio raises several types for unreadable files
        raise InputError(f"fused: cannot read {path!r} as a GeoTIFF or trapan Zarr store ({exc})") from exc


def score_full_resolution(fused: np.ndarray, pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int,
                          nodata: float | None = 0) -> dict:
    """Toolbox full-resolution indices on the largest block-aligned window, plus the share of nodata pixels in it.

    Values on another full scale than the sensor's DN (0-1 reflectance, 8 bits: `validate.full_scale`) are mapped onto
    its DN range first, as the toolbox's uint16 Q2n needs; the indices are ratios, so this changes no DN result."""
    from .metrics import full_resolution
    from .sensors import get_sensor

    H, W = evaluation_window(pan.shape, ratio)
    if H == 0 or W == 0:
        step = math.lcm(Q_BLOCK, ratio)
        raise InputError(f"fused: the image {pan.shape} is smaller than one {step}-px evaluation block")
    f, p, m = fused[:, :H, :W], pan[:H, :W], ms[:, : H // ratio, : W // ratio]
    max_dn = get_sensor(sensor).max_dn
    f, p, m = on_sensor_scale((f, p, m), full_scale([(pan, ms)], max_dn, nodata), max_dn)
    scores = full_resolution(f, p, m, sensor, ratio=ratio)
    scores["window_px"] = f"{H}x{W}"
    scores["nodata_fraction"] = float(1.0 - validity(p, m, ratio, nodata)[0].mean())
    return scores


def evaluate_fused(scene: Any, fused_path: str) -> dict:
    """Full-resolution indices of a fused image against the scene it was made from (same PAN grid required)."""
    sc = as_scene(scene)
    pan, ms = sc.arrays()
    fused = load_fused(fused_path)
    if fused.shape[1:] != pan.shape or fused.shape[0] != ms.shape[0]:
        raise InputError(f"fused: shape {fused.shape} does not match the scene (bands {ms.shape[0]}, PAN {pan.shape}); "
                         "evaluate needs the fused image on the scene's PAN grid")
    return score_full_resolution(fused, pan, ms, sc.meta.sensor, sc.meta.ratio, sc.meta.nodata)


def fuse_whole(pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int, nodata: float | None,
               method: str) -> np.ndarray:
    """A classical method on a whole in-memory pair (PAN (H, W), MS (B, h, w) DN), nodata kept as nodata."""
    from .registry import get_method
    from .sensors import get_sensor

    fused = get_method(method).fuse_pair(pan, ms, get_sensor(sensor), ratio, config=None, seed=0)
    if nodata is not None:
        fused[:, ~validity(pan, ms, ratio, nodata)[0]] = nodata
    return fused


def write_baseline(scene: Any, method: str, out: str, overwrite: bool = False) -> str:
    """Run ``method`` on the whole scene and write a COG on the PAN grid, in the input's dtype as `run`'s ``dtype="auto"``
    chooses it (integer DN rounded and clipped to the sensor's range; float inputs such as 0-1 reflectance as float32).

    An existing ``out`` is refused unless ``overwrite``, and even then replaced only if this project wrote it
    (`geotiff.check_cog_target`); both are checked before any work."""
    from affine import Affine

    from .geotiff import check_cog_target, write_cog
    from .runner.plan import resolve_dtype
    from .sensors import get_sensor

    check_cog_target(out, overwrite, what="out")
    sc = as_scene(scene)
    meta = sc.meta
    pan, ms = sc.arrays()
    fused = fuse_whole(pan, ms, meta.sensor, meta.ratio, meta.nodata, method)
    sensor = get_sensor(meta.sensor)
    out_dtype = np.dtype(resolve_dtype("auto", sc.pan.dtype, sensor))
    if out_dtype.kind == "f":
        data = fused.astype(out_dtype)
    else:
        data = np.clip(np.rint(fused), 0, min(np.iinfo(out_dtype).max, sensor.max_dn)).astype(out_dtype)
    return write_cog(out, data, Affine(*meta.pan_transform), meta.crs, meta.nodata, meta.band_names)


def run_demo(out_dir: str = "demo-out", preset: str = "default", scheduler: str | None = None,
             sample: str = "sn6-1", tile: int = 512, progress: Any = "stderr") -> str:
    """The main job on a bundled real sample; returns a short text summary.

    ``tile`` defaults to `trapan run`'s core, so the demo shows what a user's run gives (``bench/tiling.py``: smaller
    cores train each pixel more with the same config and score a lower HQNR than the whole image). ``progress``:
    "stderr" shows the run's phases as `trapan run` does (`progress.for_stderr`), or give any progress `run` takes
    (None: silent).

    Writes the sample as COGs + a STAC item, opens it lazily, runs TRA-PAN tile by tile on Dask into a Zarr store,
    then scores the result and every classical baseline with the toolbox's full-resolution indices (HQNR and its
    distortions, and the reprojection protocol's R- indices and D_rho), and writes report.json / report.html with: a
    quicklook (upsampled MS vs fused), zoomed crops of the same windows (PAN, upsampled MS, the classical method with
    the highest HQNR, TRA-PAN) at the tiles where TRA-PAN's own HQNR is best and worst, and the per-tile HQNR map read
    from the store's QA arrays. The store holds the product's STAC item.
    """
    from .progress import for_stderr

    progress = for_stderr() if progress == "stderr" else progress
    try:
        summary = _demo(out_dir, preset, scheduler, sample, tile, progress)
    except BaseException:
        if hasattr(progress, "close"):
            progress.close(completed=False)
        raise
    if hasattr(progress, "close"):
        progress.close()
    return summary


def _score_classical(rows: dict[str, dict], pan: np.ndarray, ms: np.ndarray, sensor: str, ratio: int,
                     nodata: float | None) -> tuple[str, np.ndarray]:
    """Add a row per classical method (full-resolution indices, seconds) to ``rows``; the name and image of the one
    with the highest HQNR."""
    from .registry import names

    best_name, best_fused = "", None
    for method in names(classical=True):
        t0 = time.perf_counter()
        other = fuse_whole(pan, ms, sensor, ratio, nodata, method)
        rows[method] = {**score_full_resolution(other, pan, ms, sensor, ratio, nodata),
                        "seconds": time.perf_counter() - t0}
        if best_fused is None or rows[method]["HQNR"] > rows[best_name]["HQNR"]:
            best_name, best_fused = method, other
    return best_name, best_fused


def _demo(out_dir: str, preset: str, scheduler: str | None, sample: str, tile: int, progress: Any) -> str:
    """`run_demo`'s work, its phases reported to ``progress``."""
    from . import runner
    from .cluster import client_for
    from .method.config import TrapanConfig
    from .physics import interp23tap
    from .progress import enter_phase
    from .report import (FR_KEYS, ZOOM, crop_windows, crops_png, markdown_table, qa_map_png, quicklook_png,
                         write_report)
    from .samples import load_sample, write_sample_item
    from .store import open_result, open_store

    t_open = time.monotonic()
    os.makedirs(out_dir, exist_ok=True)
    scene = as_scene(write_sample_item(load_sample(sample), os.path.join(out_dir, "inputs")))
    store = os.path.join(out_dir, "fused.zarr")
    t_cluster = time.monotonic()
    with client_for(scheduler) as client:  # phases announced once passed, as `trapan run` does
        enter_phase(progress, "open", detail=sample, t0=t_open)
        enter_phase(progress, "cluster", detail=redact(scheduler or "embedded"), t0=t_cluster)
        result = runner.run(scene, store, config=getattr(TrapanConfig, preset)(), client=client, tile=tile,
                            overwrite=True, progress=progress)
    enter_phase(progress, "report", detail=out_dir)
    pan, ms = scene.arrays()
    sensor, ratio, nodata = scene.meta.sensor, scene.meta.ratio, scene.meta.nodata
    fused = np.asarray(open_result(store)["fused"].values, dtype=np.float64)
    rows: dict[str, dict] = {"trapan (tiled, Dask)": {**score_full_resolution(fused, pan, ms, sensor, ratio, nodata),
                                                      "seconds": float(result.seconds_total)}}
    best_name, best_fused = _score_classical(rows, pan, ms, sensor, ratio, nodata)
    upsampled = interp23tap(ms, ratio)
    bands = scene.meta.band_names
    png = quicklook_png(os.path.join(out_dir, "quicklook.png"),
                        {"MS (23-tap upsampled)": upsampled, "TRA-PAN fused": fused}, bands, nodata)
    st = open_store(store)
    hqnr = st.qa()["hqnr"]
    windows = crop_windows(hqnr, st.plan.tiles)
    crops = crops_png(os.path.join(out_dir, "crops.png"), windows, pan,
                      {"MS (23-tap upsampled)": upsampled, best_name: best_fused, "TRA-PAN": fused}, bands, nodata)
    qa_png, (worst, best) = qa_map_png(os.path.join(out_dir, "qa_map.png"), hqnr, st.plan.tiles, fused, bands, nodata)
    keys = (*FR_KEYS, "seconds")
    item = st.item_url
    meta = {"sample": sample, "sensor": sensor, "ratio": ratio, "preset": preset, "store": store, "item": item,
            "tile_px": tile, "tiles": result.tiles_total, "window": rows["trapan (tiled, Dask)"]["window_px"],
            "best_classical": best_name, "crop_windows": windows,
            "tile_hqnr": [[None if not math.isfinite(v) else round(float(v), 4) for v in row] for row in hqnr]}
    images = [(png, "Quicklook: the 23-tap upsampled MS and the TRA-PAN result, one stretch."),
              (crops, f"Zoomed crops (x{ZOOM}), left to right: PAN, upsampled MS, {best_name} (the classical method "
                      "with the highest HQNR), TRA-PAN; top row: the tile where TRA-PAN's HQNR is best, bottom row: worst "
                      f"(windows y0, y1, x0, x1: {windows['best']}, {windows['worst']})."),
              (qa_png, f"Per-tile HQNR of the TRA-PAN run (the store's QA layer) over the result: brighter tint = "
                       f"higher, from {worst:.4f} (dark) to {best:.4f} (bright).")]
    json_path, html_path = write_report(out_dir, f"trapan_cloud demo: {sample}", rows, keys, meta, images)
    return (markdown_table(rows, keys) + f"\n\nstore: {store}\nSTAC item: {item}\nquicklook: {png}\ncrops: {crops}"
            f"\nQA map: {qa_png}\nreport: {html_path} ({json_path})")
