"""Hetero-modal inference reads each label from the modalities it was trained with (label sources)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from factory import make_tiny_task

from ACELib.data.contract import list_cases, read_dataset_info
from ACELib.inference import load_model, read_model_file
from ACELib.inference.label_sources import LabelSource, combine_passes, source_passes
from ACELib.inference.metadata import parse_metadata
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train

ANATOMY = LabelSource(("CSF", "GM", "WM"), ("T1",))
LESION = LabelSource(("edema", "tumor"), ("T1", "T2"))
CLASSES = ("background", "CSF", "GM", "WM", "edema", "tumor")


def _probs(*values):
    """``(K, 1, 1, 1)`` probabilities of one voxel."""
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1, 1)


def test_passes_run_most_modalities_first_and_skip_empty_subsets():
    assert source_passes([ANATOMY, LESION], ("T1", "T2")) == [("T1", "T2"), ("T1",)]
    assert source_passes([ANATOMY, LESION], ("T2",)) == [("T2",)]  # no T1: one pass over what there is
    assert source_passes([ANATOMY, LESION], ("T1",)) == [("T1",)]
    assert source_passes([], ("T1", "T2")) == [("T1", "T2")]


def test_lesions_come_from_the_lesion_pass_and_the_rest_is_split_by_the_anatomy_pass():
    full = _probs(0.1, 0.1, 0.05, 0.05, 0.1, 0.6)  # T1+T2: tumour 0.6, edema 0.1
    t1 = _probs(0.1, 0.1, 0.6, 0.2, 0.0, 0.0)  # T1 alone: mostly GM
    out = combine_passes({("T1", "T2"): full, ("T1",): t1}, [ANATOMY, LESION], ("T1", "T2"), CLASSES.index)
    expected = [0.3 * 0.1, 0.3 * 0.1, 0.3 * 0.6, 0.3 * 0.2, 0.1, 0.6]  # 0.3 left after the lesions
    assert torch.allclose(out.flatten(), torch.tensor(expected, dtype=torch.float64))


def test_one_subset_for_every_source_is_the_single_pass():
    rng = np.random.default_rng(0)
    p = torch.softmax(torch.from_numpy(rng.normal(size=(6, 3, 4, 5))), dim=0)
    same = [LabelSource(ANATOMY.labels, ("T1", "T2")), LESION]
    out = combine_passes({("T1", "T2"): p}, same, ("T1", "T2"), CLASSES.index)
    assert torch.allclose(out, p)
    assert torch.allclose(out.sum(0), torch.ones(3, 4, 5, dtype=torch.float64))


def test_label_sources_are_checked_in_the_model_file():
    doc = {"format": "ace-segmentation-model", "format_version": 1,
           "labels": [{"name": n, "value": i, "color": "#000000"} for i, n in enumerate(CLASSES)],
           "members": [{"name": "joint", "modalities": ["T1", "T2"], "classes": list(range(6)),
                        "network": {"kind": "hetero", "in_channels": 2, "num_classes": 6}}],
           "modality_subsets": "any", "label_sources": [ANATOMY.to_dict(), {"labels": ["WMH"], "modalities": ["FLAIR"]}]}
    with pytest.raises(ValueError, match=r"label_sources\[1\] names \['WMH', 'FLAIR'\], not labels or modalities"):
        parse_metadata(json.dumps(doc))
    doc["label_sources"][1] = LESION.to_dict()
    assert parse_metadata(json.dumps(doc))["label_sources"][1] == {"labels": ["edema", "tumor"], "modalities": ["T1", "T2"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ls")
    task = load_task(make_tiny_task(root, n_anatomy=2, n_lesion=2, n_test=0, shape=(12, 12, 12),
                                    anatomy_modalities=("T1",)))
    cfg = TrainConfig(iterations=4, batch_size=3, patch_size=8, base_channels=2, depth=2, validation_interval=4,
                      checkpoint_interval=4, device="cpu", hetero_modal=True, modality_dropout=0.5)
    folder = task.dataset_path(task.dataset("lesion"))
    image, _, geom = list_cases(folder, read_dataset_info(folder))[0].read()
    return train(task, root / "run", cfg).model_path, image, geom


def test_training_records_what_each_dataset_taught(trained):
    meta, _ = read_model_file(trained[0])
    assert meta.label_sources == (LabelSource(("CSF", "GM", "WM"), ("T1",)), LabelSource(("WMH",), ("T1", "FLAIR")))


def test_prediction_with_every_modality_combines_the_two_passes(trained):
    path, image, geom = trained
    model = load_model(path, device="cpu")
    got = model.predict(image, geometry=geom, return_probabilities=True)
    plain = load_model(path, device="cpu")
    plain.metadata = dataclasses.replace(plain.metadata, label_sources=())  # one pass, as before
    full = plain.predict(image, geometry=geom, return_probabilities=True).probabilities
    t1 = plain.predict(image[:1], geometry=geom, modalities=("T1",), return_probabilities=True).probabilities
    names = [lab.name for lab in model.labels]
    expected = combine_passes({("T1", "FLAIR"): torch.from_numpy(full), ("T1",): torch.from_numpy(t1)},
                              model.metadata.label_sources, ("T1", "FLAIR"), names.index)
    assert np.allclose(got.probabilities, expected.numpy(), atol=1e-5)
    values = np.array([lab.value for lab in model.labels])
    assert np.array_equal(got.labels, values[expected.numpy().argmax(0)])
    # with one modality there is one pass, as without label sources
    alone = model.predict(image[:1], geometry=geom, modalities=("T1",), return_probabilities=True)
    assert np.array_equal(alone.probabilities, t1)


def test_older_hetero_models_get_their_label_sources_recorded(trained, tmp_path):
    from ACELib.inference.model_file import save_model
    from ACELib.training.hetero import record_label_sources

    path, _, _ = trained
    meta, nets = read_model_file(path)
    old = tmp_path / "old.safetensors"
    save_model(old, dataclasses.replace(meta, label_sources=()), nets)
    task = load_task(path.parent / "task.json")
    assert record_label_sources(old, task) is True
    again, again_nets = read_model_file(old)
    assert again.label_sources == meta.label_sources
    assert all(torch.equal(a, b) for a, b in zip(again_nets[0].state_dict().values(), nets[0].state_dict().values()))
    assert record_label_sources(old, task) is False  # nothing left to do


def test_labels_never_taught_with_the_given_modalities_are_named(trained, tmp_path, capsys):
    from ACELib.cli.main import main
    from ACELib.io.image import write_image

    path, image, geom = trained
    meta, _ = read_model_file(path)
    assert meta.unsupported_labels(("FLAIR",)) == ("CSF", "GM", "WM")
    assert meta.unsupported_labels(("T1",)) == () and meta.unsupported_labels(("T1", "FLAIR")) == ()
    write_image(tmp_path / "flair.nii.gz", image[1], geom)
    assert main(["predict", "--model", str(path), "--modalities", "FLAIR", "--images", str(tmp_path / "flair.nii.gz"),
                 "--out", str(tmp_path / "seg.nii.gz"), "--device", "cpu"]) == 0
    assert "warning: CSF, GM, WM were trained only with T1, which the input lacks" in capsys.readouterr().out
