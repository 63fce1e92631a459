"""Shared pytest fixtures: a real 2-worker cluster and the real WorldView-2 crop most run tests use.

Helpers that tests import (scene builders, tiny COGs) live in `scene_fixtures`; it is shipped to workers by value, since
they cannot import anything from tests/.
"""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytest

import scene_fixtures

cloudpickle.register_pickle_by_value(scene_fixtures)


@pytest.fixture(scope="module")
def client():
    """An embedded cluster of 2 single-thread worker processes (a module may override it)."""
    from trapan_cloud.cluster import get_client

    c, owned = get_client(n_workers=2)
    assert owned
    yield c
    c.close()


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    """PAN (240, 240) and MS (4, 60, 60) DN of the bundled SpaceNet-6 WorldView-2 scene, fully valid."""
    from trapan_cloud.samples import load_sample

    s = load_sample("sn6-1").crop("t", 0, 0, 60)
    return s.pan, s.ms


@pytest.fixture
def no_cluster(monkeypatch):
    """Any attempt to start or connect a Dask client fails the test."""
    import trapan_cloud.cluster as cluster

    def refuse(*args, **kwargs):
        raise AssertionError("a Dask cluster was started")

    monkeypatch.setattr(cluster, "get_client", refuse)
