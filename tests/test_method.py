"""TRA-PAN core (`trapan_cloud.method`): config, networks, prior files, Stage 1, Stage 2, one-pair pansharpening.

Everything runs with ``TrapanConfig.fast()`` on tiny crops of the bundled real WorldView-2 data or small synthetic
arrays, so the module stays within a few tens of seconds on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

import trapan_cloud as tc
from trapan_cloud import physics
from trapan_cloud.errors import InputError
from trapan_cloud.method import Prior, TrapanConfig, fit_prior, refine_tile
from trapan_cloud.method.losses import masked_norm
from trapan_cloud.method.networks import DAM, FusionNet
from trapan_cloud.method.pairs import prepare_pair
from trapan_cloud.method.stage1 import warm_up
from trapan_cloud.method.stage2 import _branches
from trapan_cloud.samples import load_sample
from trapan_cloud.sensors import get_sensor

FAST = TrapanConfig.fast()


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A fully valid 128² PAN / 32² MS window of the real SpaceNet 6 tile 1 (WorldView-2, 11-bit DN)."""
    s = load_sample("sn6-1").crop("t", 40, 40, 32)
    return s.pan.astype(np.float64), s.ms.astype(np.float64)


@pytest.fixture(scope="module")
def prior(pair) -> Prior:
    return fit_prior([pair], "WV2", FAST, seed=3)


# ---------------------------------------------------------------------------------------------------- config
def test_config_from_dict_rejects_unknown_keys_by_name():
    with pytest.raises(InputError, match="'lamda_spe'"):
        TrapanConfig.from_dict({"lamda_spe": 4.0})


def test_config_roundtrip_hash_and_validation():
    cfg = TrapanConfig.default()
    assert TrapanConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.hash() == TrapanConfig.default().hash()
    assert dataclasses.replace(cfg, rao_p=0.7).hash() != cfg.hash()
    with pytest.raises(InputError, match="rao_p"):
        TrapanConfig(rao_p=1.5)
    with pytest.raises(InputError, match="base"):
        TrapanConfig.from_dict({"base": "bicubic"})
    with pytest.raises(InputError, match="rao_steps"):
        TrapanConfig.from_dict({"rao_steps": "many"})


def test_the_plain_config_is_the_shipped_default_and_uses_random_alternation():
    assert TrapanConfig() == TrapanConfig.default()
    assert TrapanConfig().schedule == "rao" and TrapanConfig.fast().schedule == "rao"
    assert (TrapanConfig().rao_p, TrapanConfig().rao_p_end) == (1.0, 0.0)  # RR first, FR last
    assert TrapanConfig.best().schedule == "rao"


