"""The ``trapan`` command: thin commands that parse flags, call the public API and print.

Results go to stdout, logs and progress to stderr; with ``--json -`` stdout carries the JSON document alone. Every
check that needs no cluster (flags, inputs, the output and the overwrite rule, ``--cog``/``--json`` destinations,
``--config``) runs before a cluster is started, and any error is one line on stderr. Run progress (`progress.py`:
phases, step counts, rate, ETA) goes to stderr once those checks have passed and the cluster is up.
Heavy rooms (torch, dask) are imported inside the commands, so ``trapan status`` and ``trapan --help`` start fast.
Shared flags are the ``*_opt`` decorators below, with one meaning each in every command. A `TrapanError` becomes one
line on stderr and a documented exit status (`cli_exits`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import click

from . import __version__
from .cli_exits import EXIT_CODES, Failure, Main, configure_logging, friendly
from .errors import CorruptStoreError, IncompleteRunError
from .redaction import redact
from .registry import names

log = logging.getLogger("trapan_cloud")

PRESETS = ("fast", "default", "best", "paper")  # = method.config.PRESETS, without importing torch at start-up


# Shared options: one meaning per flag, everywhere.
def input_opts(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--stac ITEM`` or ``--pan PAN --ms MS`` (+ ``--sensor``)."""
    fn = click.option("--sensor", default=None, help="Sensor name (e.g. WV2, WV3, Landsat8); default: from the item.")(fn)
    fn = click.option("--ms", "ms", multiple=True,
                      help="Multispectral COG path or URL: one multi-band file, or repeat --ms once per band "
                           "(single-band files on one grid, stacked in the order given).")(fn)
    fn = click.option("--pan", "pan", default=None, help="Panchromatic COG path or URL.")(fn)
    fn = click.option("--stac", "stac", default=None, help="STAC item: path or URL of its JSON.")(fn)
    return fn


scheduler_opt = click.option("--scheduler", default=None, envvar="DASK_SCHEDULER_ADDRESS",
                             help="Address of a running Dask scheduler (default: an embedded LocalCluster).")
gpu_opt = click.option("--gpu", is_flag=True, help="Route tile tasks to workers started with --resources GPU=1.")
tile_opt = click.option("--tile", type=click.IntRange(min=1), default=512, show_default=True,
                        help="Core tile size in PAN pixels.")
overwrite_opt = click.option("--overwrite", is_flag=True,
                             help="Replace an existing output that trapan_cloud wrote (a trapan store, a COG tagged "
                                  "TRAPAN_CLOUD_PRODUCT); anything else there is refused.")
preset_opt = click.option("--preset", type=click.Choice(PRESETS), default="default", show_default=True,
                          help="TRA-PAN configuration preset.")
config_opt = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
                          help="JSON file of TrapanConfig fields overriding the preset (unknown keys are an error).")
json_opt = click.option("--json", "json_out", default=None,
                        help="Also write the result as JSON to this file ('-': JSON only, to stdout).")


