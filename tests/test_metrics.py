"""metrics: every index against the toolbox vectors (``tests/data/vectors.json``, METRICS.md §6) plus properties.

The synthetic inputs are generated from the formulas of the vectors file: 1-based indices, band-last formulas
converted to band-first, ``floor(x + 0.5)`` rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trapan_cloud import metrics as mt
from trapan_cloud.errors import InputError
from trapan_cloud.physics import interp23tap

VECTORS = json.loads((Path(__file__).parent / "data" / "vectors.json").read_text())["cases"]
RR_CASES = [c for c in VECTORS if c["kind"] == "reduced_resolution_metrics"]
FR_CASES = [c for c in VECTORS if c["kind"] == "full_resolution_metrics"]


def round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def rr_pair(h: int, w: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """(GT, F) of METRICS.md §6.1, band-first."""
    i = np.arange(1, h + 1)[:, None, None]
    j = np.arange(1, w + 1)[None, :, None]
    b = np.arange(1, nb + 1)[None, None, :]
    g = 600 + 300 * np.sin(2 * np.pi * i / 17 + b) * np.cos(2 * np.pi * j / 23 - 0.5 * b) + 40 * b + 2 * i + 3 * j
    f = 0.9 * g + 30 + 25 * np.sin(0.37 * i * b + 0.11 * j) + 10 * np.cos(0.5 * j * b)
    return np.moveaxis(round_half_up(g), -1, 0), np.moveaxis(round_half_up(f), -1, 0)


def fr_inputs(nb: int) -> tuple[np.ndarray, np.ndarray]:
    """(PAN (128, 128), MS (nb, 32, 32)) of METRICS.md §6.2."""
    i = np.arange(1, 129)[:, None]
    j = np.arange(1, 129)[None, :]
    pan = round_half_up(500 + 200 * np.sin(2 * np.pi * i / 13) * np.cos(2 * np.pi * j / 19)
                        + 150 * np.sin(2 * np.pi * (i + j) / 31) + 2 * i + j)
    u = np.arange(1, 33)[:, None, None]
    v = np.arange(1, 33)[None, :, None]
    b = np.arange(1, nb + 1)[None, None, :]
    ms = round_half_up(400 + 30 * b + 180 * np.sin(2 * np.pi * u / 7 + 0.3 * b) * np.cos(2 * np.pi * v / 9 - 0.2 * b)
                       + 3 * u + 2 * v)
    return pan, np.moveaxis(ms, -1, 0)


def fused_fr(kind: str, pan: np.ndarray, i_ms: np.ndarray) -> np.ndarray:
    if kind == "EXP":
        return i_ms
    gain = 0.3 + 0.05 * np.arange(1, i_ms.shape[0] + 1)[:, None, None]
    return i_ms + gain * (pan - pan.mean())


# ------------------------------------------------------------------------------------------------ reference vectors


@pytest.mark.parametrize("c", RR_CASES, ids=[c["id"] for c in RR_CASES])
def test_reduced_resolution_vectors(c: dict) -> None:
    h, w, nb = c["shapes"]["GT"]
    gt, f = rr_pair(h, w, nb)
    if "identity" in c["id"]:
        f = gt
    assert gt.sum() == c["input_checksums"]["sum(GT)"] and f.sum() == c["input_checksums"]["sum(F)"]
    got = {"Q2n": mt.q2n(gt, f), "Q": mt.q_index(gt, f), "SAM_deg": mt.sam(gt, f),
           "ERGAS": mt.ergas(gt, f, c["ratio"]), "SCC": mt.scc(f, gt)}
    for key, want in c["expected"].items():
        assert got[key] == pytest.approx(want, abs=c["abs_tol"]), key
    contrast = c.get("non_toolbox_contrast", {}).get("values", {})
    for key, ours in (("sewar_sam_deg", got["SAM_deg"]), ("fr_pansh_eval_tool_Q", got["Q"]),
                      ("fr_pansh_eval_tool_Q2n", got["Q2n"]), ("sewar_scc", got["SCC"])):
        if key in contrast:
            assert abs(ours - contrast[key]) > 1e-9, key


@pytest.mark.parametrize("c", FR_CASES, ids=[c["id"] for c in FR_CASES])
def test_full_resolution_vectors(c: dict) -> None:
    pan, ms = fr_inputs(c["bands"])
    chk, tol_in = c["input_checksums"], c["input_checksums_abs_tol"]
    assert pan.sum() == chk["sum(PAN)"] and ms.sum() == chk["sum(MS)"]
    i_ms = interp23tap(ms, c["ratio"])
    assert i_ms.sum() == pytest.approx(chk["sum(I_MS)"], abs=tol_in["sum(I_MS)"])
    assert i_ms[0, 0, 0] == pytest.approx(chk["I_MS(1,1,1)"], abs=tol_in["I_MS(1,1,1)"])
    assert i_ms[0, 63, 63] == pytest.approx(chk["I_MS(64,64,1)"], abs=tol_in["I_MS(64,64,1)"])
    fused = fused_fr(c["fused"], pan, i_ms)
    e, tol = c["expected"], c["abs_tol"]
    got = mt.full_resolution(fused, pan, ms, c["sensor"], c["ratio"])
    for key, want in (("HQNR", e["HQNR"]), ("D_lambda_K", e["D_lambda_K"]), ("D_s", e["D_s"]), ("QNR", e["QNR"]),
                      ("D_lambda", e["D_lambda_QNR"])):
        assert got[key] == pytest.approx(want, abs=tol), key
    # the single-index functions give the same numbers
    assert mt.hqnr(fused, ms, pan, c["sensor"], 4) == pytest.approx((e["HQNR"], e["D_lambda_K"], e["D_s"]), abs=tol)
    assert mt.qnr(fused, ms, pan, 4) == pytest.approx((e["QNR"], e["D_lambda_QNR"], e["D_s"]), abs=tol)
    assert mt.d_lambda_khan(fused, ms, c["sensor"]) == pytest.approx(e["D_lambda_K"], abs=tol)
    assert mt.d_lambda(fused, ms, pan) == pytest.approx(e["D_lambda_QNR"], abs=tol)
    assert mt.d_s(fused, ms, pan) == pytest.approx(e["D_s"], abs=tol)


# ------------------------------------------------------------------------------------------------ properties


def test_identity_gives_perfect_scores_with_band_and_size_padding() -> None:
    x = np.random.default_rng(0).integers(1, 2048, (5, 50, 45)).astype(float)  # 5 -> 8 bands, 50x45 -> 64x64
    assert mt.q2n(x, x) == pytest.approx(1.0, abs=1e-12)
    assert mt.q_index(x, x) == pytest.approx(1.0, abs=1e-12)
    assert mt.scc(x, x) == pytest.approx(1.0, abs=1e-12)
    assert mt.sam(x, x) == pytest.approx(0.0, abs=1e-6)  # arccos near 1 loses half the digits
    assert mt.ergas(x, x) == 0.0


def test_q2n_casts_to_uint16() -> None:
    gt, f = rr_pair(64, 64, 4)
    assert mt.q2n(gt, gt + 0.49) == pytest.approx(1.0, abs=1e-12)  # rounds back to gt
    assert mt.q2n(gt, gt + 0.5) < 1 - 1e-6  # half rounds away from zero: every pixel moves by 1 DN
    assert mt.q2n(gt, f) == pytest.approx(mt.q2n(gt, f + 0.3), abs=1e-12)


def test_sam_gain_invariance_and_zero_pixels() -> None:
    gt, f = rr_pair(40, 40, 4)
    assert mt.sam(gt, 3.7 * f) == pytest.approx(mt.sam(gt, f), abs=1e-10)
    # zero-norm pixels are left out of the mean, not counted as 0° (which would lower the mean)
    gt0, f0 = gt.copy(), f.copy()
    gt0[:, :20] = 0
    assert mt.sam(gt0, f0) == pytest.approx(mt.sam(gt[:, 20:], f[:, 20:]), abs=1e-12)


def test_ergas_scales_with_inverse_ratio() -> None:
    gt, f = rr_pair(40, 40, 4)
    assert mt.ergas(gt, f, 2) == pytest.approx(2 * mt.ergas(gt, f, 4), rel=1e-14)
    assert mt.ergas(gt, f, 8) == pytest.approx(mt.ergas(gt, f, 4) / 2, rel=1e-14)


def test_exp_has_zero_spectral_distortion() -> None:
    rng = np.random.default_rng(5)
    ms = rng.uniform(50, 2000, (5, 16, 24))
    pan = rng.uniform(50, 2000, (64, 96))
    assert mt.d_lambda(interp23tap(ms, 4), ms, pan) == 0.0
    q, dl, ds = mt.qnr(interp23tap(ms, 4), ms, pan)
    assert dl == 0.0 and q == pytest.approx(1 - ds, abs=1e-15) and 0 < ds < 1


def test_fr_indices_accept_interpolation_overshoot() -> None:
    """A high-contrast MS makes interp23tap(ms) dip below 0; the toolbox's uint16 cast clips it, no error."""
    rng = np.random.default_rng(2)
    ms = rng.integers(0, 2048, (4, 16, 16)).astype(float)
    pan = rng.uniform(0, 2000, (64, 64))
    assert interp23tap(ms, 4).min() < 0
    fused = interp23tap(ms, 4) + 0.2 * (pan - pan.mean())
    scores = mt.full_resolution(fused, pan, ms, "QB")
    assert all(np.isfinite(v) for v in scores.values()) and 0 < scores["D_lambda_K"] < 1


