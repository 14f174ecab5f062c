"""Test conditions: a model tested again with a subset of the test set's modalities.

A hetero-modal method (``Method.conditions``) is evaluated with all modalities (its ordinary
results) and once per listed subset, e.g. T1 alone. Each condition is a results entry of its own,
keyed ``<method>@<modalities joined by +>`` (``ace-hetero@T1``), so that Table 1 and the Wilcoxon
tests list it beside the methods::

    predictions/<method>@T1/seed<k>/      segmentations from the T1 images only
    evaluation/<method>@T1_seed<k>.csv    their evaluation
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ACELib.benchmark.testset import drop_stale_segmentations, evaluation_is_current
from ACELib.inference import CaseInput, cases_in_folder, load_model, predict_folder
from ACELib.labels import Task
from ACELib.metrics import evaluate_folders, read_evaluation, write_evaluation

log = logging.getLogger(__name__)


def condition_key(method_key: str, subset: Sequence[str]) -> str:
    """The results key of ``method_key`` tested with ``subset``: ``"ace-hetero@T1"``, ``"x@T1+FLAIR"``."""
    if not subset:
        raise ValueError(f"subset must name at least one modality, got {list(subset)}")
    return f"{method_key}@{'+'.join(subset)}"


def restrict_cases(cases: Sequence[CaseInput], subset: Sequence[str]) -> list[CaseInput]:
    """The cases with only the channels of ``subset`` (in that order).

    Raises:
        ValueError: a case lacks one of them (named).
    """
    out = []
    for case in cases:
        missing = [m for m in subset if m not in case.modalities]
        if missing:
            raise ValueError(f"test case {case.name!r} lacks {missing} (it has {list(case.modalities)})")
        idx = [case.modalities.index(m) for m in subset]
        series = tuple(case.series[i] for i in idx) if case.series else ()
        out.append(CaseInput(case.name, tuple(case.image_paths[i] for i in idx), tuple(subset), series))
    return out


def evaluate_condition(out: Path, task: Task, images: Path, labels: Path, method_key: str, seed: int,
                       model_path: Path, subset: Sequence[str], device: str = "auto") -> list[dict]:
    """Segment the test images with ``subset`` only and evaluate (both kept on resume).

    Args:
        out: the benchmark's results folder.
        images, labels: the test set's folders (:func:`ACELib.benchmark.runner.test_folders`).
    """
    key = condition_key(method_key, subset)
    csv_path = out / "evaluation" / f"{key}_seed{seed}.csv"
    pred_dir = out / "predictions" / key / f"seed{seed}"
    if evaluation_is_current(csv_path, Path(model_path)):
        return read_evaluation(csv_path)
    drop_stale_segmentations(pred_dir, Path(model_path))
    model = load_model(model_path, device=device)
    model.metadata.check_modalities(subset)  # a subset the model does not take: say so before any work
    predict_folder(model, restrict_cases(cases_in_folder(images), subset), pred_dir, skip_existing=True)
    rows = evaluate_folders(pred_dir, labels, task.labels)
    write_evaluation(rows, csv_path)
    return rows


def condition_results(run, task: Task, device: str = "auto") -> dict[str, dict[int, list[dict]]]:
    """Every condition of every method of a benchmark run whose models exist: key -> seed -> rows.

    A subset that the test set does not have (e.g. the WMH scenario has no T1c) is skipped with a
    log line.
    """
    from ACELib.benchmark.testset import test_folders

    images, labels = test_folders(task)
    test_modalities = set(task.test_datasets[0].modalities)
    results: dict[str, dict[int, list[dict]]] = {}
    for method in run.methods:
        for subset in method.conditions:
            if not set(subset) <= test_modalities:
                log.info("%s: the test set lacks %s; condition skipped", method.key, list(subset))
                continue
            key = condition_key(method.key, subset)
            for seed in run.seeds:
                model_path = run.run_dir(method, seed) / "model.safetensors"
                results.setdefault(key, {})[seed] = evaluate_condition(
                    run.out, task, images, labels, method.key, seed, model_path, subset, device)
                log.info("%s seed %d: evaluated", key, seed)
    return results


__all__ = ["condition_key", "condition_results", "evaluate_condition", "restrict_cases"]
