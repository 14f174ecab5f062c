"""Wilcoxon signed-rank test (two-sided, numpy only) and paired comparison of two evaluation tables.

:func:`wilcoxon_signed_rank` reproduces ``scipy.stats.wilcoxon(x, y)`` with its defaults
(``zero_method="wilcox"``, ``correction=False``, ``alternative="two-sided"``, ``method="auto"``):

* Zero differences are dropped (Wilcoxon's original rule); ties in ``|d|`` get average ranks.
* The statistic is ``min(R+, R-)``.
* ``method="auto"`` (``n`` counts all pairs, zeros included):

  - no ties and no zero differences, ``n <= 50``: exact null distribution of ``R+``;
  - ties or zeros and ``n <= 13``: exact sign-flip (permutation) distribution of the tied ranks,
    i.e. all ``2**n`` assignments of signs, as scipy's permutation test enumerates them;
  - otherwise: normal approximation with tie correction, no continuity correction.

  ``"exact"`` always uses the sign-flip distribution of the actual ranks (the classic exact test
  when there are no ties); ``"approx"`` always uses the normal approximation.
* Two-sided p-value ``min(1, 2 min(P(R+ <= r), P(R+ >= r)))`` for the exact methods,
  ``2 Φ(-|z|)`` for the approximation.
* When every difference is zero (or there is no pair) there is no evidence of a difference:
  the result is ``(0.0, 1.0)``. (scipy returns ``nan`` or a warning there.)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np

from ACELib.metrics.evaluation import SUMMARY_METRICS, read_evaluation

log = logging.getLogger(__name__)

METHODS = ("auto", "exact", "approx")
_EXACT_MAX_N = 50
_PERMUTATION_MAX_N = 13


def _average_ranks(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n of ``a`` with ties averaged, and the size of each tie group."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    sizes = np.diff(np.r_[starts, len(a)])
    mean_rank = starts + (sizes + 1) / 2.0  # average of ranks start+1 .. start+size
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, sizes)
    return ranks, sizes


def _sign_flip_pmf(doubled_ranks: np.ndarray) -> np.ndarray:
    """Null distribution of ``2 R+``: each rank enters with probability 1/2 (``pmf[s] = P(2 R+ = s)``)."""
    total = int(doubled_ranks.sum())
    pmf = np.zeros(total + 1, dtype=np.float64)
    pmf[0] = 1.0
    top = 0
    for r in doubled_ranks.astype(np.int64):
        shifted = np.zeros_like(pmf)
        shifted[r : top + r + 1] = pmf[: top + 1]
        pmf = 0.5 * (pmf + shifted)
        top += int(r)
    return pmf


def wilcoxon_signed_rank(x: Sequence[float], y: Sequence[float], method: str = "auto") -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired samples.

    Args:
        x, y: paired finite samples of one length ``n`` (e.g. Dice of two methods on the same cases).
        method: ``"auto"``, ``"exact"`` or ``"approx"`` (see the module docstring).

    Returns:
        ``(statistic, p_value)``: ``min(R+, R-)`` and the two-sided p-value.

    Raises:
        ValueError: lengths differ, samples are not 1D or not finite, or ``method`` is unknown.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or ya.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(f"x and y must be 1D samples of one length, got shapes {xa.shape} and {ya.shape}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("x and y must be finite; drop the pairs holding inf or nan first")
    d = xa - ya
    n_all = len(d)
    d = d[d != 0]  # zero_method "wilcox"
    n = len(d)
    if n == 0:
        return 0.0, 1.0
    ranks, tie_sizes = _average_ranks(np.abs(d))
    r_plus = float(ranks[d > 0].sum())
    r_minus = float(ranks[d < 0].sum())
    statistic = min(r_plus, r_minus)
    has_ties = bool((tie_sizes > 1).any())
    if method == "auto":
        if not has_ties and n == n_all and n_all <= _EXACT_MAX_N:
            method = "exact"
        elif n_all <= _PERMUTATION_MAX_N:
            method = "exact"
        else:
            method = "approx"
    if method == "exact":
        pmf = _sign_flip_pmf(np.rint(2 * ranks))  # ranks are multiples of 1/2
        k = int(round(2 * r_plus))
        p = 2.0 * min(pmf[: k + 1].sum(), pmf[k:].sum())
        return statistic, float(min(1.0, p))
    mean = n * (n + 1) / 4.0
    var = (n * (n + 1) * (2 * n + 1) - float(np.sum(tie_sizes**3 - tie_sizes)) / 2.0) / 24.0
    if var <= 0:
        return statistic, 1.0
    z = (r_plus - mean) / math.sqrt(var)
    return statistic, float(min(1.0, math.erfc(abs(z) / math.sqrt(2.0))))  # 2 * (1 - Phi(|z|))


def compare_results(csv_a: str | os.PathLike, csv_b: str | os.PathLike,
                    metrics: Sequence[str] = SUMMARY_METRICS, method: str = "auto") -> list[dict]:
    """Paired Wilcoxon tests between two evaluation tables (:func:`write_evaluation` output), per label.

    Cases are paired by name; cases in only one table are left out (logged), and so are pairs where
    either value is not finite (``n`` reports the pairs used).

    Returns:
        One dict per label and metric: ``{"label", "metric", "n", "mean_a", "mean_b", "statistic",
        "p_value"}``; means over the pairs used, ``nan`` and p-value ``nan`` when no pair is left.

    Raises:
        ValueError: the tables share no (case, label) pair, or a metric column is missing.
    """
    rows_a, rows_b = read_evaluation(csv_a), read_evaluation(csv_b)
    for path, rows in ((csv_a, rows_a), (csv_b, rows_b)):
        missing = [m for m in metrics if rows and m not in rows[0]]
        if missing:
            raise ValueError(f"{str(path)!r} lacks the metric columns {missing}")
    table_a = {(r["case"], r["label"]): r for r in rows_a}
    table_b = {(r["case"], r["label"]): r for r in rows_b}
    common = [k for k in table_a if k in table_b]
    if not common:
        raise ValueError(f"{str(csv_a)!r} and {str(csv_b)!r} share no (case, label) pair to compare")
    unpaired = sorted({k[0] for k in set(table_a) ^ set(table_b)})
    if unpaired:
        log.warning("comparing on common cases only; %d cases appear in one table: %s",
                    len(unpaired), ", ".join(unpaired))
    labels = list(dict.fromkeys(k[1] for k in common))
    out = []
    for label in labels:
        keys = [k for k in common if k[1] == label]
        for m in metrics:
            pairs = [(table_a[k][m], table_b[k][m]) for k in keys]
            pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
            if pairs:
                a, b = np.array(pairs).T
                stat, p = wilcoxon_signed_rank(a, b, method)
                mean_a, mean_b = float(a.mean()), float(b.mean())
            else:
                stat = p = mean_a = mean_b = math.nan
            out.append({"label": label, "metric": m, "n": len(pairs), "mean_a": mean_a, "mean_b": mean_b,
                        "statistic": stat, "p_value": p})
    return out
