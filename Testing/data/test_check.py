import json

import numpy as np
import pytest
import SimpleITK as sitk
from factory import make_tiny_task

from ACELib.cli.main import main
from ACELib.data.check import check_task
from ACELib.io.image import read_image, write_image
from ACELib.labels import load_task


@pytest.fixture
def task_path(tmp_path):
    return make_tiny_task(tmp_path, n_anatomy=2, n_lesion=2, n_test=1, shape=(10, 12, 11))


def test_clean_task_has_no_problems(task_path):
    assert check_task(load_task(task_path)) == []


def _break(task_path, what):
    root = task_path.parent
    img = root / "anatomy/imagesTr/anatomy_000_0001.nii.gz"
    lab = root / "lesion/labelsTr/lesion_001.nii.gz"
    lab0 = root / "lesion/labelsTr/lesion_000.nii.gz"
    if what == "missing":
        img.unlink()
    elif what == "geometry":
        arr, geom = read_image(lab)
        write_image(lab, arr.astype(np.uint8), type(geom)(geom.size, (9.0, 9.0, 9.0), geom.origin, geom.direction))
    elif what == "undeclared":
        arr, geom = read_image(lab)
        arr[0, 0, 0] = 5
        write_image(lab, arr.astype(np.uint8), geom)
    elif what == "nan":
        arr, geom = read_image(img)
        arr[1, 2, 3] = np.nan
        write_image(img, arr, geom)
    elif what == "2d":
        sitk.WriteImage(sitk.Image([4, 5], sitk.sitkFloat32), str(img))
    elif what == "4d":
        sitk.WriteImage(sitk.Image([4, 5, 6, 2], sitk.sitkFloat32), str(img))
    elif what == "empty":
        arr, geom = read_image(lab0)
        write_image(lab0, np.zeros_like(arr, dtype=np.uint8), geom)
    elif what == "modality":
        info = json.loads((root / "lesion/dataset.json").read_text())
        info["channel_names"] = {"0": "T1", "1": "T2"}
        (root / "lesion/dataset.json").write_text(json.dumps(info))
    elif what == "no_dataset_json":
        (root / "lesion/dataset.json").unlink()
    elif what == "truncated":
        data = img.read_bytes()
        img.write_bytes(data[: len(data) // 2])
    elif what == "blank":
        arr, geom = read_image(img)
        write_image(img, np.full_like(arr, 7.0), geom)


@pytest.mark.parametrize(
    "what, message",
    [
        ("missing", r"anatomy_000_0001.nii.gz: missing file"),
        ("geometry", r"lesion_001.nii.gz: geometry differs from lesion_001_0000.nii.gz: spacing"),
        ("undeclared", r"lesion_001.nii.gz: label values \[5\] are not declared for dataset 'lesion'"),
        ("nan", r"anatomy_000_0001.nii.gz': 1 of 1320 voxels are NaN or Inf"),
        ("truncated", r"anatomy_000_0001.nii.gz': truncated or damaged"),
        ("blank", r"anatomy_000_0001.nii.gz: blank image \(every voxel is 7\)"),
        ("2d", r"anatomy_000_0001.nii.gz'?: expected a 3D image, got 2D"),
        ("4d", r"anatomy_000_0001.nii.gz'?: expected a 3D image, got 4D"),
        ("empty", r"lesion_000.nii.gz: empty label map"),
        ("modality", r"modality \['FLAIR'\] needed by the model is missing"),
        ("no_dataset_json", r"dataset.json' does not exist"),
    ],
)
def test_each_problem_is_named(task_path, what, message):
    _break(task_path, what)
    problems = check_task(load_task(task_path))
    assert any(__import__("re").search(message, p) for p in problems), problems


def test_all_problems_at_once_and_nothing_written(task_path, capsys):
    for what in ("missing", "undeclared", "empty"):
        _break(task_path, what)
    before = sorted(p for p in task_path.parent.rglob("*"))
    problems = check_task(load_task(task_path))
    assert len(problems) >= 3
    assert sorted(p for p in task_path.parent.rglob("*")) == before
    assert main(["check", str(task_path)]) == 1
    out = capsys.readouterr().out
    assert "missing file" in out and "not declared" in out and "empty label map" in out


def test_cli_check_ok(task_path, capsys):
    assert main(["check", str(task_path)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("labels, message", [
    ('{"background": 0, "WMH": 1, "WMH": 2}', r"key 'WMH' appears twice in one object"),
    ('{"background": 0, "WMH": 1.5}', r"'labels' values must be integers, got 'WMH': 1.5"),
    ('{"background": 0, "WMH": "1"}', r"'labels' values must be integers, got 'WMH': '1'"),
])
def test_dataset_json_ambiguities_are_refused(task_path, labels, message):
    path = task_path.parent / "lesion/dataset.json"
    text = path.read_text()
    info = json.loads(text)
    path.write_text(text.replace(json.dumps(info["labels"]), labels) if json.dumps(info["labels"]) in text
                    else json.dumps({**info, "labels": "@"}).replace('"@"', labels))
    problems = check_task(load_task(task_path))
    assert any(__import__("re").search(message, p) for p in problems), problems