def store_arg(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The run store: ``OUT`` as an argument, or ``--out OUT`` as `trapan run` names it (one of the two)."""
    fn = click.option("--out", "out_opt", default=None, help="The run store (the same as OUT).")(fn)
    return click.argument("out", required=False)(fn)


def _store(out: str | None, out_opt: str | None) -> str:
    """The store named by OUT or --out."""
    if bool(out) == bool(out_opt):
        raise click.UsageError("name the run store once: OUT or --out OUT")
    from .redaction import refuse_credentials

    refuse_credentials(str(out or out_opt), "out")
    return str(out or out_opt)


def _scene(stac: str | None, pan: str | None, ms: tuple[str, ...] | str | None, sensor: str | None) -> Any:
    """Open the inputs named by --stac or --pan/--ms (--ms once for a multi-band file, or once per band), refusing
    ambiguous or missing combinations."""
    ms_files = [ms] if isinstance(ms, str) else list(ms or ())
    if stac and (pan or ms_files):
        raise click.UsageError("give either --stac or --pan/--ms, not both")
    if not stac and not (pan and ms_files):
        raise click.UsageError("give --stac ITEM, or both --pan PAN and --ms MS")
    from .scene import open_scene

    if stac:
        return open_scene(stac, sensor=sensor)
    return open_scene(pan=pan, ms=ms_files if len(ms_files) > 1 else ms_files[0], sensor=sensor)


def _config(preset: str, config_file: str | None) -> Any:
    from .jobs import load_config

    return load_config(preset, config_file)


def _check_json_dest(json_out: str | None) -> None:
    from .jobs import check_json_target

    check_json_target(json_out)


def _emit(payload: dict, json_out: str | None, text: str) -> None:
    """``text`` on stdout, or the JSON alone with ``--json -``; the JSON also to the ``--json`` file."""
    if json_out == "-":
        click.echo(json.dumps(payload, indent=1, default=str))
        return
    click.echo(text)
    if json_out:
        with open(json_out, "w") as f:
            json.dump(payload, f, indent=1, default=str)


def _progress(opened: tuple[str, float] | None = None, cluster: tuple[str, float] | None = None) -> Any:
    """The command's progress on stderr (`progress.for_stderr`: None under -q), closed as stopped, not done, should
    the command stop early.

    Created once the checks have passed and the cluster is up, so that a refused input or an unreachable scheduler
    is the one line on stderr; it then announces those phases, ``(detail, time.monotonic() at their start)``.
    """
    from .progress import enter_phase, for_stderr

    progress = for_stderr()
    if progress is not None:
        click.get_current_context().call_on_close(lambda: progress.close(completed=False))
    for name, phase in (("open", opened), ("cluster", cluster)):
        if phase is not None:
            enter_phase(progress, name, detail=redact(phase[0]), t0=phase[1])
    return progress


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="trapan")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less log output on stderr (repeatable).")
def main(verbose: int, quiet: int) -> None:
    """TRA-PAN one-shot pansharpening of whole scenes, from STAC items or COGs to georeferenced Zarr.

    \b
    Typical use:
      trapan run --stac item.json --out fused.zarr          # embedded Dask cluster
      trapan run --pan pan.tif --ms ms.tif --sensor WV2 --out s3://bucket/fused.zarr --scheduler tcp://host:8786
      trapan status fused.zarr                               # tiles done / pending / failed, QA
      trapan resume fused.zarr                               # after a crash: only unfinished tiles are computed
      trapan evaluate --stac item.json --fused fused.zarr    # full-resolution quality indices
      trapan demo                                            # the whole job on the bundled real sample
    """
    configure_logging(verbose, quiet)


@main.command()
@input_opts
@click.option("--out", required=True, help="Output Zarr store: local path or fsspec URL (s3://bucket/key.zarr).")
@scheduler_opt
@tile_opt
@click.option("--overlap", type=int, default=None,
              help="Halo per side in PAN pixels (default: >= 48, a multiple of the ratio).")
@gpu_opt
@preset_opt
@config_opt
@click.option("--method", type=click.Choice(names(tileable=True)), default="trapan", show_default=True,
              help="trapan, or a classical method run tile by tile, for comparison runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Run seed; each tile's seed derives from it.")
@click.option("--dtype", type=click.Choice(["auto", "uint8", "uint16", "int16", "float32"]), default="auto",
              show_default=True, help="Output dtype. auto: the input's (uint8, uint16, int16 stay; float inputs such "
                                      "as 0-1 reflectance give float32); an integer type rounds and clips.")
@click.option("--zarr-format", type=click.Choice(["2", "3"]), default="2", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the plan (tiles, halo, memory per task, steps) and stop.")
@overwrite_opt
@click.option("--cog", "cog_path", default=None, help="Also export the fused result as a Cloud-Optimized GeoTIFF here.")
@click.option("--keep-tiles", is_flag=True, help="Keep the stage-A tiles in the store (default: deleted at the end).")
@json_opt
@friendly
def run(stac: str | None, pan: str | None, ms: tuple[str, ...], sensor: str | None, out: str, scheduler: str | None,
        tile: int, overlap: int | None, gpu: bool, preset: str, config_file: str | None, method: str, seed: int,
        dtype: str, zarr_format: str, dry_run: bool, overwrite: bool, cog_path: str | None, keep_tiles: bool,
        json_out: str | None) -> None:
    """Pansharpen a scene tile by tile on Dask and write a georeferenced, resumable Zarr store (every check that
    needs no cluster, --overwrite's rule included, is made before one starts)."""
    from . import runner
    from .progress import enter_phase

    t_open = time.monotonic()
    _check_json_dest(json_out)
    config = _config(preset, config_file)
    scene = _scene(stac, pan, ms, sensor)
    if dry_run:
        plan = runner.plan_run(scene, out, config=config, tile=tile, overlap=overlap, method=method)
        _emit(plan, json_out, json.dumps(plan, indent=1, default=str))
        return
    opts = runner.RunOptions(config=config, tile_px=tile, halo_px=overlap, method=method, seed=seed, gpu=gpu,
                             overwrite=overwrite, dtype=dtype, zarr_format=int(zarr_format), keep_tiles=keep_tiles)
    if cog_path:
        from .geotiff import check_cog_target

        check_cog_target(cog_path, overwrite)
    runner.check_run(scene, out, opts)  # inputs, plan, output: all before the cluster
    from .cluster import client_for

    t_cluster = time.monotonic()
    with client_for(scheduler, gpu=gpu) as client:
        progress = _progress((stac or pan or "", t_open), (scheduler or "embedded", t_cluster))
        result = runner.run(scene, out, client=client, progress=progress, options=opts)
    extra = {}
    if result.complete:
        from .store import publish

        if cog_path:
            enter_phase(progress, "export", detail=redact(cog_path))
        extra = publish(out, cog_path, overwrite)  # the COG, and the item that lists it
    if progress is not None:
        progress.close(completed=result.complete)
    _emit({**result.to_dict(), **extra}, json_out, result.summary() + "".join(f"\n{k}: {v}" for k, v in extra.items()))
    if not result.complete:
        raise Failure(IncompleteRunError(f"{result.tiles_failed} tile(s) failed; run `trapan resume {out}`"))


@main.command()
@store_arg
@scheduler_opt
@gpu_opt
@json_opt
@friendly
def resume(out: str | None, out_opt: str | None, scheduler: str | None, gpu: bool, json_out: str | None) -> None:
    """Finish an interrupted run: only tiles not marked done are computed; other settings are refused."""
    from . import runner
    from .store import open_store

    t_open = time.monotonic()
    out = _store(out, out_opt)
    _check_json_dest(json_out)
    scene, opts = runner.resume_plan(out, gpu=gpu)  # the store, its settings and unchanged inputs: before any cluster
    if open_store(out).status == "complete":  # nothing to compute (unless a check finds damage): no cluster
        progress = _progress((out, t_open))
        result = runner.run(scene, out, progress=progress, options=opts)
    else:
        from .cluster import client_for

        t_cluster = time.monotonic()
        with client_for(scheduler, gpu=gpu) as client:
            progress = _progress((out, t_open), (scheduler or "embedded", t_cluster))
            result = runner.run(scene, out, client=client, progress=progress, options=opts)
    if progress is not None:
        progress.close(completed=result.complete)
    from .store import publish

    extra = publish(out) if result.complete else {}
    _emit({**result.to_dict(), **extra}, json_out, result.summary() + "".join(f"\n{k}: {v}" for k, v in extra.items()))
    if not result.complete:
        raise Failure(IncompleteRunError(f"{result.tiles_failed} tile(s) failed; run `trapan resume {out}` again"))


@main.command()
@store_arg
@click.option("--verify", is_flag=True, help="Also check that every done tile's chunks exist and decode.")
@json_opt
@friendly
def status(out: str | None, out_opt: str | None, verify: bool, json_out: str | None) -> None:
    """Tiles done / pending / failed and the per-tile QA summary (mean, worst value and tile) of a store; never loads
    torch."""
    from .store import store_status

    out = _store(out, out_opt)
    _check_json_dest(json_out)
    info = store_status(out, verify=verify)
    _emit(info, json_out, "\n".join(f"{key:>18}: {value}" for key, value in info.items()))
    if verify and not info["integrity"]["ok"]:
        raise Failure(CorruptStoreError(info["integrity"]["summary"]))


@main.command()
@input_opts
@click.option("--fused", required=True, help="A trapan Zarr store or a GeoTIFF on the PAN grid.")
@json_opt
@friendly
def evaluate(stac: str | None, pan: str | None, ms: tuple[str, ...], sensor: str | None, fused: str,
             json_out: str | None) -> None:
    """Full-resolution quality indices (HQNR, D_lambda^K, D_s, QNR, D_lambda) of a fused image, toolbox-exact."""
    from .jobs import evaluate_fused

    _check_json_dest(json_out)
    scores = evaluate_fused(_scene(stac, pan, ms, sensor), fused)
    _emit(scores, json_out, "\n".join(f"{key:>12}: {value:.4f}" if isinstance(value, float) else f"{key:>12}: {value}"
                                      for key, value in scores.items()))


@main.command()
@click.option("--method", "method", required=True, type=click.Choice(names(classical=True)))
@input_opts
@click.option("--out", required=True, help="Output GeoTIFF (COG) on the PAN grid.")
@overwrite_opt
@json_opt
@friendly
def baseline(method: str, stac: str | None, pan: str | None, ms: tuple[str, ...], sensor: str | None, out: str,
             overwrite: bool, json_out: str | None) -> None:
    """Run a classical method on the whole scene in memory (global statistics, as the toolbox) and write a COG."""
    from .geotiff import check_cog_target
    from .jobs import write_baseline

    _check_json_dest(json_out)
    check_cog_target(out, overwrite, what="out")
    path = write_baseline(_scene(stac, pan, ms, sensor), method, out, overwrite=overwrite)
    _emit({"out": path, "method": method}, json_out, path)


@main.command()
@click.option("--catalog", default=None, help="Static STAC catalog/collection JSON or an ItemCollection file.")
@click.option("--api", default=None, help="STAC API URL to search (with --collections, --bbox, --datetime).")
@click.option("--collections", default=None, help="Comma-separated collection ids for --api.")
@click.option("--bbox", default=None, help="minx,miny,maxx,maxy in lon/lat for --api.")
@click.option("--datetime", "datetime_", default=None, help="RFC 3339 datetime or interval for --api.")
@click.option("--out-prefix", required=True, help="Folder or fsspec prefix; one store per item: PREFIX/ITEM.zarr.")
@scheduler_opt
@preset_opt
@config_opt
@tile_opt
@gpu_opt
@json_opt
@friendly
def batch(catalog: str | None, api: str | None, collections: str | None, bbox: str | None, datetime_: str | None,
          out_prefix: str, scheduler: str | None, preset: str, config_file: str | None, tile: int, gpu: bool,
          json_out: str | None) -> None:
    """Run every item of a catalog or search, one resumable store per item; finished items are skipped."""
    if bool(catalog) == bool(api):
        raise click.UsageError("give exactly one of --catalog or --api")
    from .batch import run_batch
    from .cluster import client_for

    _check_json_dest(json_out)
    config = _config(preset, config_file)
    t_cluster = time.monotonic()
    with client_for(scheduler, gpu=gpu) as client:
        progress = _progress(cluster=(scheduler or "embedded", t_cluster))
        result = run_batch(catalog, out_prefix, config=config, client=client, api=api,
                           collections=collections.split(",") if collections else None,
                           bbox=[float(v) for v in bbox.split(",")] if bbox else None, datetime=datetime_,
                           tile=tile, gpu=gpu, progress=progress)
    if progress is not None:
        progress.close(completed=not result.failed)
    _emit(json.loads(result.to_json()), json_out, result.table())
    if result.failed:
        raise Failure(IncompleteRunError(f"{len(result.failed)} item(s) failed; see the table; run the batch again "
                                          "to retry them"))


@main.command()
@click.option("--out", "out_dir", default="demo-out", show_default=True, help="Folder for inputs, store and report.")
@preset_opt
@scheduler_opt
@json_opt
@friendly
def demo(out_dir: str, preset: str, scheduler: str | None, json_out: str | None) -> None:
    """The main job on the bundled real WorldView-2 sample: COGs + STAC item → Dask → Zarr → quicklook + report.

    --json gives the report (report.json in the output folder)."""
    import os

    from .jobs import run_demo

    _check_json_dest(json_out)
    summary = run_demo(out_dir, preset=preset, scheduler=scheduler)
    with open(os.path.join(out_dir, "report.json")) as f:
        report = json.load(f)
    _emit(report, json_out, summary)


if __name__ == "__main__":  # pragma: no cover
    main()