def test_a_knob_the_schedule_or_selection_never_reads_is_warned_about():
    with pytest.warns(UserWarning, match="rao_p has no effect"):
        dataclasses.replace(TrapanConfig(), schedule="sum", rao_p=0.2)
    with pytest.warns(UserWarning, match="patience"):
        TrapanConfig(selection="last", patience=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrapanConfig(selection="holdout", holdout=0.25, patience=3)  # read there: no warning
        for preset in ("default", "fast", "best", "paper"):
            getattr(TrapanConfig, preset)()


def test_every_preset_is_offered_by_the_cli():
    from trapan_cloud.cli import PRESETS as CLI_PRESETS
    from trapan_cloud.method.config import PRESETS

    assert set(CLI_PRESETS) == set(PRESETS)
    assert all(isinstance(getattr(TrapanConfig, p)(), TrapanConfig) for p in PRESETS)


def test_runtime_is_validated_and_not_part_of_the_science():
    from trapan_cloud.method import Runtime

    with pytest.raises(InputError, match="runtime.device"):
        Runtime(device="tpu")
    assert "device" not in TrapanConfig().to_dict() and "threads" not in TrapanConfig().to_dict()


def test_presets_follow_their_documented_sources():
    paper = TrapanConfig.paper()
    assert (paper.width, paper.depth, paper.lr, paper.lambda_spe, paper.lambda_spa, paper.rao_p, paper.dam_hidden) \
        == (32, 4, 5e-4, 8.0, 1.0, 0.5, 32)
    assert paper.base == "lms"


# ---------------------------------------------------------------------------------------------------- networks
def test_networks_shapes_and_parameter_counts():
    # TRAPAN.md §4.1/§4.2: FusionNet ~78.6k parameters and DAM 1,377 parameters for C = 8.
    net, dam = FusionNet(8), DAM(8)
    assert abs(sum(p.numel() for p in net.parameters()) - 78_600) < 1_000
    assert sum(p.numel() for p in dam.parameters()) == 1377
    x = torch.rand(2, 8, 16, 16)
    assert net(torch.rand(2, 1, 16, 16), x).shape == x.shape
    assert dam(x).shape == (2, 1, 16, 16)


def test_near_zero_last_layer_reproduces_the_base_image():
    base = torch.rand(1, 4, 24, 24)
    out = FusionNet(4, last_init_scale=0.0)(torch.rand(1, 1, 24, 24), base)
    assert torch.equal(out, base)


# ---------------------------------------------------------------------------------------------------- stage 1
def test_dam_learns_a_known_spectral_response():
    """PAN = Σ_b w_b MS_b on a smooth scene (so the MTF blur changes little): the DAM must recover the weights."""
    rng = np.random.default_rng(0)
    h = 32
    yy, xx = np.meshgrid(np.arange(h * 4), np.arange(h * 4), indexing="ij")
    w = np.array([0.1, 0.2, 0.3, 0.4])
    hi = np.stack([400 + 300 * np.sin(2 * np.pi * (a * yy + b * xx) / 256 + c)
                   for a, b, c in rng.uniform([-1, -1, 0], [1, 1, 6], (4, 3))])
    ms = hi.reshape(4, h, 4, h, 4).mean(axis=(2, 4))
    pan = np.tensordot(w, hi, 1)
    cfg = dataclasses.replace(FAST, dam_steps=800, dam_lr=1e-2, warmup_steps=0)
    dam = fit_prior([(pan, ms)], "WV2", cfg, seed=0).dam()
    probe = rng.uniform(150, 650, (512, 4))  # held-out spectra inside the training range
    got = dam(torch.tensor(probe / 2047, dtype=torch.float32)).detach().numpy()[:, 0] * 2047
    want = probe @ w
    assert np.corrcoef(got, want)[0, 1] > 0.99
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.03 * want.std() * 3


def test_warm_up_lowers_the_reduced_resolution_loss(pair):
    sen = get_sensor("WV2")
    cfg = dataclasses.replace(FAST, warmup_steps=40, warmup_crop_px=0, base="lms")
    d = prepare_pair(*pair, sen, 4, "lms", None, torch.device("cpu"))
    net = FusionNet(4, cfg.width, cfg.depth, generator=torch.Generator().manual_seed(0))

    def rr_loss() -> float:
        with torch.no_grad():
            return masked_norm(net(d.pan_rr, d.base_rr) - d.ms_rr_target, d.valid_rr, "mse").item()

    before = rr_loss()
    warm_up(net, [d], cfg, torch.Generator().manual_seed(0))
    assert rr_loss() < 0.5 * before


def test_fit_prior_rejects_bad_pairs(pair):
    pan, ms = pair
    with pytest.raises(InputError, match="pairs"):
        fit_prior([], "WV2", FAST)
    with pytest.raises(InputError, match="integer multiple"):
        fit_prior([(pan, ms[:, :20, :20])], "WV2", FAST)
    with pytest.raises(InputError, match="same ratio"):
        fit_prior([(pan, ms), (pan, ms[:, :16, :16])], "WV2", FAST)
    with pytest.raises(InputError, match="bands"):
        fit_prior([(pan, ms[:3])], "WV2", FAST)


# ---------------------------------------------------------------------------------------------------- prior files
def test_prior_save_load_roundtrip(prior, pair, tmp_path):
    path = prior.save(tmp_path / "p.safetensors")
    back = Prior.load(path)
    assert back.hash == prior.hash and back.config == prior.config
    assert (back.sensor, back.ratio, back.bands, back.norm) == ("WV2", 4, 4, 2047.0)
    for k, v in prior.net_state.items():
        assert torch.equal(back.net_state[k], v)
    assert Prior.from_bytes(prior.to_bytes()).hash == prior.hash
    a = refine_tile(prior, *pair, seed=1).fused
    b = refine_tile(back, *pair, seed=1).fused
    assert np.array_equal(a, b)


def test_prior_refuses_tampered_and_foreign_files(prior, tmp_path):
    data = bytearray(prior.to_bytes())
    data[-5] ^= 0x01  # flip one bit of the last tensor's data
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="hash mismatch"):
        Prior.load(bad)
    text = tmp_path / "notes.txt"
    text.write_text("not weights at all")
    with pytest.raises(InputError, match="safetensors"):
        Prior.load(text)
    foreign = tmp_path / "other.safetensors"
    foreign.write_bytes(st_save({"w": torch.zeros(3)}, metadata={"format": "pt"}))
    with pytest.raises(InputError, match="not a trapan prior"):
        Prior.load(foreign)
    # a header edit (claiming another sensor) is caught by the hash as well
    raw = prior.to_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8 : 8 + n].replace(b'"sensor":"WV2"', b'"sensor":"WV3"')
    (tmp_path / "h.safetensors").write_bytes(raw[:8] + header + raw[8 + n :])
    with pytest.raises(InputError, match="hash mismatch"):
        Prior.load(tmp_path / "h.safetensors")


