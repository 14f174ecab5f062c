"""Tasks built from dataset folders whose dataset.json label names are joint label names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from factory import WMH_LABELS

from ACELib.data.contract import DatasetError, write_case, write_dataset_info
from ACELib.data.task_builder import read_sidecar, task_from_dataset_folders, write_sidecar
from ACELib.io.image import Geometry
from ACELib.labels import TaskError, candidate_labels

LABELS = WMH_LABELS


def _dataset(folder, labels: dict, channels=("T1", "FLAIR")):
    write_dataset_info(folder, channels, labels, num_training=1)
    geometry = Geometry((5, 4, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    write_case(folder, "c1", np.zeros((len(channels), 3, 4, 5), np.float32), geometry, np.zeros((3, 4, 5), np.uint8))
    return folder


def test_folders_become_datasets_with_their_annotated_labels(tmp_path):
    tissue = _dataset(tmp_path / "anatomy", {"background": 0, "CSF": 1, "GM": 2, "WM": 3})
    lesion = _dataset(tmp_path / "wmh", {"background": 0, "wmh": 1})  # any case, any value
    task = task_from_dataset_folders([tissue, lesion], LABELS, name="mine")
    assert task.name == "mine" and task.labels == LABELS
    assert [(d.name, dict(d.labels)) for d in task.datasets] == [("anatomy", {1: "CSF", 2: "GM", 3: "WM"}),
                                                                  ("wmh", {1: "WMH"})]
    assert task.input_modalities == ("T1", "FLAIR")
    assert candidate_labels(task, task.dataset("wmh"), 0) == ("background", "CSF", "GM", "WM")


def test_duplicate_folder_names_are_made_unique(tmp_path):
    a = _dataset(tmp_path / "a" / "data", {"background": 0, "WMH": 4})
    b = _dataset(tmp_path / "b" / "data", {"background": 0, "WMH": 4})
    assert [d.name for d in task_from_dataset_folders([a, b], LABELS).datasets] == ["data", "data_2"]


def test_common_modalities_by_default(tmp_path):
    a = _dataset(tmp_path / "a", {"background": 0, "WM": 3}, channels=("T1", "FLAIR"))
    b = _dataset(tmp_path / "b", {"background": 0, "WMH": 1}, channels=("FLAIR",))
    assert task_from_dataset_folders([a, b], LABELS).input_modalities == ("FLAIR",)
    with pytest.raises(TaskError, match=r"lacks the task modalities \['T1'\]"):
        task_from_dataset_folders([a, b], LABELS, modalities=("T1", "FLAIR"))


def test_sidecar_widen_is_used_and_checked(tmp_path):
    a = _dataset(tmp_path / "a", {"background": 0, "CSF": 1, "GM": 2, "WM": 3})
    write_sidecar(a, ["CSF", "GM", "WM"], LABELS, widen={"WM": ["WMH"]}, source="test")
    assert read_sidecar(a)["source"] == "test"
    task = task_from_dataset_folders([a], LABELS)
    assert candidate_labels(task, task.datasets[0], 3) == ("WM", "WMH")
    write_sidecar(a, ["WMH"], LABELS)
    with pytest.raises(DatasetError, match=r"declares annotated labels \['WMH'\] but dataset.json declares"):
        task_from_dataset_folders([a], LABELS)


BAD = {
    "unknown label": ({"background": 0, "lesion": 1}, r"labels \['lesion'\] are not joint labels of the model"),
    "value 0 not background": ({"air": 0, "WM": 1}, "value 0 must be 'background', got 'air'"),
}


@pytest.mark.parametrize(("labels", "message"), BAD.values(), ids=BAD.keys())
def test_bad_label_names_are_clear_errors(tmp_path, labels, message):
    folder = _dataset(tmp_path / "d", labels)
    with pytest.raises(DatasetError, match=message):
        task_from_dataset_folders([folder], LABELS)


def test_missing_inputs(tmp_path):
    with pytest.raises(ValueError, match="at least one dataset folder is needed"):
        task_from_dataset_folders([], LABELS)
    with pytest.raises(DatasetError, match="does not exist"):
        task_from_dataset_folders([tmp_path / "nothing"], LABELS)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1"},
                                                                "labels": {"background": 0, "WM": 1}}))
    (tmp_path / "bad" / "ace_dataset.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="must hold a JSON object, got list"):
        task_from_dataset_folders([tmp_path / "bad"], LABELS)
