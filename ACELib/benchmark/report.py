"""The benchmark's outputs: Table 1 (mean and std Dice per class per method, averaged over seeds),
Wilcoxon p-values of the reference method against every other, Figure 3 (box plots) and Figure 4
(one test case, every method), and a README with the command, seeds, versions and wall time."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence

import numpy as np

import ACELib
from ACELib.benchmark.figures import figure3_boxplot, figure4_qualitative
from ACELib.benchmark.methods import METHODS, REFERENCE_METHODS
from ACELib.benchmark.testset import per_case_dice
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import Task
from ACELib.metrics import wilcoxon_signed_rank
from ACELib.training.curves import log_series, read_log

log = logging.getLogger(__name__)
Results = Mapping[str, Mapping[int, Sequence[dict]]]  # method -> seed -> evaluation rows


def foreground_labels(task: Task) -> list[str]:
    return [lab.name for lab in task.labels[1:]]


def table1(results: Results, labels: Sequence[str]) -> list[dict]:
    """Per method and label: mean and std of Dice over test cases, each averaged over seeds.

    Also ``seed_sd``: the standard deviation over seeds of the per-seed mean (training noise).
    """
    out = []
    for method, by_seed in results.items():
        for label in labels:
            means, stds = [], []
            for rows in by_seed.values():
                d = [float(r["dice"]) for r in rows if r["label"] == label]
                means.append(float(np.mean(d)))
                stds.append(float(np.std(d)))
            out.append({"method": method, "label": label, "mean": float(np.mean(means)),
                        "std": float(np.mean(stds)), "seed_sd": float(np.std(means)), "seeds": len(means)})
    return out


def wilcoxon_table(results: Results, labels: Sequence[str], reference: str | None = None) -> list[dict]:
    """Two-sided Wilcoxon signed-rank p-values, reference (default: the first of
    :data:`REFERENCE_METHODS` that ran) vs each other method, paired by test case on the seed-averaged Dice."""
    if reference is None:
        reference = next((m for m in REFERENCE_METHODS if m in results), None)
    if reference not in results:
        return []
    out = []
    for method in results:
        if method == reference:
            continue
        for label in labels:
            a = per_case_dice(results[reference], label)
            b = per_case_dice(results[method], label)
            cases = sorted(set(a) & set(b))
            stat, p = wilcoxon_signed_rank([a[c] for c in cases], [b[c] for c in cases])
            out.append({"reference": reference, "method": method, "label": label, "n": len(cases),
                        "statistic": stat, "p_value": p,
                        "median_difference": float(np.median([a[c] - b[c] for c in cases]))})
    return out


def _csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def table1_markdown(rows: Sequence[dict], labels: Sequence[str], pvalues: Sequence[dict]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["label"]): r for r in rows}
    head = "| method | " + " | ".join(labels) + " |"
    lines = [head, "|---|" + "---|" * len(labels)]
    for m in methods:
        cells = [_cell(cell[m, lab]) for lab in labels]
        lines.append(f"| {METHODS[m].title if m in METHODS else m} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if pvalues:
        ref = pvalues[0]["reference"]
        text += f"\nWilcoxon signed-rank p-values, {METHODS[ref].title} against each method (paired by test case):\n\n"
        text += head + "\n|---|" + "---|" * len(labels) + "\n"
        pv = {(p["method"], p["label"]): p for p in pvalues}
        for m in methods:
            if m == ref:
                continue
            cells = [_p(pv[m, lab]["p_value"], pv[m, lab]["median_difference"]) for lab in labels]
            lines_m = f"| {METHODS[m].title if m in METHODS else m} | " + " | ".join(cells) + " |"
            text += lines_m + "\n"
        text += "\n(+/−: the reference's median per-case Dice difference is positive/negative.)\n"
    return text


def _cell(row: dict) -> str:
    """``mean ± std over cases`` and, with several seeds, ``[sd over seeds]``."""
    text = f"{row['mean']:.3f} ± {row['std']:.3f}"
    return text + (f" [{row['seed_sd']:.3f}]" if row["seeds"] > 1 else "")


def _p(p: float, diff: float) -> str:
    if math.isnan(p):
        return "n/a"
    sign = "+" if diff > 0 else ("−" if diff < 0 else "=")
    return f"{p:.2g} ({sign})"


def versions() -> dict[str, str]:
    import SimpleITK
    import torch

    return {"ACELib": ACELib.__version__, "python": sys.version.split()[0], "torch": torch.__version__,
            "numpy": np.__version__, "SimpleITK": SimpleITK.Version_VersionString(),
            "platform": platform.platform(), "cpus": str(os.cpu_count()),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def training_minutes(run) -> str:
    """``method: mean minutes (min-max) over seeds`` of each training, from its log.csv (members summed)."""
    parts = []
    for method in run.methods:
        minutes = []
        for seed in run.seeds:
            logs = list(run.run_dir(method, seed).rglob("log.csv"))
            total = 0.0
            for path in logs:
                _, elapsed = log_series(read_log(path), "elapsed_s")
                total += elapsed[-1] if elapsed else 0.0
            if logs:
                minutes.append(total / 60.0)
        if minutes:
            parts.append(f"{method.key} {np.mean(minutes):.1f} ({min(minutes):.1f}-{max(minutes):.1f})")
    return "; ".join(parts) + " min"


def write_report(run, task: Task, by_test: Mapping[str, Results], wall_seconds: float, command: str = "") -> None:
    """Write tables, figures and README into ``run.out``.

    Args:
        by_test: test set name -> results; the first is the scenario's own test set (``table1.*``,
            Wilcoxon tests, figures), every other gets ``table1_<name>.*``.
    """

    labels = foreground_labels(task)
    tests = list(by_test)
    results = by_test[tests[0]]
    tables = {}
    for i, test in enumerate(tests):
        suffix = "" if i == 0 else f"_{test}"
        t1 = table1(by_test[test], labels)
        pv = wilcoxon_table(by_test[test], labels)
        atomic_write_text(run.out / f"table1{suffix}.csv", _csv(t1))
        if pv:
            atomic_write_text(run.out / f"wilcoxon{suffix}.csv", _csv(pv))
        tables[test] = table1_markdown(t1, labels, pv)
        atomic_write_text(run.out / f"table1{suffix}.md", tables[test])
    figures = []
    for name, fn in (("figure3_boxplot.png", lambda p: figure3_boxplot(results, labels, p)),
                     ("figure4_qualitative.png", lambda p: figure4_qualitative(run, task, p))):
        try:
            fn(run.out / name)
            figures.append(name)
        except ImportError as exc:
            log.warning("no %s: %s", name, exc)
    cfg = run.profile.train.to_dict()
    shown = ("iterations", "batch_size", "patch_size", "base_channels", "depth", "learning_rate", "lr_schedule",
             "warmup_steps", "validation_fraction", "validation_interval")
    readme = [
        f"# Benchmark: scenario `{run.scenario}`, profile `{run.profile.name}`", "",
        "Made by:", "", f"    {command or 'ace benchmark'}", "",
        f"- methods: {', '.join(m.key for m in run.methods)}",
        f"- seeds: {run.seeds}. Table cells: mean ± std over test cases (each case's Dice averaged over seeds "
        "first for the std), then [std over seeds of the per-seed mean]",
        f"- training: {json.dumps({k: cfg[k] for k in shown})}",
        f"- augmentation: {json.dumps(cfg['augmentation'])}",
        "- model selection: best validation score (mean over training datasets of the mean Dice of the classes "
        "each annotates) on held-out training cases; no test set is ever used",
        f"- wall time of this call: {wall_seconds / 60:.1f} min; training time per run (log.csv): "
        f"{training_minutes(run)}",
        f"- software: {json.dumps(versions())}", "",
    ]
    for i, test in enumerate(tests):
        title = "the scenario's joint test set" if i == 0 else f"the `{test}` test set (a scanner no training set has)"
        readme += [f"## Table 1: Dice per class on {title}", "", tables[test], ""]
    readme += [f"![{f}]({f})" for f in figures]
    atomic_write_text(run.out / "README.md", "\n".join(readme) + "\n")
