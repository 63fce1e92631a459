"""Tiling: window arithmetic on the global grid, partition of unity, and the lazy overlap-add against numpy."""

from __future__ import annotations

import pickle

import dask
import dask.array as da
import numpy as np
import pytest

from trapan_cloud.errors import InputError
from trapan_cloud.tiling import TilePlan, blend, blend_weights, default_halo_px, plan_tiles

# (shape, ratio, tile_px, halo_px): exact multiples, ragged edges narrower and wider than the halo, a single tile,
# no halo, ratio 2, and a last core shorter than one halo.
PLANS = [
    ((64, 96), 4, 32, 8),
    ((100, 76), 4, 32, 8),
    ((68, 36), 4, 32, 16),
    ((24, 20), 4, 32, 8),
    ((40, 44), 4, 16, 0),
    ((50, 62), 2, 16, 6),
    ((132, 100), 4, 64, 32),
]


def covered(plan: TilePlan, window: str) -> np.ndarray:
    count = np.zeros(plan.shape, dtype=int)
    for t in plan.tiles:
        count[getattr(t, window + "_slices")] += 1
    return count


@pytest.mark.parametrize("shape,ratio,tile_px,halo_px", PLANS)
def test_cores_partition_the_scene_on_the_global_grid(shape, ratio, tile_px, halo_px):
    plan = plan_tiles(shape, ratio, tile_px=tile_px, halo_px=halo_px)
    assert (covered(plan, "core") == 1).all()
    assert len(plan.tiles) == plan.n_rows * plan.n_cols
    H, W = shape
    for t in plan.tiles:
        assert t is plan.tile(t.row, t.col) and t.index == t.row * plan.n_cols + t.col
        y0, y1, x0, x1 = t.core
        assert (y0, x0) == (t.row * tile_px, t.col * tile_px)
        assert (y1 - y0, x1 - x0) == (min(tile_px, H - y0), min(tile_px, W - x0))
        # ext = core grown by the halo, clipped to the scene; every edge on the MS grid
        assert t.ext == (max(0, y0 - halo_px), min(H, y1 + halo_px), max(0, x0 - halo_px), min(W, x1 + halo_px))
        assert all(v % ratio == 0 for v in t.ext + t.core)
        assert tuple(v * ratio for v in t.ms_ext) == t.ext
        assert tuple(v * ratio for v in t.ms_core) == t.core
        # the core cropped out of an ext-window array is the core
        scene = np.arange(H * W).reshape(H, W)
        assert np.array_equal(scene[t.ext_slices][t.core_in_ext_slices], scene[t.core_slices])


def test_ragged_edge_tiles_are_smaller_and_cover_the_scene():
    plan = plan_tiles((100, 76), 4, tile_px=32, halo_px=8)
    assert (plan.n_rows, plan.n_cols) == (4, 3)
    assert plan.core_chunks == ((32, 32, 32, 4), (32, 32, 12))
    last = plan.tile(3, 2)
    assert last.core == (96, 100, 64, 76) and last.ext == (88, 100, 56, 76)
    assert plan.tile(2, 1).ext == (56, 100, 24, 72)  # clipped at the bottom: the short last core is within its halo
    assert plan.tile(0, 0).ext == (0, 40, 0, 40)


def test_default_halo_and_plan_round_trip():
    plan = plan_tiles((2048, 1024), 4)
    assert (plan.tile_px, plan.halo_px) == (512, 48) and default_halo_px(2) == 48
    again = TilePlan.from_dict(plan.to_dict())
    assert again == plan and again.digest == plan.digest
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert dask.base.tokenize(plan) == dask.base.tokenize(plan_tiles((2048, 1024), 4, 512, 48))
    assert dask.base.tokenize(plan) != dask.base.tokenize(plan_tiles((2048, 1024), 4, 512, 64))
    with pytest.raises(InputError, match="unknown \\['tile'\\]"):
        TilePlan.from_dict({**plan.to_dict(), "tile": 3})


@pytest.mark.parametrize("kwargs,match", [
    (dict(shape=(64, 64), ratio=4, tile_px=30, halo_px=8), "tile_px: expected a positive multiple of the ratio 4"),
    (dict(shape=(64, 64), ratio=4, tile_px=32, halo_px=-4), "halo_px: expected a multiple of the ratio 4"),
    (dict(shape=(64, 64), ratio=4, tile_px=32, halo_px=6), "halo_px: expected a multiple of the ratio 4"),
    (dict(shape=(64, 64), ratio=4, tile_px=32, halo_px=20), "smaller than 2 \\* halo_px = 40"),
    (dict(shape=(2, 64), ratio=4, tile_px=32, halo_px=8), "at least one MS pixel"),
    (dict(shape=(66, 64), ratio=4, tile_px=32, halo_px=8), "multiple of the ratio"),
    (dict(shape=(64,), ratio=4, tile_px=32, halo_px=8), "shape: expected the PAN shape"),
    (dict(shape=(64, 64), ratio=0, tile_px=32, halo_px=8), "ratio: expected an integer >= 1"),
    (dict(shape=(64, 64), ratio=4, tile_px=32.5, halo_px=8), "tile_px: expected an integer"),
])
def test_bad_sizes_are_refused_by_name(kwargs, match):
    with pytest.raises(InputError, match=match):
        plan_tiles(**kwargs)


