"""The ``trapan`` command: thin commands that parse flags, call the public API and print.

Results go to stdout, logs and progress to stderr; with ``--json -`` stdout carries the JSON document alone. Every
check that needs no cluster (flags, inputs, the output and the overwrite rule, ``--cog``/``--json`` destinations,
``--config``) runs before a cluster is started, and any error is one line on stderr. Heavy rooms (torch, dask) are
imported inside the commands, so ``trapan status`` and ``trapan --help`` start fast. Shared flags are the ``*_opt`` decorators below, with one meaning
each in every command. A `TrapanError` becomes one paragraph on stderr and a documented exit status (`EXIT_CODES`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from functools import wraps
from typing import Any, Callable

import click

from . import __version__
from .errors import IncompleteRunError, TrapanError
from .registry import names

log = logging.getLogger("trapan_cloud")

PRESETS = ("fast", "default", "best", "paper")  # = method.config.PRESETS, without importing torch at start-up
EXIT_ERROR, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130
EXIT_CODES = (f"Exit status: 0 when the command did all it was asked; {EXIT_ERROR} for an input or store error; "
              f"{EXIT_USAGE} for a usage error; {EXIT_INCOMPLETE} for a run that ended with tiles not done "
              f"(resume it); "
              f"{EXIT_INTERRUPTED} when interrupted.")


def _configure_logging(verbose: int, quiet: int) -> None:
    level = max(logging.DEBUG, logging.WARNING - 10 * verbose + 10 * quiet)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("trapan_cloud")
    root.handlers[:] = [handler]
    root.setLevel(level)


def _one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks collapsed: every error is one line on stderr."""
    return " ".join(str(text).split())


