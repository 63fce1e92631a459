"""Deployment files, checked offline: kustomize renders, Kubernetes and Dask-operator schemas, GPU vs CPU overlays,
no secret values, and the Dockerfile's install steps against the Makefile's.

No cluster, helm or Docker engine is needed: `kubectl kustomize` renders offline, built-in objects (and the pod specs
inside the Dask CRs) are checked with kubernetes-validate, and the DaskJob/DaskCluster CRs against the CRD schemas
shipped in the dask-kubernetes wheel (reference/STACK.md §6.4).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TARGETS = ("base", "overlays/cpu", "overlays/gpu")
K8S_VERSION = "1.33.0"
"""Kubernetes schema version for kubernetes-validate (a currently supported minor release)."""
GPU = "nvidia.com/gpu"

# ---------------------------------------------------------------------------------------------------- helpers

def kustomize(path: Path) -> list[dict]:
    """Render a kustomization directory offline with `kubectl kustomize`."""
    proc = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {t: kustomize(K8S / t) for t in TARGETS}


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def cluster_spec(doc: dict) -> dict:
    """The DaskCluster spec of a DaskCluster or of a DaskJob's embedded cluster."""
    return doc["spec"]["cluster"]["spec"] if doc["kind"] == "DaskJob" else doc["spec"]


def worker_container(doc: dict) -> dict:
    return cluster_spec(doc)["worker"]["spec"]["containers"][0]


def job_container(doc: dict) -> dict:
    return doc["spec"]["job"]["spec"]["containers"][0]


def pod_specs(doc: dict) -> Iterator[tuple[str, dict]]:
    """Every PodSpec inside a Dask CR: scheduler, workers and (DaskJob) the job runner."""
    spec = cluster_spec(doc)
    yield "scheduler", spec["scheduler"]["spec"]
    yield "worker", spec["worker"]["spec"]
    if doc["kind"] == "DaskJob":
        yield "job", doc["spec"]["job"]["spec"]


