"""The benchmark's joint test set: where its images and labels are, and Dice per test case.

Shared by the runner (prediction and evaluation), the report (tables, Wilcoxon test) and the figures,
so that none of these needs another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ACELib.labels import Task


def test_folders(task: Task) -> tuple[Path, Path]:
    """Images and labels folder of the task's (single) test dataset."""
    tests = task.test_datasets
    if len(tests) != 1:
        raise ValueError(f"the benchmark needs exactly one dataset with role 'test', got {len(tests)}")
    root = task.dataset_path(tests[0])
    return root / "imagesTr", root / "labelsTr"


def per_case_dice(rows_by_seed: Mapping[int, Sequence[dict]], label: str) -> dict[str, float]:
    """Dice of each test case for one label, averaged over seeds."""
    acc: dict[str, list[float]] = {}
    for rows in rows_by_seed.values():
        for r in rows:
            if r["label"] == label:
                acc.setdefault(r["case"], []).append(float(r["dice"]))
    return {case: float(np.mean(v)) for case, v in sorted(acc.items())}


test_folders.__test__ = False  # not a pytest test, whoever imports it
