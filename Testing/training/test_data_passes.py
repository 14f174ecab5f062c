"""`ace train` decodes every image once: the check before training reads headers, the loading pass the voxels
(and refuses damaged ones, naming the file, before the run folder is written)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from factory import make_tiny_task

import ACELib.io.image as image_io
from ACELib.data.augment import AugmentationConfig
from ACELib.data.check import check_task
from ACELib.data.contract import SYNTH_FOLDER
from ACELib.io.image import read_image, write_image
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train

CFG = TrainConfig(loss="ace", iterations=2, batch_size=2, patch_size=8, base_channels=2, depth=2,
                  validation_interval=2, checkpoint_interval=2, device="cpu")


@pytest.fixture
def task_path(tmp_path):
    return make_tiny_task(tmp_path / "data", n_anatomy=2, n_lesion=2, n_test=1, shape=(10, 10, 10))


@pytest.fixture
def decodes(monkeypatch):
    """Per file: how often its voxels were decoded by ITK and streamed by the NIfTI data check."""
    counts = {"itk": Counter(), "stream": Counter()}
    execute, stream = sitk.ImageFileReader.Execute, image_io.check_nifti_data

    def counted_execute(reader, *args):
        counts["itk"][Path(reader.GetFileName()).name] += 1
        return execute(reader, *args)

    def counted_stream(path):
        counts["stream"][Path(path).name] += 1
        return stream(path)

    monkeypatch.setattr(sitk.ImageFileReader, "Execute", counted_execute)
    monkeypatch.setattr(image_io, "check_nifti_data", counted_stream)
    return counts


def _training_files(task_path: Path) -> list[str]:
    root = task_path.parent
    return sorted(p.name for ds in ("anatomy", "lesion") for p in (root / ds).rglob("*.nii.gz"))


@pytest.mark.parametrize("cache", [False, True])
def test_training_decodes_each_file_once(task_path, tmp_path, decodes, cache):
    config = CFG.with_changes(cache_dir=str(tmp_path / "cache")) if cache else CFG
    assert train(load_task(task_path), tmp_path / "run", config).status == "finished"
    files = _training_files(task_path)
    assert len(files) == 12  # 4 cases: 2 channels and a label map each
    assert decodes["itk"] == Counter(dict.fromkeys(files, 1))
    assert decodes["stream"] == Counter(dict.fromkeys(files, 1))
    if cache:  # a second run on a valid cache decodes nothing
        decodes["itk"].clear()
        decodes["stream"].clear()
        train(load_task(task_path), tmp_path / "run2", config)
        assert not decodes["itk"] and not decodes["stream"]


def test_the_header_check_reads_no_voxels(task_path, decodes):
    assert check_task(load_task(task_path), include_test=False, values=False) == []
    assert not decodes["itk"] and not decodes["stream"]
    assert check_task(load_task(task_path), include_test=False) == []  # ace check reads them all
    assert decodes["itk"] == Counter(dict.fromkeys(_training_files(task_path), 1))


def _break(task_path: Path, what: str) -> Path:
    """Damage one file's voxels (its header stays valid); returns the file."""
    root = task_path.parent
    path = root / ("anatomy/imagesTr/anatomy_001_0001.nii.gz" if what in ("nan", "blank")
                   else "lesion/labelsTr/lesion_000.nii.gz")
    arr, geom = read_image(path)
    if what == "nan":
        arr[1, 2, 3] = np.nan
    elif what == "blank":
        arr[:] = 7.0
    elif what == "empty":
        arr[:] = 0
    elif what == "undeclared":
        arr[0, 0, 0] = 5
    write_image(path, arr if what in ("nan", "blank") else arr.astype(np.uint8), geom)
    return path


@pytest.mark.parametrize("what, message", [
    ("nan", r"anatomy_001_0001.nii.gz': 1 of 1000 voxels are NaN or Inf"),
    ("blank", r"anatomy_001_0001.nii.gz: blank image \(every voxel is 7\)"),
    ("empty", r"lesion_000.nii.gz: empty label map \(background only\)"),
    ("undeclared", r"lesion_000.nii.gz: label values \[5\] are not declared for dataset 'lesion'"),
])
def test_bad_voxels_are_refused_by_the_loading_pass(task_path, tmp_path, what, message):
    _break(task_path, what)
    assert check_task(load_task(task_path), include_test=False, values=False) == []  # the headers are fine
    with pytest.raises(ValueError, match=r"the task's data has 1 problems:\n  - .*" + message):
        train(load_task(task_path), tmp_path / "run", CFG)
    assert not (tmp_path / "run").exists()


def test_every_bad_case_is_listed(task_path, tmp_path):
    _break(task_path, "nan")
    _break(task_path, "empty")
    with pytest.raises(ValueError, match=r"has 2 problems:\n  - .*anatomy_001_0001.*\n  - .*lesion_000.nii.gz"):
        train(load_task(task_path), tmp_path / "run", CFG)


def test_generator_maps_are_read_only_for_domain_randomisation(task_path, tmp_path, decodes):
    root = task_path.parent
    for ds in ("anatomy", "lesion"):  # a generator label map beside each label map (as ace phantoms writes)
        shutil.copytree(root / ds / "labelsTr", root / ds / SYNTH_FOLDER)
    train(load_task(task_path), tmp_path / "run", CFG)  # the default augmentation: no domain randomisation
    assert not [name for name in decodes["itk"] if decodes["itk"][name] > 1]
    assert sum(decodes["itk"].values()) == 12  # channels and label maps once; no generator map
    decodes["itk"].clear()
    config = CFG.with_changes(augmentation=AugmentationConfig(domain_randomization=0.5))
    train(load_task(task_path), tmp_path / "run_dr", config)
    assert sum(decodes["itk"].values()) == 16  # and now each case's generator map too
    decodes["itk"].clear()
    config = CFG.with_changes(augmentation=AugmentationConfig(p_class_gain=0.5))
    train(load_task(task_path), tmp_path / "run_gain", config)
    assert sum(decodes["itk"].values()) == 16  # class gains read the generator maps as well
