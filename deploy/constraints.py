"""Write the image's pinned runtime requirements (deploy/constraints.txt) from the environment this runs in.

    .venv/bin/python deploy/constraints.py > deploy/constraints.txt

Walks the installed `trapan_cloud` distribution's runtime requirements (not the `dev` extra) and their requirements,
transitively, evaluating environment markers for this interpreter and platform, and prints `name==version` for every
distribution reached, as installed here, plus the build backend (setuptools) that the Dockerfile's
`pip install --no-build-isolation .` uses. torch, triton and the nvidia-* CUDA libraries are left out: the Dockerfile's
TORCH_VARIANT build argument chooses them (the CPU wheel or a CUDA build). torch's own pure-Python requirements
(sympy, filelock, ...) stay pinned. Run it in the venv that the tests pass in (`make setup`), on linux/x86_64
Python 3.11 like the image, so that platform markers resolve as they do there.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "trapan_cloud"


def chosen_by_build_arg(name: str) -> bool:
    """Installed by the Dockerfile's torch step from the torch wheel index, not from these pins."""
    name = canonicalize_name(name)
    return name == "torch" or name == "triton" or name.startswith("nvidia-")


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    try:
        return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))
    except UndefinedEnvironmentName:
        return False


def build_requirements() -> list[str]:
    """Names of the build backend's requirements that are installed here (the Dockerfile builds the project with
    --no-build-isolation, so setuptools comes from these pins; setuptools >= 70.1 needs no `wheel`)."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    names = [Requirement(r).name for r in pyproject["build-system"]["requires"]]
    out = []
    for name in names:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        out.append(name)
    return out


def closure(project: str = PROJECT) -> dict[str, str]:
    """{canonical name: installed version} of the project's runtime and build requirements, transitively."""
    pins: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [(project, set())] + [(n, set()) for n in build_requirements()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(name)
        if key[0] != canonicalize_name(project):
            pins[key[0]] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if _applies(req, extras):
                todo.append((req.name, set(req.extras)))
    return pins


def render(pins: dict[str, str]) -> str:
    lines = [f"{name}=={version}" for name, version in sorted(pins.items()) if not chosen_by_build_arg(name)]
    head = ["# Pinned runtime requirements of the trapan_cloud image (Dockerfile), without torch/triton/nvidia-*",
            "# (the TORCH_VARIANT build argument chooses those). Generated from the project's venv; rebuild with",
            "#   .venv/bin/python deploy/constraints.py > deploy/constraints.txt",
            "# (deploy/README.md, 'Pinned requirements')."]
    return "\n".join(head + lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(closure()))