class _Main(click.Group):
    """The ``trapan`` group: any click or project error is one line on stderr (no usage block, no traceback) and its
    exit status (2 for usage errors)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `trapan`: the help text, as click shows it
                exc.show()
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
            click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


class _Failure(click.ClickException):
    """One line on stderr and the exit status of its error class."""

    def __init__(self, exc: TrapanError) -> None:
        from .redaction import redact

        super().__init__(redact(f"{type(exc).__name__}: {exc}"))
        self.exit_code = EXIT_INCOMPLETE if isinstance(exc, IncompleteRunError) else EXIT_ERROR


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the project's own errors into one paragraph and their exit status (click keeps 2 for usage errors)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers may be set
        previous = signal.signal(signal.SIGINT, _on_sigint) if main_thread else None
        try:
            return fn(*args, **kwargs)
        except TrapanError as exc:
            raise _Failure(exc) from exc
        except KeyboardInterrupt:
            click.echo(_interrupted(fn.__name__, kwargs.get("out") or kwargs.get("out_opt")), err=True)
            if _SIGINT_SEEN:  # a real ^C: exit now, so a cluster close it interrupted is not retried at exit (which
                sys.stdout.flush()  # waits up to a minute and prints a traceback); the workers follow their parent
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            if previous is not None:  # None: not a Python-level handler, or not the main thread
                signal.signal(signal.SIGINT, previous)

    return wrapper


_SIGINT_SEEN = False
"""Whether a SIGINT reached `_on_sigint` (rather than a KeyboardInterrupt raised by code)."""


def _on_sigint(signum: int, frame: Any) -> None:
    """^C: closing the cluster mid-task makes distributed and asyncio complain (a busy worker killed, a cancelled
    gather); that is expected now, so they are silenced, and the command is interrupted."""
    global _SIGINT_SEEN
    _SIGINT_SEEN = True
    for name in ("distributed", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def _interrupted(command: str, out: str | None) -> str:
    """The one line a ^C ends a command with: for `run` and `resume`, how to continue the run when its store exists."""
    if command not in ("run", "resume") or not out:
        return "interrupted"
    from .redaction import redact
    from .store import output_exists

    try:
        resumable = output_exists(out)
    except Exception:  # noqa: BLE001 - an unreachable output just gets the plain message
        resumable = False
    return f"interrupted; continue with `trapan resume {redact(out)}`" if resumable else "interrupted"


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


class _TileProgress:
    """A tqdm-like counter on stderr, advanced by the run once per finished tile (it sets ``total``)."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n
        click.echo(f"\rtiles {self.n}/{self.total}", err=True, nl=self.n >= (self.total or 0))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
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
    _configure_logging(verbose, quiet)


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
@click.option("--dtype", type=click.Choice(["uint16", "float32"]), default="uint16", show_default=True)
@click.option("--zarr-format", type=click.Choice(["2", "3"]), default="3", show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the plan (tiles, halo, memory per task, steps) and stop.")
@overwrite_opt
@click.option("--cog", "cog_path", default=None, help="Also export the fused result as a Cloud-Optimized GeoTIFF here.")
@json_opt
@_friendly
def run(stac: str | None, pan: str | None, ms: tuple[str, ...], sensor: str | None, out: str, scheduler: str | None,
        tile: int, overlap: int | None, gpu: bool, preset: str, config_file: str | None, method: str, seed: int,
        dtype: str, zarr_format: str, dry_run: bool, overwrite: bool, cog_path: str | None,
        json_out: str | None) -> None:
    """Pansharpen a scene tile by tile on Dask and write a georeferenced, resumable Zarr store (every check that
    needs no cluster, --overwrite's rule included, is made before one starts)."""
    from . import runner

    _check_json_dest(json_out)
    config = _config(preset, config_file)
    scene = _scene(stac, pan, ms, sensor)
    if dry_run:
        plan = runner.plan_run(scene, out, config=config, tile=tile, overlap=overlap, method=method)
        _emit(plan, json_out, json.dumps(plan, indent=1, default=str))
        return
    opts = runner.RunOptions(config=config, tile_px=tile, halo_px=overlap, method=method, seed=seed, gpu=gpu,
                             overwrite=overwrite, dtype=dtype, zarr_format=int(zarr_format))
    if cog_path:
        from .geotiff import check_cog_target

        check_cog_target(cog_path, overwrite)
    runner.check_run(scene, out, opts)  # inputs, plan, output: all before the cluster
    from .cluster import client_for

    with client_for(scheduler, gpu=gpu) as client:
        result = runner.run(scene, out, client=client, progress=_TileProgress(), options=opts)
    payload, text = result.to_dict(), result.summary()
    if result.complete and cog_path:
        from .store import export_cog

        payload["cog"] = export_cog(out, cog_path, overwrite=overwrite)
        text += f"\nCOG: {payload['cog']}"
    _emit(payload, json_out, text)
    if not result.complete:
        raise _Failure(IncompleteRunError(f"{result.tiles_failed} tile(s) failed; run `trapan resume {out}`"))


@main.command()
@store_arg
@scheduler_opt
@gpu_opt
@json_opt
@_friendly
def resume(out: str | None, out_opt: str | None, scheduler: str | None, gpu: bool, json_out: str | None) -> None:
    """Finish an interrupted run: only tiles not marked done are computed; other settings are refused."""
    from . import runner
    from .store import open_store

    out = _store(out, out_opt)
    _check_json_dest(json_out)
    if open_store(out).status == "complete":  # nothing to compute: no cluster (a missing store is refused here)
        result = runner.resume(out, progress=_TileProgress(), gpu=gpu)
    else:
        from .cluster import client_for

        with client_for(scheduler, gpu=gpu) as client:
            result = runner.resume(out, client=client, progress=_TileProgress(), gpu=gpu)
    _emit(result.to_dict(), json_out, result.summary())
    if not result.complete:
        raise _Failure(IncompleteRunError(f"{result.tiles_failed} tile(s) failed; run `trapan resume {out}` again"))


@main.command()
@store_arg
@json_opt
@_friendly
def status(out: str | None, out_opt: str | None, json_out: str | None) -> None:
    """Tiles done / pending / failed and the per-tile QA summary (mean, worst value and tile) of a store; never loads
    torch."""
    from .store import store_status

    out = _store(out, out_opt)
    _check_json_dest(json_out)
    info = store_status(out)
    _emit(info, json_out, "\n".join(f"{key:>18}: {value}" for key, value in info.items()))


@main.command()
@input_opts
@click.option("--fused", required=True, help="A trapan Zarr store or a GeoTIFF on the PAN grid.")
@json_opt
@_friendly
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
@_friendly
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
@_friendly
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
    with client_for(scheduler, gpu=gpu) as client:
        result = run_batch(catalog, out_prefix, config=config, client=client, api=api,
                           collections=collections.split(",") if collections else None,
                           bbox=[float(v) for v in bbox.split(",")] if bbox else None, datetime=datetime_,
                           tile=tile, gpu=gpu)
    _emit(json.loads(result.to_json()), json_out, result.table())
    if result.failed:
        raise _Failure(IncompleteRunError(f"{len(result.failed)} item(s) failed; see the table; run the batch again "
                                          "to retry them"))


@main.command()
@click.option("--out", "out_dir", default="demo-out", show_default=True, help="Folder for inputs, store and report.")
@preset_opt
@scheduler_opt
@json_opt
@_friendly
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