# ---------------------------------------------------------------------------------------------------- stage 2
def test_same_seed_gives_identical_output(prior, pair):
    a = refine_tile(prior, *pair, seed=7)
    b = refine_tile(prior, *pair, seed=7)
    assert np.array_equal(a.fused, b.fused)
    assert a.trace["branch"] == b.trace["branch"]
    assert a.fused.dtype == np.float32 and a.fused.shape == (4, 128, 128)
    # selection "last" (the fast/default presets): the last step's network, inferred once, after that step
    assert a.trace["selected_step"] == a.trace["steps_run"] == FAST.rao_steps
    assert [s for s, _ in a.trace["evals"]] == [0, FAST.rao_steps]
    c = refine_tile(prior, *pair, seed=7, config=dataclasses.replace(FAST, rao_steps=FAST.rao_steps - 1))
    assert not np.array_equal(a.fused, c.fused)  # one step fewer, another image: it is the last iterate


def test_hqnr_selection_returns_the_best_scored_candidate(prior, pair):
    a = refine_tile(prior, *pair, seed=7, config=dataclasses.replace(FAST, selection="hqnr"))
    tr = a.trace
    assert tr["steps_run"] == len(tr["loss"]) == len(tr["branch"]) and tr["stop_reason"] in ("max_steps", "plateau")
    scores = dict(tr["evals"])
    assert -1 in scores and 0 in scores  # the base image and the prior's network are candidates
    assert tr["selected_step"] == max(scores, key=scores.get)
    assert tr["base"] in ("mtf-glp-fs", "exp", "bt-h", "gsa", "mtf-glp-hpm")
    # the selection score is the toolbox HQNR of the returned image (float32 rounding aside)
    got = tc.metrics.hqnr(a.fused.astype(np.float64), pair[1], pair[0], "WV2", 4)[0]
    assert abs(got - scores[tr["selected_step"]]) < 1e-3


def test_rao_branch_frequency_follows_p():
    n = 4000
    for p in (0.3, 0.5, 0.7):
        br = _branches(dataclasses.replace(FAST, schedule="rao", rao_p=p, rao_p_end=-1.0, rao_steps=n),
                       torch.Generator().manual_seed(1))
        share = br.count("rr") / n
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n)
    seq = _branches(dataclasses.replace(FAST, schedule="sequential", rao_p=0.25, rao_steps=8), torch.Generator())
    assert seq == ["rr"] * 2 + ["fr"] * 6


