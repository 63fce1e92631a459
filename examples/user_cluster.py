"""Give your own Dask cluster the worker settings of trapan_cloud's embedded cluster, check them, and run on it.

The embedded cluster (`trapan run` without ``--scheduler``) starts its workers with glibc malloc settings, one
OpenMP/torch thread per task thread and quiet Dask housekeeping (bench/RESULTS.md, "user cluster", measures what they
are worth). A cluster you start yourself gets them in two steps:

1. ``with dask.config.set(tc.worker_config()): LocalCluster(...)`` (or the same keys in a YAML file for
   ``dask worker``, as ``deploy/dask.yaml``): the malloc variables must be in the worker process's environment when
   it starts, which only the nanny's ``distributed.nanny.pre-spawn-environ`` does (``LocalCluster(env=...)`` is set
   after the process has started: too late for glibc).
2. ``tc.configure_cluster(client)``: registers `tc.WorkerSettings` (torch threads, profiler off, 1-s tick) on every
   worker, also on workers that join later, and returns what each worker still lacks.

``--route worker_config`` (the default) starts a cluster both ways and runs a scene on it; ``--route plain`` starts a
plain ``LocalCluster`` and calls only ``configure_cluster``, to show what that leaves out. Each route runs in its own
process: a nanny copies the variables it gives its worker into its own process's environment, and a cluster started
later in the same process would inherit them, whatever its config says.

    python examples/user_cluster.py [--route worker_config|plain] [--workers 2] [--method mtf-glp-fs] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import dask
from distributed import Client, LocalCluster

import trapan_cloud as tc
from trapan_cloud.cluster import check_workers
from trapan_cloud.samples import load_sample, write_sample_item


def lacking(check: dict[str, list[str]]) -> list[str]:
    """What the first worker lacks (every worker of a LocalCluster is started alike)."""
    return next(iter(check.values()))


def cluster_kwargs(workers: int) -> dict:
    """One single-thread worker process per core you give it, on loopback only."""
    return {"n_workers": workers, "threads_per_worker": 1, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--route", choices=("worker_config", "plain"), default="worker_config",
                    help="start the cluster with tc.worker_config() (recommended), or plain")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--method", default="mtf-glp-fs", help="trapan or a classical method for the final run")
    ap.add_argument("--out", default=None, help="Folder for the inputs and the store (default: a temporary one)")
    ap.add_argument("--json", action="store_true", help="Print what each cluster lacks as JSON (stdout)")
    args = ap.parse_args()
    report: dict = {"route": args.route}
    if args.route == "worker_config":
        with dask.config.set(tc.worker_config()):  # the nanny reads it when it is created
            cluster = LocalCluster(**cluster_kwargs(args.workers))
    else:
        cluster = LocalCluster(**cluster_kwargs(args.workers))
    with cluster, Client(cluster) as client:
        report["before configure_cluster"] = lacking(check_workers(client))
        report["after configure_cluster"] = lacking(tc.configure_cluster(client))
        out_dir = args.out or tempfile.mkdtemp(prefix="trapan-user-cluster-")
        item = write_sample_item(load_sample("sn6-1").crop("uc", 0, 0, 32), os.path.join(out_dir, "inputs"))
        result = tc.run(tc.open_scene(item), os.path.join(out_dir, "fused.zarr"), client=client, method=args.method,
                        tile=64, overlap=16, overwrite=True)
    report["run"] = result.summary()
    report["run_complete"] = result.complete
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for step in ("before configure_cluster", "after configure_cluster"):
        print(f"{args.route}, {step}: {'; '.join(report[step]) or 'every setting present'}")
    print(report["run"])


if __name__ == "__main__":
    main()
