"""Shared fixtures: a small task (tissue + WMH) and deterministic seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ACELib.labels import Task


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(2)


WMH_TASK = {
    "name": "wmh",
    "labels": [
        {"name": "background", "value": 0, "color": "#000000"},
        {"name": "CSF", "value": 1, "color": "#4682b4"},
        {"name": "GM", "value": 2, "color": "#dcb48c"},
        {"name": "WM", "value": 3, "color": "#f5f5f5"},
        {"name": "WMH", "value": 4, "color": "#ff3232"},
    ],
    "datasets": [
        {"name": "anatomy", "path": "anatomy", "modalities": ["T1", "FLAIR"],
         "labels": {"1": "CSF", "2": "GM", "3": "WM"}},
        {"name": "lesion", "path": "lesion", "modalities": ["T1", "FLAIR"], "labels": {"1": "WMH"}},
    ],
}


@pytest.fixture
def wmh_task_dict() -> dict:
    import copy

    return copy.deepcopy(WMH_TASK)


@pytest.fixture
def wmh_task(wmh_task_dict) -> Task:
    return Task.from_dict(wmh_task_dict)
