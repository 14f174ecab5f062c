"""The benchmark's joint test sets: their names, where their images and labels are, and Dice per test case.

Shared by the runner (prediction and evaluation), the report (tables, Wilcoxon test) and the figures,
so that none of these needs another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ACELib.labels import Task

MAIN_TEST = "test"
"""The scenario's own joint test set; others (``shifted``) get their own sub-folders of the results."""


def test_sets(task: Task) -> list[str]:
    """Names of the task's test datasets, the scenario's own test set first."""
    names = [d.name for d in task.test_datasets]
    return sorted(names, key=lambda n: (n != MAIN_TEST, n))


def test_folders(task: Task, name: str | None = None) -> tuple[Path, Path]:
    """Images and labels folder of the test dataset ``name`` (default: the task's only or main one)."""
    tests = task.test_datasets
    if name is None:
        if len(tests) == 1:
            name = tests[0].name
        elif any(d.name == MAIN_TEST for d in tests):
            name = MAIN_TEST
        else:
            raise ValueError(f"the task has {len(tests)} test datasets and none is called {MAIN_TEST!r}: name one")
    chosen = [d for d in tests if d.name == name]
    if not chosen:
        raise ValueError(f"the task has no test dataset {name!r}; it has {[d.name for d in tests]}")
    root = task.dataset_path(chosen[0])
    return root / "imagesTr", root / "labelsTr"


def evaluation_is_current(csv_path: Path, model_path: Path) -> bool:
    """Whether ``csv_path`` exists and was written after the model file at ``model_path`` (an
    evaluation older than its model belongs to a run retrained or replaced since)."""
    return csv_path.exists() and csv_path.stat().st_mtime >= model_path.stat().st_mtime


def drop_stale_segmentations(prediction_dir: Path, model_path: Path) -> None:
    """Remove the segmentations in ``prediction_dir`` written before the model file, so that a resumed
    prediction does not reuse them; those written after it (an interrupted prediction of this model)
    are kept."""
    if not prediction_dir.is_dir():
        return
    model_time = model_path.stat().st_mtime
    for f in prediction_dir.iterdir():
        if f.is_file() and f.stat().st_mtime < model_time:
            f.unlink()


def per_case_dice(rows_by_seed: Mapping[int, Sequence[dict]], label: str) -> dict[str, float]:
    """Dice of each test case for one label, averaged over seeds."""
    acc: dict[str, list[float]] = {}
    for rows in rows_by_seed.values():
        for r in rows:
            if r["label"] == label:
                acc.setdefault(r["case"], []).append(float(r["dice"]))
    return {case: float(np.mean(v)) for case, v in sorted(acc.items())}


test_folders.__test__ = False  # not pytest tests, whoever imports them
test_sets.__test__ = False
