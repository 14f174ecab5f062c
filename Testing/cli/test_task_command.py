"""`ace task`: a task file from nnU-Net dataset folders, joint labels matched by name."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from factory import make_tiny_task

from ACELib.cli.main import main
from ACELib.data.check import check_task
from ACELib.data.contract import write_case, write_dataset_info
from ACELib.data.task_builder import joint_labels_from_folders
from ACELib.io.image import Geometry
from ACELib.labels import load_task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    make_tiny_task(root, n_anatomy=2, n_lesion=2, n_test=1, shape=(12, 14, 13))
    return root


def _dataset(folder, labels, channels=("T1", "FLAIR")):
    write_dataset_info(folder, channels, labels, num_training=1)
    geometry = Geometry((5, 4, 3), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    label = np.zeros((3, 4, 5), np.uint8)
    label[1, 1:3, 1:4] = max(labels.values())
    write_case(folder, "c1", np.random.default_rng(0).random((len(channels), 3, 4, 5), np.float32), geometry, label)
    return folder


def test_task_from_two_datasets_checks_and_trains(tiny, tmp_path, capsys):
    out = tmp_path / "tasks" / "wmh.json"
    assert main(["task", str(tiny / "anatomy"), str(tiny / "lesion"), "--test", str(tiny / "test"),
                 "--out", str(out)]) == 0
    assert "joint labels ['0=background', '1=CSF', '2=GM', '3=WM', '4=WMH']" in capsys.readouterr().out
    task = load_task(out)
    assert check_task(task) == []
    assert task.name == "wmh" and task.input_modalities == ("T1", "FLAIR")
    assert [(d.name, d.role, dict(d.labels)) for d in task.datasets] == [
        ("anatomy", "train", {1: "CSF", 2: "GM", 3: "WM"}),
        ("lesion", "train", {1: "WMH"}),
        ("test", "test", {1: "CSF", 2: "GM", 3: "WM", 4: "WMH"}),
    ]
    path = json.loads(out.read_text())["datasets"][0]["path"]  # relative to the task file
    assert not path.startswith("/") and (out.parent / path).resolve() == (tiny / "anatomy").resolve()
    tiny_run = ["--iterations", "2", "--batch-size", "2", "--patch-size", "8", "--base-channels", "2",
                "--depth", "2", "--val-interval", "2", "--checkpoint-interval", "2", "--device", "cpu"]
    assert main(["train", "--task", str(out), "--out", str(tmp_path / "run"), *tiny_run]) == 0


def test_options_name_modalities_and_overwrite(tiny, tmp_path, capsys):
    out = tmp_path / "task.json"
    args = ["task", str(tiny / "anatomy"), str(tiny / "lesion"), "--out", str(out)]
    assert main([*args, "--name", "mine", "--modalities", "FLAIR"]) == 0
    task = load_task(out)
    assert task.name == "mine" and task.input_modalities == ("FLAIR",) and not task.test_datasets
    assert main(args) == 2
    assert "exists already; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert load_task(out).name == "task" and load_task(out).input_modalities == ("T1", "FLAIR")
    assert main([*args, "--overwrite", "--modalities", "T2"]) == 2
    assert "lacks the task modalities ['T2']" in capsys.readouterr().err


def test_labels_match_by_name_whatever_their_values(tmp_path):
    a = _dataset(tmp_path / "a", {"background": 0, "CSF": 1, "GM": 2, "WM": 3})
    b = _dataset(tmp_path / "b", {"background": 0, "wmh": 1})  # same name as c's, any case
    c = _dataset(tmp_path / "c", {"background": 0, "WMH": 2, "Tumour": 5})
    labels = joint_labels_from_folders([b, a, c])
    assert [(lab.name, lab.value) for lab in labels] == [("background", 0), ("CSF", 1), ("GM", 2), ("WM", 3),
                                                         ("wmh", 4), ("Tumour", 5)]
    out = tmp_path / "task.json"
    assert main(["task", str(a), str(b), str(c), "--out", str(out)]) == 0
    task = load_task(out)
    assert [dict(d.labels) for d in task.datasets] == [{1: "CSF", 2: "GM", 3: "WM"}, {1: "wmh"},
                                                       {2: "wmh", 5: "Tumour"}]
    assert check_task(task) == []


def test_ignore_label_is_no_joint_label(tmp_path):
    a = _dataset(tmp_path / "a", {"background": 0, "WM": 1})
    b = _dataset(tmp_path / "b", {"background": 0, "WMH": 1, "ignore": 2})
    out = tmp_path / "task.json"
    assert main(["task", str(a), str(b), "--out", str(out)]) == 0
    task = load_task(out)
    assert task.label_names == ("background", "WM", "WMH")
    assert dict(task.dataset("b").labels) == {1: "WMH", 2: "ignore"}
    assert check_task(task) == []


@pytest.mark.parametrize("labels, message", [
    ({"background": 0, "WM": 1, "wm": 2}, r"labels 'WM' and 'wm' would be the same joint label"),
    ({"brain": 0, "WM": 1}, r"label 'brain' has value 0; value 0 must be 'background'"),
    ({"background": 3, "WM": 1}, r"label 'background' has value 3"),
])
def test_clashes_are_reported(tmp_path, capsys, labels, message):
    good = _dataset(tmp_path / "good", {"background": 0, "CSF": 1})
    bad = tmp_path / "bad"
    write_dataset_info(bad, ["T1", "FLAIR"], labels, num_training=0)
    out = tmp_path / "task.json"
    assert main(["task", str(good), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ace task: error: ") and "bad" in err
    assert re.search(message, err), err
    assert not out.exists()
