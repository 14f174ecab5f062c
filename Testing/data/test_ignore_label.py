"""nnU-Net's ignore label: a dataset value named "ignore" may be any joint label.

Checked, loaded (ignore voxels -> IGNORE_INDEX), never a patch centre, left out of validation Dice,
trained on (single model and Multi-UNet)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from factory import make_tiny_task

from ACELib.cli.main import main
from ACELib.data.check import check_task
from ACELib.data.contract import read_dataset_info, write_dataset_info
from ACELib.data.loading import load_datasets
from ACELib.data.preprocessing import Preprocessing
from ACELib.data.sampling import BalancedSampler
from ACELib.labels import IGNORE_INDEX, TaskError, candidate_labels, load_task
from ACELib.training.validation import dice_scores

IGNORE_VALUE = 2


def _with_ignore(root, map_in_task=True):
    """The tiny task whose lesion dataset marks a slab of every case as nnU-Net's ignore label."""
    path = make_tiny_task(root, n_anatomy=2, n_lesion=2, n_test=2, shape=(12, 14, 13))
    lesion = root / "lesion"
    info = read_dataset_info(lesion)
    write_dataset_info(lesion, info.channel_names, {**info.labels, "ignore": IGNORE_VALUE}, 2)
    for f in sorted((lesion / "labelsTr").iterdir()):
        img = nib.load(f)
        lab = np.asarray(img.dataobj).astype(np.int16)
        lab[:, :, :4] = IGNORE_VALUE  # nibabel (x, y, z): the first 4 slices
        nib.save(nib.Nifti1Image(lab, img.affine, img.header), f)
    if map_in_task:
        data = json.loads(path.read_text())
        data["datasets"][1]["labels"][str(IGNORE_VALUE)] = "ignore"
        path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def task_path(tmp_path_factory):
    return _with_ignore(tmp_path_factory.mktemp("ignore"))


def test_check_passes_and_ignore_may_be_any_label(task_path):
    task = load_task(task_path)
    assert check_task(task) == []
    lesion = task.dataset("lesion")
    assert lesion.ignore_values == (IGNORE_VALUE,) and lesion.annotated_names == {"background", "WMH"}
    assert candidate_labels(task, lesion, IGNORE_VALUE) == task.label_names


def test_an_unmapped_ignore_value_is_reported_with_the_fix(tmp_path):
    task = load_task(_with_ignore(tmp_path, map_in_task=False))
    problems = check_task(task)
    assert problems and all("dataset.json calls 2 'ignore': map it in the task file" in p for p in problems)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["labels"].append({"name": "ignore", "value": 9, "color": "#000000"}), r"'ignore' is reserved"),
    (lambda d: d["datasets"][1].update(labels={"2": "ignore"}), r"'lesion': annotates nothing"),
    (lambda d: d["datasets"][1].update(widen={"ignore": ["WM"]}), r"widen names 'ignore'"),
    (lambda d: d["datasets"][1]["labels"].update({"3": "ignore"}), r"two label values map to 'ignore'"),
])
def test_bad_uses_of_ignore_are_refused(task_path, tmp_path, edit, message):
    data = json.loads(task_path.read_text())
    edit(data)
    bad = task_path.parent / f"bad_{tmp_path.name}.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(TaskError, match=message):
        load_task(bad)


def test_loading_marks_ignore_voxels_and_sampling_never_centres_on_them(task_path):
    task = load_task(task_path)
    anatomy, lesion = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities)
    assert lesion.classes == [0, 4]
    for case in lesion.cases:
        assert np.all(case.target[:4] == IGNORE_INDEX)  # array (z, y, x): the first 4 slices
        assert IGNORE_INDEX not in set(np.unique(case.target[4:]).tolist())
        assert IGNORE_INDEX not in case.class_voxels
    sampler = BalancedSampler([anatomy, lesion], patch_size=6, batch_size=4, seed=3)
    centres = [int(case.target[v]) for _, case, v in (sampler.draw() for _ in range(500))]
    assert IGNORE_INDEX not in centres
    batch = sampler.sample()
    assert set(np.unique(batch.target.numpy()).tolist()) <= {0, 1, 2, 3, 4, IGNORE_INDEX}


def test_validation_dice_skips_ignore_voxels():
    target = np.array([0, 4, 4, IGNORE_INDEX, IGNORE_INDEX, 0])
    pred = np.array([0, 4, 0, 0, 0, 0])
    for at_ignore in (0, 4):
        pred[3:5] = at_ignore
        assert dice_scores(pred, target, [4]) == {4: pytest.approx(2 / 3)}


@pytest.mark.parametrize("method", [["--loss", "ace+dice"], ["--multi-unet"]], ids=["ace+dice", "multi-unet"])
def test_training_with_an_ignore_region(task_path, tmp_path, method):
    tiny = ["--iterations", "3", "--batch-size", "2", "--patch-size", "8", "--base-channels", "2", "--depth", "2",
            "--val-interval", "3", "--checkpoint-interval", "3", "--device", "cpu"]
    assert main(["train", "--task", str(task_path), "--out", str(tmp_path / "run"), *tiny, *method]) == 0
    assert (tmp_path / "run" / "model.safetensors").exists()