def test_q_index_constant_windows() -> None:
    """img_qi: constant windows give 2μxμy/(μx²+μy²), zero windows 1."""
    a = np.full((1, 40, 40), 100.0)
    assert mt.q_index(a, np.full_like(a, 300.0)) == pytest.approx(2 * 100 * 300 / (100**2 + 300**2), abs=1e-12)
    assert mt.q_index(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_reduced_resolution_protocol() -> None:
    rng = np.random.default_rng(11)
    ms = rng.uniform(100, 1500, (4, 80, 80))
    pan = rng.uniform(100, 1500, (320, 320))
    seen = {}

    def oracle(pan_lr: np.ndarray, ms_lr: np.ndarray) -> np.ndarray:
        seen["shapes"] = (pan_lr.shape, ms_lr.shape)
        return ms

    scores = mt.reduced_resolution(oracle, pan, ms, "QB", 4)
    assert seen["shapes"] == ((80, 80), (4, 20, 20))
    assert scores == pytest.approx({"Q2n": 1.0, "Q": 1.0, "SAM": 0.0, "ERGAS": 0.0, "SCC": 1.0}, abs=1e-6)
    exp = mt.reduced_resolution(lambda p, m: interp23tap(m, 4), pan, ms, "QB")
    assert set(exp) == {"Q2n", "Q", "SAM", "ERGAS", "SCC"} and exp["ERGAS"] > 1 and exp["Q2n"] < 0.9
    # the toolbox cut [20:-21] is applied: garbage outside it does not change the scores
    ring = ms.copy()
    ring[:, :20] = ring[:, -21:] = 0
    assert mt.reduced_resolution(lambda p, m: ring, pan, ms, "QB") == pytest.approx(scores, abs=1e-6)


# ------------------------------------------------------------------------------------------------ bad input


_X = np.full((4, 64, 64), 100.0) + np.arange(64.0)
_MS = np.full((4, 16, 16), 100.0) + np.arange(16.0)
_PAN = np.full((64, 64), 100.0) + np.arange(64.0)


@pytest.mark.parametrize("call, name", [
    (lambda: mt.sam(_X, _X[:3]), "fused"),
    (lambda: mt.ergas(_X[0], _X[0]), "ref"),
    (lambda: mt.q2n(np.where(_X > 120, np.nan, _X), _X), "ref"),
    (lambda: mt.q_index(_X, np.where(_X > 120, np.inf, _X)), "fused"),
    (lambda: mt.scc(-_X, _X), "ref"),
    (lambda: mt.q2n(_X, _X, block=1), "block"),
    (lambda: mt.q_index(_X[:, :20], _X[:, :20]), "ref"),
    (lambda: mt.d_lambda(_X[:3], _MS, _PAN), "fused"),
    (lambda: mt.d_s(_X, _MS, _PAN[:32]), "pan"),
    (lambda: mt.d_s(_X, _MS, -_PAN), "pan"),
    (lambda: mt.qnr(_X, -_MS, _PAN), "ms"),
    (lambda: mt.qnr(_X, _MS, _PAN, ratio=2), "ratio"),
    (lambda: mt.qnr(_X[:, :48, :48], _MS[:, :12, :12], _PAN[:48, :48]), "fused"),
    (lambda: mt.hqnr(_X, _MS, _PAN, "WV3"), "ms"),
    (lambda: mt.hqnr(_X, _MS, _PAN, "SPOT"), "sensor"),
    (lambda: mt.d_lambda_khan(_X, _MS[:, :15], "QB"), "fused"),
    (lambda: mt.full_resolution(_X, _PAN, _MS[:1], "generic"), "fused"),
    (lambda: mt.reduced_resolution(lambda p, m: m, _PAN, _MS, "QB"), "ms"),
    (lambda: mt.reduced_resolution(lambda p, m: m, np.ones((320, 320)), np.ones((4, 80, 80)), "QB"),
     r"method_fn\(pan_lr, ms_lr\)"),
])
def test_bad_input_raises_input_error(call, name: str) -> None:
    with pytest.raises(InputError, match=rf"^{name}"):
        call()