def test_annealed_rao_moves_the_rr_share_from_rao_p_to_rao_p_end():
    n = 4000
    br = _branches(dataclasses.replace(FAST, schedule="rao", rao_p=0.9, rao_p_end=0.1, rao_steps=n),
                   torch.Generator().manual_seed(0))
    first, last = br[: n // 10].count("rr") / (n // 10), br[-n // 10:].count("rr") / (n // 10)
    # the mean p over the first (last) tenth is 0.86 (0.14); 4 binomial sd of 400 draws is 0.07
    assert abs(first - 0.86) < 0.07 and abs(last - 0.14) < 0.07
    constant = dataclasses.replace(FAST, schedule="rao", rao_p=0.3, rao_p_end=-1.0, rao_steps=50)
    assert _branches(constant, torch.Generator().manual_seed(1)) == _branches(
        dataclasses.replace(constant, rao_p_end=0.3), torch.Generator().manual_seed(1))


def test_holdout_rows_are_never_trained_on(pair):
    from trapan_cloud.method.pairs import rr_crops

    sen = get_sensor("WV2")
    d = prepare_pair(*pair, sen, 4, "lms", None, torch.device("cpu"), holdout=0.25)
    h = d.ms_rr_target.shape[-2]
    assert d.holdout_rows() == h // 4 and d.rr_train_rows == h - h // 4
    # mark every held-out target pixel: no training crop may ever contain one
    marked = dataclasses.replace(d, ms_rr_target=d.ms_rr_target.clone())
    marked.ms_rr_target[..., d.rr_train_rows:, :] = -1.0
    gen = torch.Generator().manual_seed(0)
    for size in (0, 8, 16, h):
        for _ in range(50):
            _, _, target, _ = rr_crops(marked, size, 3, gen)
            assert target.min() >= 0


def test_holdout_selection_keeps_the_network_with_the_lowest_held_out_error(prior, pair):
    cfg = dataclasses.replace(FAST, holdout=0.25, selection="holdout", eval_every=3, patience=0)
    res = refine_tile(prior, *pair, seed=5, config=cfg)
    scores = dict(res.trace["evals"])
    assert set(scores) == {-1, 0, 3, 6, 9, 12}
    assert res.trace["selected_step"] == max(scores, key=scores.get)
    again = refine_tile(prior, *pair, seed=5, config=cfg)
    assert np.array_equal(res.fused, again.fused)
    # patience 1 with no tolerance for anything but a strict gain stops at the first evaluation that does not improve
    stop = refine_tile(prior, *pair, seed=5, config=dataclasses.replace(cfg, patience=1, min_rel_improvement=10.0))
    assert stop.trace["stop_reason"] == "plateau" and stop.trace["steps_run"] == 3


def test_holdout_selection_on_a_pair_too_small_to_spare_rows_falls_back_to_the_last_step():
    s = load_sample("sn6-1").crop("tiny", 40, 40, 4)  # a 16² PAN: its RR pair has 4 rows, a fifth of which is none
    pan, ms = s.pan.astype(np.float64), s.ms.astype(np.float64)
    cfg = dataclasses.replace(FAST, holdout=0.2, selection="holdout", crop_px=16, warmup_crop_px=0, batch=1)
    pr = fit_prior([(pan, ms)], "WV2", cfg)
    res = refine_tile(pr, pan, ms, config=cfg)
    assert res.trace["selection"].startswith("last") and res.trace["selected_step"] == cfg.rao_steps


def test_prior_steps_train_the_shared_network_jointly_and_deterministically(pair):
    other = load_sample("sn6-1").crop("u", 80, 60, 32)
    pairs = [pair, (other.pan.astype(np.float64), other.ms.astype(np.float64))]
    plain = fit_prior(pairs, "WV2", FAST, seed=2)
    amortised = fit_prior(pairs, "WV2", dataclasses.replace(FAST, prior_steps=6), seed=2)
    again = fit_prior(pairs, "WV2", dataclasses.replace(FAST, prior_steps=6), seed=2)
    assert all(torch.equal(plain.dam_state[k], amortised.dam_state[k]) for k in plain.dam_state)  # same Stage 1a
    assert any(not torch.equal(plain.net_state[k], amortised.net_state[k]) for k in plain.net_state)
    assert all(torch.equal(again.net_state[k], amortised.net_state[k]) for k in plain.net_state)


def test_rr_only_and_fr_only_runs_use_one_branch(prior, pair):
    for p, branch in ((1.0, "rr"), (0.0, "fr")):
        cfg = dataclasses.replace(FAST, schedule="rao", rao_p=p, rao_p_end=p, rao_steps=4)
        tr = refine_tile(prior, *pair, config=cfg).trace
        assert set(tr["branch"]) == {branch}
    tr = refine_tile(prior, *pair, config=dataclasses.replace(FAST, schedule="sum", rao_steps=3)).trace
    assert tr["branch"] == ["sum"] * 3


def test_nodata_pixels_output_nodata_and_never_drive_the_loss(prior, pair):
    pan, ms = pair[0].copy(), pair[1].copy()
    pan[:, :24] = 0  # a nodata strip 24 PAN px (6 MS px) wide
    ms[:, :, :6] = 0
    other_ms = ms.copy()
    other_ms[:, :, :5] = 0
    other_ms[:, :, 5] = 1234.0  # different MS values under PAN nodata: invalid either way
    cfg = dataclasses.replace(FAST, selection="fr_loss")
    a = refine_tile(prior, pan, ms, seed=2, nodata=0, config=cfg)
    b = refine_tile(prior, pan, other_ms, seed=2, nodata=0, config=cfg)
    assert np.all(a.fused[:, :, :24] == 0)
    assert np.mean(a.fused[:, :, 24:] > 0) > 0.95  # (some dark pixels may be clipped to 0 DN)
    assert np.array_equal(a.fused, b.fused)  # invalid values reach neither the losses nor the output
    assert a.trace["loss"] == b.trace["loss"]
    full = refine_tile(prior, *pair, seed=2, config=cfg).fused
    far = np.s_[:, :, 64:]  # beyond the filters' reach of the strip the result stays close to the all-valid run
    assert np.mean(np.abs(a.fused[far] - full[far])) < 0.05 * np.mean(full[far])


def test_all_invalid_tile_returns_immediately(prior, pair):
    res = refine_tile(prior, np.zeros_like(pair[0]), pair[1], nodata=0)
    assert res.trace["stop_reason"] == "all_invalid" and res.trace["steps_run"] == 0
    assert not res.fused.any()


def test_refine_tile_checks_its_inputs(prior, pair):
    pan, ms = pair
    with pytest.raises(InputError, match="bands"):
        refine_tile(prior, pan, ms[:3])
    with pytest.raises(InputError, match="width"):
        refine_tile(prior, pan, ms, config=dataclasses.replace(FAST, width=8))


# ---------------------------------------------------------------------------------------------------- end to end
def test_pansharpen_trapan_beats_exp_on_hqnr(pair):
    pan, ms = pair
    fused = tc.pansharpen(pan, ms, sensor="WV2", method="trapan", config=FAST, seed=0)
    exp = tc.pansharpen(pan, ms, sensor="WV2", method="exp", dtype=np.float64)
    assert fused.shape == exp.shape and np.isfinite(fused).all()
    ours = tc.metrics.hqnr(fused.astype(np.float64), ms, pan, "WV2", 4)[0]
    theirs = tc.metrics.hqnr(exp, ms, pan, "WV2", 4)[0]
    assert ours > theirs


def test_method_imports_no_dask_xarray_zarr_pystac():
    import pathlib

    src = pathlib.Path(tc.__file__).parent / "method"
    for f in src.glob("*.py"):
        text = f.read_text()
        for mod in ("dask", "xarray", "zarr", "pystac"):
            assert f"import {mod}" not in text and f"from {mod}" not in text, (f.name, mod)
    assert physics is not None
