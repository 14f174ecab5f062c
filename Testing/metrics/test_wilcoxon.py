"""Wilcoxon signed-rank test against scipy.stats.wilcoxon, and paired comparison of result tables."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from ACELib.metrics import compare_results, wilcoxon_signed_rank, write_evaluation

scipy_stats = pytest.importorskip("scipy.stats")


def _scipy(x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = scipy_stats.wilcoxon(x, y, **kw)
    return float(r.statistic), float(r.pvalue)


def _sample(kind: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.8, 0.05, n)
    y = x + rng.normal(0.01, 0.03, n)
    if kind == "ties":  # ties in |d| and zero differences
        x, y = np.round(x, 2), np.round(y, 2)
    elif kind == "zeros":  # zero differences, no other ties
        y[: max(1, n // 5)] = x[: max(1, n // 5)]
    return x, y


# auto mode covers: exact (no ties, n <= 50), sign-flip enumeration (ties or zeros, n <= 13),
# normal approximation with tie correction (ties or zeros and n > 13, or n > 50). scipy's permutation
# test is slow at n = 13 (seconds); that boundary is checked against a brute-force enumeration below.
AUTO_CASES = [(kind, n, seed) for kind in ("plain", "ties", "zeros") for n in (5, 9, 14, 25, 40, 51, 80)
              for seed in (0, 1)] + [("plain", 13, 0), ("plain", 50, 0)]


@pytest.mark.parametrize("kind, n, seed", AUTO_CASES)
def test_auto_matches_scipy_default(kind, n, seed):
    x, y = _sample(kind, n, seed)
    stat, p = wilcoxon_signed_rank(x, y)
    ref_stat, ref_p = _scipy(x, y)
    assert stat == pytest.approx(ref_stat, abs=1e-9)
    assert p == pytest.approx(ref_p, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind, seed", [("ties", 0), ("zeros", 1)])
def test_sign_flip_enumeration_at_n_13(kind, seed):
    x, y = _sample(kind, 13, seed)
    d = x - y
    nonzero = d[d != 0]
    ranks = scipy_stats.rankdata(np.abs(nonzero))
    r_plus = ranks[nonzero > 0].sum()
    # all 2**k sign assignments of the non-zero differences, equally likely under the null
    signs = (np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1
    null = signs @ ranks
    expected = min(1.0, 2 * min(np.mean(null <= r_plus + 1e-9), np.mean(null >= r_plus - 1e-9)))
    stat, p = wilcoxon_signed_rank(x, y)
    assert len(np.unique(np.abs(nonzero))) < len(nonzero) or len(nonzero) < 13  # ties or zeros indeed
    assert stat == pytest.approx(min(r_plus, ranks.sum() - r_plus))
    assert p == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n, seed", [(6, 0), (12, 1), (20, 2), (35, 3)])
def test_exact_and_approx_match_scipy_methods(n, seed):
    x, y = _sample("plain", n, seed)
    assert wilcoxon_signed_rank(x, y, "exact")[1] == pytest.approx(_scipy(x, y, method="exact")[1], rel=1e-9)
    assert wilcoxon_signed_rank(x, y, "approx")[1] == pytest.approx(_scipy(x, y, method="asymptotic")[1], rel=1e-9)


def test_hand_computed_small_table():
    # d = 1, 2, 3, 4, -5: R+ = 10, R- = 5; P(R+ <= 5) = 10/32 (subsets of {1..5} summing to <= 5)
    x = np.array([1.0, 2.0, 3.0, 4.0, 0.0])
    y = np.array([0.0, 0.0, 0.0, 0.0, 5.0])
    stat, p = wilcoxon_signed_rank(x, y)
    assert stat == 5.0
    assert p == pytest.approx(2 * 10 / 32)


def test_symmetry_and_identical_samples():
    x, y = _sample("plain", 10, 4)
    assert wilcoxon_signed_rank(x, y) == wilcoxon_signed_rank(y, x)
    assert wilcoxon_signed_rank(x, x) == (0.0, 1.0)  # no non-zero difference: no evidence
    assert wilcoxon_signed_rank([], []) == (0.0, 1.0)


BAD = [
    (([1.0, 2.0], [1.0]), {}, r"1D samples of one length, got shapes \(2,\) and \(1,\)"),
    (([1.0, math.inf], [1.0, 2.0]), {}, r"must be finite"),
    (([1.0], [2.0]), {"method": "permutation"}, r"method must be one of \['auto', 'exact', 'approx'\], got 'permutation'"),
]


@pytest.mark.parametrize("args, kwargs, message", BAD)
def test_bad_inputs(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        wilcoxon_signed_rank(*args, **kwargs)


def _table(path, dice_by_case, label="WMH", hd=None):
    rows = [{"case": c, "label": label, "dice": d, "hd95": (hd or {}).get(c, 1.0), "avd": 5.0,
             "vol_pred_ml": 1.0, "vol_gt_ml": 1.0} for c, d in dice_by_case.items()]
    write_evaluation(rows, path)
    return path


def test_compare_results_pairs_by_case(tmp_path, caplog):
    rng = np.random.default_rng(0)
    cases = [f"case{i:02d}" for i in range(15)]
    a = dict(zip(cases, rng.uniform(0.6, 0.9, 15)))
    b = dict(zip(reversed(cases), rng.uniform(0.5, 0.8, 15)))  # other file order
    b["extra"] = 0.1  # unpaired: left out
    hd_a = {"case03": math.inf}  # a missed lesion: that pair is left out of the HD95 test
    res = compare_results(_table(tmp_path / "a.csv", a, hd=hd_a), _table(tmp_path / "b.csv", b))
    dice_row = next(r for r in res if r["metric"] == "dice")
    xa = np.array([a[c] for c in cases])
    xb = np.array([b[c] for c in cases])
    assert dice_row["n"] == 15
    assert dice_row["p_value"] == pytest.approx(_scipy(xa, xb)[1], rel=1e-9)
    assert dice_row["mean_a"] == pytest.approx(xa.mean())
    hd_row = next(r for r in res if r["metric"] == "hd95")
    assert hd_row["n"] == 14 and hd_row["p_value"] == 1.0  # remaining HD95 values are all equal
    assert "1 cases appear in one table: extra" in caplog.text


def test_compare_results_without_common_cases(tmp_path):
    a = _table(tmp_path / "a.csv", {"x": 0.5})
    b = _table(tmp_path / "b.csv", {"y": 0.5})
    with pytest.raises(ValueError, match=r"share no \(case, label\) pair"):
        compare_results(a, b)
