"""'Add to training set' without MRML: annotation modes, case names, folder rules, never overwriting."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ACESegmentationLib import export

from ACELib.data.contract import DatasetError, list_cases, read_dataset_info
from ACELib.io.image import Geometry
from ACELib.labels import JointLabel

LABELS = (
    JointLabel("background", 0, (0, 0, 0)),
    JointLabel("CSF", 1, (70, 130, 180)),
    JointLabel("GM", 2, (220, 180, 140)),
    JointLabel("WM", 3, (245, 245, 245)),
    JointLabel("edema", 5, (140, 224, 228)),
    JointLabel("Tumour", 7, (144, 238, 144)),
)
SHAPE = (5, 6, 7)
GEOMETRY = Geometry((7, 6, 5), (1.0, 1.2, 2.0), (3.0, -4.0, 5.0))

MODES = {"all": ["CSF", "GM", "WM", "edema", "Tumour"], "tissue": ["CSF", "GM", "WM"], "lesion": ["edema", "Tumour"]}


@pytest.mark.parametrize(("mode", "names"), MODES.items())
def test_annotated_labels_by_mode(mode, names):
    assert [lab.name for lab in export.annotatedLabels(LABELS, mode)] == names


def test_bad_modes():
    with pytest.raises(ValueError, match=r"annotation mode must be one of \['all', 'tissue', 'lesion'\], got 'some'"):
        export.annotatedLabels(LABELS, "some")
    with pytest.raises(ValueError, match="annotation mode 'lesion' leaves no label"):
        export.annotatedLabels(LABELS[:4], "lesion")


CASE_NAMES = [("sub-01 T1w", "sub-01_T1w"), ("  a/b\\c  ", "a_b_c"), ("é.nii", "nii"), ("x..", "x")]


@pytest.mark.parametrize(("name", "safe"), CASE_NAMES)
def test_safe_case_names(name, safe):
    assert export.safeCaseName(name) == safe


def test_unusable_case_name():
    with pytest.raises(ValueError, match="has no usable character"):
        export.safeCaseName("///")


def _case(seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 5, 7], np.uint8)[rng.integers(0, 6, SHAPE)]
    return image, labels


def test_export_writes_only_annotated_labels(tmp_path):
    image, labels = _case()
    case = export.exportCase(tmp_path / "d", "c1", image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"), "lesion")
    written, label, geometry = case.read()
    np.testing.assert_array_equal(written, image)
    np.testing.assert_array_equal(label, np.where(np.isin(labels, [5, 7]), labels, 0))
    assert geometry.differences(GEOMETRY) == []
    assert read_dataset_info(tmp_path / "d").labels == {"background": 0, "edema": 5, "Tumour": 7}


def test_free_case_name_and_num_training(tmp_path):
    image, labels = _case()
    folder = tmp_path / "d"
    assert export.freeCaseName(folder, "c") == "c"
    for _ in range(3):
        export.exportCase(folder, export.freeCaseName(folder, "c"), image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"))
    assert [c.name for c in list_cases(folder)] == ["c", "c_2", "c_3"]
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 3


def test_existing_dataset_keeps_its_other_keys(tmp_path):
    image, labels = _case()
    folder = tmp_path / "d"
    export.exportCase(folder, "a", image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"))
    data = json.loads((folder / "dataset.json").read_text())
    data["description"] = "made by hand"
    (folder / "dataset.json").write_text(json.dumps(data))
    export.exportCase(folder, "b", image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"))
    data = json.loads((folder / "dataset.json").read_text())
    assert data["description"] == "made by hand" and data["numTraining"] == 2


FOLDER_ERRORS = {
    "other modalities": (("T1", "T2"), "all", r"holds modalities \['T1', 'FLAIR'\], this case has \['T1', 'T2'\]"),
    "other labels": (("T1", "FLAIR"), "tissue", "a dataset folder holds one set of annotated labels"),
}


@pytest.mark.parametrize(("modalities", "mode", "message"), FOLDER_ERRORS.values(), ids=FOLDER_ERRORS.keys())
def test_incompatible_folders(tmp_path, modalities, mode, message):
    image, labels = _case()
    export.exportCase(tmp_path / "d", "a", image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"))
    with pytest.raises(DatasetError, match=message):
        export.exportCase(tmp_path / "d", "b", image, GEOMETRY, labels, LABELS, modalities, mode)
    assert [c.name for c in list_cases(tmp_path / "d")] == ["a"]


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    image, labels = _case()
    with pytest.raises(DatasetError, match="is not empty and has no dataset.json"):
        export.exportCase(tmp_path / "d", "a", image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"))


BAD_INPUTS = {
    "channels": (np.zeros((1, *SHAPE), np.float32), np.zeros(SHAPE, np.uint8), r"C = 2 channels \['T1', 'FLAIR'\]"),
    "label shape": (np.zeros((2, *SHAPE), np.float32), np.zeros((5, 6, 8), np.uint8), "does not fit image"),
    "label values": (np.zeros((2, *SHAPE), np.float32), np.full(SHAPE, 4, np.uint8),
                     r"label map values \[4\] are not joint label values"),
}


@pytest.mark.parametrize(("image", "labels", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs(tmp_path, image, labels, message):
    with pytest.raises(ValueError, match=message):
        export.exportCase(tmp_path / "d", "a", image, GEOMETRY, labels, LABELS, ("T1", "FLAIR"))
    assert not (tmp_path / "d").exists()