@pytest.mark.parametrize("shape,ratio,tile_px,halo_px", PLANS)
def test_weights_are_a_partition_of_unity(shape, ratio, tile_px, halo_px):
    plan = plan_tiles(shape, ratio, tile_px=tile_px, halo_px=halo_px)
    total = np.zeros(shape)
    for t in plan.tiles:
        w = blend_weights(t, plan)
        assert w.shape == t.ext_shape
        assert (w >= 0).all() and (w <= 1).all()
        # the outer half of a halo towards a neighbour is context only (weight 0): see blend_half_width
        y0, y1, x0, x1 = t.core
        margin = plan.halo_px - plan.halo_px // 2
        if y0 > 0:
            assert (w[:margin] == 0).all()
        if x0 > 0:
            assert (w[:, :margin] == 0).all()
        total[t.ext_slices] += w
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=4 * np.finfo(float).eps)
    only_one = covered(plan, "ext") == 1
    for t in plan.tiles:  # weight exactly 1 where only this tile reaches
        w = blend_weights(t, plan)
        assert (w[only_one[t.ext_slices]] == 1.0).all()


def test_neighbour_ramps_are_sin2_cos2_complements():
    plan = plan_tiles((64, 32), 4, tile_px=32, halo_px=8)
    top, bottom = plan.tiles
    wt, wb = blend_weights(top, plan)[:, 0], blend_weights(bottom, plan)[:, 0]
    ramp = np.sin(0.5 * np.pi * (np.arange(8) + 0.5) / 8) ** 2
    assert (wb[:4] == 0).all() and (wt[36:] == 0).all()         # outer half of each halo: context only
    np.testing.assert_allclose(wb[4:12], ramp, atol=1e-15)      # bottom tile rises over [28, 36)
    np.testing.assert_allclose(wt[28:36], 1 - ramp, atol=1e-15)  # top tile falls over the same pixels
    assert (wt[:28] == 1).all() and (wb[12:] == 1).all()


def stage_a(plan: TilePlan, predictions) -> np.ndarray:
    """The tile-major stage-A array of ``predictions(tile) -> (B, he, we)``, built with the plan's own placement."""
    s = plan.slot_px
    first = predictions(plan.tiles[0])
    out = np.full((first.shape[0], plan.n_rows * s, plan.n_cols * s), np.nan)
    for t in plan.tiles:
        out[(slice(None),) + plan.slot(t)] = plan.to_slot(t, blend_weights(t, plan) * predictions(t))
    return out


@pytest.mark.parametrize("shape,ratio,tile_px,halo_px", PLANS)
def test_blend_of_identical_predictions_gives_the_image_back(shape, ratio, tile_px, halo_px):
    plan = plan_tiles(shape, ratio, tile_px=tile_px, halo_px=halo_px)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 2047, size=(3,) + shape)
    tiles = da.from_array(stage_a(plan, lambda t: image[(slice(None),) + t.ext_slices]),
                          chunks=(3, plan.slot_px, plan.slot_px))
    lazy = blend(tiles, plan)
    assert lazy.shape == image.shape and lazy.dtype == np.float64
    assert lazy.chunks == ((3,),) + plan.core_chunks
    out = lazy.compute(scheduler="sync")
    assert out.shape == lazy.shape and out.dtype == lazy.dtype
    assert np.isfinite(out).all()  # no NaN from slot padding, no dark borders
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-6 * 2047)


def test_blend_matches_a_numpy_overlap_add_of_different_predictions():
    plan = plan_tiles((100, 76), 4, tile_px=32, halo_px=8)
    rng = np.random.default_rng(1)
    preds = {t.index: rng.normal(size=(2,) + t.ext_shape).astype(np.float32) for t in plan.tiles}
    reference = np.zeros((2,) + plan.shape)
    for t in plan.tiles:
        reference[(slice(None),) + t.ext_slices] += blend_weights(t, plan) * preds[t.index]
    tiles = da.from_array(stage_a(plan, lambda t: preds[t.index]).astype(np.float32),
                          chunks=(2, plan.slot_px, plan.slot_px))
    lazy = blend(tiles, plan)
    assert lazy.dtype == np.float32
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), reference, rtol=0, atol=1e-5)
    # each output chunk depends on at most its 3 x 3 neighbour slots: the scene is never gathered
    assert max(len(v) for v in lazy.dask.get_all_dependencies().values()) <= 9


def test_blend_is_smooth_across_seams():
    plan = plan_tiles((64, 64), 4, tile_px=32, halo_px=8)
    tiles = da.from_array(stage_a(plan, lambda t: np.full((1,) + t.ext_shape, 10.0 * t.row + t.col)),
                          chunks=(1, plan.slot_px, plan.slot_px))
    row = blend(tiles, plan).compute(scheduler="sync")[0, 0]
    assert (row[:28] == 0).all() and (row[36:] == 1).all()
    assert (np.diff(row[27:37]) > 0).all()


def test_blend_refuses_a_stage_a_array_of_another_plan():
    plan = plan_tiles((64, 64), 4, tile_px=32, halo_px=8)
    with pytest.raises(InputError, match="expected a \\(bands, 96, 96\\) tile-major array"):
        blend(da.zeros((1, 64, 64)), plan)
    with pytest.raises(InputError, match="weighted: expected \\(bands, 40, 40\\)"):
        plan.to_slot(plan.tiles[0], np.zeros((1, 32, 32)))
