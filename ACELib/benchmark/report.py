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
from ACELib.benchmark.methods import METHODS, REFERENCE_METHOD
from ACELib.benchmark.testset import per_case_dice
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import Task
from ACELib.metrics import wilcoxon_signed_rank

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


def wilcoxon_table(results: Results, labels: Sequence[str], reference: str = REFERENCE_METHOD) -> list[dict]:
    """Two-sided Wilcoxon signed-rank p-values, reference vs each other method, paired by test case
    on the seed-averaged Dice."""
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
        cells = [f"{cell[m, lab]['mean']:.3f} ± {cell[m, lab]['std']:.3f}" for lab in labels]
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


def write_report(run, task: Task, results: Results, wall_seconds: float, command: str = "") -> None:
    """Write tables, figures and README into ``run.out``."""
    labels = foreground_labels(task)
    t1 = table1(results, labels)
    pv = wilcoxon_table(results, labels)
    atomic_write_text(run.out / "table1.csv", _csv(t1))
    if pv:
        atomic_write_text(run.out / "wilcoxon.csv", _csv(pv))
    md = table1_markdown(t1, labels, pv)
    atomic_write_text(run.out / "table1.md", md)
    figures = []
    for name, fn in (("figure3_boxplot.png", lambda p: figure3_boxplot(results, labels, p)),
                     ("figure4_qualitative.png", lambda p: figure4_qualitative(run, task, p))):
        try:
            fn(run.out / name)
            figures.append(name)
        except ImportError as exc:
            log.warning("no %s: %s", name, exc)
    cfg = run.profile.train.to_dict()
    readme = [
        f"# Benchmark: scenario `{run.scenario}`, profile `{run.profile.name}`", "",
        "Made by:", "", f"    {command or 'ace benchmark'}", "",
        f"- methods: {', '.join(m.key for m in run.methods)}",
        f"- seeds: {run.seeds} (Table 1 cells: mean ± std over test cases, averaged over seeds)",
        f"- training: {json.dumps({k: cfg[k] for k in ('iterations', 'batch_size', 'patch_size', 'base_channels', 'depth', 'learning_rate', 'validation_fraction', 'validation_interval')})}",
        "- model selection: best validation Dice on held-out training cases; the test set is never used",
        f"- wall time: {wall_seconds / 60:.1f} min",
        f"- software: {json.dumps(versions())}", "",
        "## Table 1: Dice per class", "", md, "",
    ]
    readme += [f"![{f}]({f})" for f in figures]
    atomic_write_text(run.out / "README.md", "\n".join(readme) + "\n")