def _crd_schema_fix(node: Any) -> Any:
    """OpenAPI v3 extensions → Draft 7: int-or-string as anyOf, nullable as a null alternative, and unknown fields
    rejected (the API server would silently prune them: typos in `resources` go unnoticed, dask-kubernetes#650)."""
    if isinstance(node, list):
        return [_crd_schema_fix(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _crd_schema_fix(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def crd_validators() -> dict[str, jsonschema.Draft7Validator]:
    crds = resources.files("dask_kubernetes").joinpath("operator", "deployment", "helm", "dask-kubernetes-operator",
                                                       "crds")
    out = {}
    for name in ("daskjob.yaml", "daskcluster.yaml"):
        crd = yaml.safe_load(crds.joinpath(name).read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schema = _crd_schema_fix(version["schema"]["openAPIV3Schema"])
        # apiVersion/kind/metadata are checked by the API server, not by the CRD schema.
        schema["properties"].update(apiVersion={"const": "kubernetes.dask.org/v1"},
                                    kind={"const": crd["spec"]["names"]["kind"]}, metadata={"type": "object"})
        out[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(schema)
    return out


def crd_errors(validators: dict[str, jsonschema.Draft7Validator], doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validators[doc["kind"]].iter_errors(doc)]


def builtin_objects(doc: dict) -> Iterator[dict]:
    """Built-in objects to check with kubernetes-validate: the object itself, or the pods/services a Dask CR makes."""
    if doc["apiVersion"].startswith("kubernetes.dask.org/"):
        name = doc["metadata"]["name"]
        for role, spec in pod_specs(doc):
            yield {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-{role}"}, "spec": spec}
        yield {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-scheduler"},
               "spec": cluster_spec(doc)["scheduler"]["service"]}
    else:
        yield doc


# ---------------------------------------------------------------------------------------------------- manifests

def test_every_target_renders_the_batch_job_and_the_interactive_cluster(rendered):
    for target, docs in rendered.items():
        assert sorted(d["kind"] for d in docs) == ["DaskCluster", "DaskJob"], target


def test_dask_crs_match_the_operator_crd_schemas(rendered, crd_validators):
    for target, docs in rendered.items():
        for doc in docs:
            assert crd_errors(crd_validators, doc) == [], f"{target}: {doc['kind']}"


def test_crd_check_catches_unquoted_gpu_quantities_and_typos(rendered, crd_validators):
    job = copy.deepcopy(one(rendered["overlays/gpu"], "DaskJob"))
    worker_container(job)["resources"]["limits"][GPU] = 1
    assert any("is not of type 'string'" in e for e in crd_errors(crd_validators, job))
    job = copy.deepcopy(one(rendered["overlays/cpu"], "DaskJob"))
    worker_container(job)["resource"] = worker_container(job).pop("resources")
    assert any("'resource' was unexpected" in e for e in crd_errors(crd_validators, job))
    job = copy.deepcopy(one(rendered["overlays/cpu"], "DaskJob"))
    del cluster_spec(job)["scheduler"]
    assert any("'scheduler' is a required property" in e for e in crd_errors(crd_validators, job))


def test_pods_and_services_are_valid_kubernetes_objects(rendered):
    checked = 0
    for target, docs in rendered.items():
        for doc in docs:
            for obj in builtin_objects(doc):
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
                checked += 1
    assert checked == len(TARGETS) * (4 + 3)  # DaskJob: 3 pods + service; DaskCluster: 2 pods + service


def test_kubernetes_validate_is_not_vacuous(rendered):
    pod = next(o for o in builtin_objects(one(rendered["overlays/cpu"], "DaskCluster")) if o["kind"] == "Pod")
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_job_runs_trapan_on_the_operator_scheduler(rendered):
    for target, docs in rendered.items():
        job = one(docs, "DaskJob")
        c = job_container(job)
        assert "command" not in c, "the image ENTRYPOINT is `trapan`; the job passes its subcommand as args"
        args = c["args"]
        assert args[0] == "run" and "--stac" in args
        # The operator injects DASK_SCHEDULER_ADDRESS into the job container; Kubernetes expands $(VAR) in args.
        assert args[args.index("--scheduler") + 1] == "$(DASK_SCHEDULER_ADDRESS)"
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert args[args.index("--out") + 1] == "$(TRAPAN_OUT)" and env["TRAPAN_OUT"].startswith("s3://")
        assert args[args.index("--stac") + 1] == "$(TRAPAN_STAC)" and env["TRAPAN_STAC"]
        assert job["spec"]["job"]["spec"]["restartPolicy"] == "Never"
        images = {worker_container(job)["image"], c["image"],
                  cluster_spec(job)["scheduler"]["spec"]["containers"][0]["image"]}
        assert len(images) == 1, f"{target}: job, scheduler and workers must run the same code: {images}"


def test_workers_run_one_task_at_a_time_with_memory_request_equal_to_limit(rendered):
    for target, docs in rendered.items():
        for doc in docs:
            w = worker_container(doc)
            assert w["command"] == ["dask", "worker"]
            assert w["args"][w["args"].index("--nthreads") + 1] == "1"
            res = w["resources"]
            assert res["requests"]["memory"] == res["limits"]["memory"], f"{target} {doc['kind']}"
            for role, spec in pod_specs(doc):
                for c in spec["containers"]:
                    assert "memory" in c["resources"]["limits"], f"{target} {doc['kind']} {role}: no memory limit"


def test_gpu_overlay_adds_gpu_limits_dask_resources_and_placement(rendered):
    for doc in rendered["overlays/gpu"]:
        w = worker_container(doc)
        assert w["resources"]["limits"][GPU] == "1" == w["resources"]["requests"][GPU]
        i = w["args"].index("--resources")
        assert w["args"][i + 1] == "GPU=1"
        spec = cluster_spec(doc)["worker"]["spec"]
        assert spec["nodeSelector"] and any(t["key"] == GPU for t in spec["tolerations"])
        assert spec["nodeSelector"] and all(isinstance(v, str) for v in spec["nodeSelector"].values())
        assert w["image"].endswith("-cuda")
    assert "--gpu" in job_container(one(rendered["overlays/gpu"], "DaskJob"))["args"]


def test_cpu_overlay_has_no_gpu_anything(rendered):
    for target in ("base", "overlays/cpu"):
        text = json.dumps(rendered[target])
        assert GPU not in text and "GPU=1" not in text and "--gpu" not in text and "tolerations" not in text
    assert worker_container(one(rendered["overlays/cpu"], "DaskJob"))["image"].endswith("-cpu")


def test_resume_component_turns_the_job_into_trapan_resume(tmp_path):
    overlay = tmp_path / "resume"
    overlay.mkdir()
    rel = lambda p: os.path.relpath(p, overlay)  # noqa: E731 - kustomize refuses absolute paths
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [rel(K8S / "overlays" / "gpu")], "components": [rel(K8S / "components" / "resume")]}))
    job = one(kustomize(overlay), "DaskJob")
    assert job_container(job)["args"] == ["resume", "$(TRAPAN_OUT)", "--scheduler", "$(DASK_SCHEDULER_ADDRESS)",
                                          "--gpu"]


# ---------------------------------------------------------------------------------------------------- secrets

SECRETISH = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.I)


def walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def all_manifests(rendered) -> Iterator[tuple[str, dict]]:
    for target, docs in rendered.items():
        for d in docs:
            yield target, d
    for path in DEPLOY.rglob("*.y*ml"):
        for d in yaml.safe_load_all(path.read_text()):
            if d:
                yield str(path.relative_to(ROOT)), d


def test_no_secret_values_anywhere(rendered):
    for where, doc in all_manifests(rendered):
        for node in walk(doc):
            if node.get("kind") == "Secret":
                assert not node.get("data") and not node.get("stringData"), f"{where}: Secret with values"
            if "name" in node and "value" in node and SECRETISH.search(str(node["name"])):
                pytest.fail(f"{where}: literal value for {node['name']}; use secretKeyRef/envFrom")
            assert "stringData" not in node, where
    for path in [*DEPLOY.rglob("*"), ROOT / "Dockerfile"]:
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{path}: looks like an AWS access key id"
            inline = re.search(r"(?i)aws_secret_access_key\s*[=:]\s*[\"']?[A-Za-z0-9/+]{20,}", text)
            assert not inline, f"{path}: inline secret"


def test_credentials_come_from_a_secret_by_reference(rendered):
    for target, docs in rendered.items():
        for doc in docs:
            containers = [worker_container(doc)] + ([job_container(doc)] if doc["kind"] == "DaskJob" else [])
            for c in containers:
                refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
                refs += [e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                         if "secretKeyRef" in e.get("valueFrom", {})]
                assert refs, f"{target} {doc['kind']} {c['name']}: object-store credentials not referenced"


# ---------------------------------------------------------------------------------------------------- image

def _pip_installs(lines: list[str]) -> list[list[str]]:
    """The targets of each `pip install` (options and the pip self-upgrade dropped; $(X)/${X} spelled $X; extras
    dropped, so `-e ".[dev]"` and `"."` are the same project install)."""
    out = []
    for line in lines:
        for part in re.split(r";|&&", line):
            if "pip install" not in part:
                continue
            words = shlex.split(re.sub(r"\$[({](\w+)[)}]", r"$\1", part.split("pip install", 1)[1]))
            targets, skip = [], False
            for w in words:
                if skip:
                    skip = False
                elif w in ("--index-url", "--extra-index-url", "-i", "-c", "-r"):
                    skip = True
                elif not w.startswith("-") and w != "\\":
                    targets.append(re.sub(r"^\.\[[^]]*]$", ".", w))
            if targets and targets != ["pip"]:
                out.append(targets)
    return out


def _makefile_setup_lines() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "Makefile: the $(VENV)/.installed recipe moved"
    return recipe.group(1).splitlines()


def _dockerfile_runs() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [m.group(1) for m in re.finditer(r"^RUN\s+(.*)$", text, re.M)]


def test_dockerfile_installs_exactly_as_the_makefile_does():
    make, docker = _pip_installs(_makefile_setup_lines()), _pip_installs(_dockerfile_runs())
    assert make == [["$TORCH_SPEC"], ["."]]
    assert docker == make
    make_spec = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    docker_spec = re.search(r"^ARG TORCH_SPEC=(\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert docker_spec == make_spec


def test_dockerfile_variants_user_entrypoint_and_gdal_env():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    assert "https://download.pytorch.org/whl/cpu" in text and "cuda)" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert text.rindex("USER") < text.rindex("ENTRYPOINT")
    assert re.search(r'^ENTRYPOINT \["trapan"\]$', text, re.M)
    assert re.search(r'^CMD \["--help"\]$', text, re.M)
    assert "GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR" in text
    assert not re.search(r"^(ENV|ARG)\s+\S*(SECRET|PASSWORD|TOKEN|ACCESS_KEY)", text, re.M | re.I)
    for command in _dockerfile_runs():  # /bin/sh runs them in the image: at least they must parse
        proc = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        assert proc.returncode == 0, f"Dockerfile RUN does not parse: {proc.stderr}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "demo-out", "**/__pycache__", ".pytest_cache"):
        assert entry in ignored, f".dockerignore: {entry} missing"


def test_entrypoint_reaches_the_trapan_command():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["trapan"] == "trapan_cloud.cli:main"
    exe = Path(sys.executable).with_name("trapan")
    assert exe.exists(), f"{exe}: the console script is missing; run `make setup`"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: trapan" in proc.stdout and "run" in proc.stdout and "batch" in proc.stdout


def test_readme_covers_build_install_apply_watch_resume_scale():
    text = (DEPLOY / "README.md").read_text()
    for needle in ("--build-arg TORCH_VARIANT=cuda", "helm install", "dask-kubernetes-operator",
                   "kubectl apply -k deploy/k8s/overlays/gpu", "kubectl get daskjobs", "trapan resume",
                   "kubectl scale", "trapan-object-store"):
        assert needle in text, f"deploy/README.md: {needle!r} missing"


def test_image_dask_config_sets_the_worker_malloc_environment():
    """Workers in the image get the same pre-spawn malloc settings and quiet housekeeping as the embedded cluster
    (cluster.MALLOC_ENV, cluster.QUIET_CONFIG)."""
    import dask

    from trapan_cloud.cluster import MALLOC_ENV, QUIET_CONFIG

    assert "COPY deploy/dask.yaml /etc/dask/" in (ROOT / "Dockerfile").read_text()
    conf = yaml.safe_load((ROOT / "deploy" / "dask.yaml").read_text())
    env = conf["distributed"]["nanny"]["pre-spawn-environ"]
    assert {k: str(env[k]) for k in MALLOC_ENV} == MALLOC_ENV
    # dask reads the file the way the image's /etc/dask does: the nanny's pre-spawn environment changes accordingly
    merged = dask.config.update(dask.config.collect(paths=[]), conf)
    assert str(merged["distributed"]["nanny"]["pre-spawn-environ"]["MALLOC_TRIM_THRESHOLD_"]) == "268435456"
    with dask.config.set(merged):
        assert {k: dask.config.get(k) for k in QUIET_CONFIG} == QUIET_CONFIG
