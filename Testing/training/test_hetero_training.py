"""Hetero-modal training end to end on tiny data: model file, exact resume, prediction with subsets."""

import json

import numpy as np
import pytest
import torch
from factory import make_tiny_task

from ACELib.inference import load_model, read_model_file
from ACELib.labels import load_task
from ACELib.networks import HeteroUNet3D
from ACELib.training import TrainConfig, train

CFG = TrainConfig(loss="ace", iterations=4, batch_size=3, patch_size=8, base_channels=2, depth=2,
                  validation_interval=2, checkpoint_interval=2, device="cpu", hetero_modal=True,
                  modality_dropout=0.5)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_tiny_task(tmp_path_factory.mktemp("ht"), n_anatomy=2, n_lesion=2, n_test=0,
                                    shape=(12, 12, 12), anatomy_modalities=("T1",)))


@pytest.fixture(scope="module")
def trained(task, tmp_path_factory):
    return train(task, tmp_path_factory.mktemp("run") / "run", CFG)


def test_the_single_model_uses_the_union_and_records_its_subsets(trained):
    meta, nets = read_model_file(trained.model_path)
    assert meta.modalities == ("T1", "FLAIR") and meta.modality_subsets == "any"
    assert isinstance(nets[0], HeteroUNet3D) and meta.members[0].network["kind"] == "hetero"
    assert meta.training["hetero_modal"] is True and meta.training["modality_dropout"] == 0.5
    log = (trained.run_dir / "log.csv").read_text()
    assert "val:anatomy/CSF" in log and "val:lesion/WMH" in log  # both datasets validated


def test_model_file_round_trip_keeps_weights_and_subsets(trained, tmp_path):
    model = load_model(trained.model_path, device="cpu")
    model.save(tmp_path / "again.safetensors")
    meta, nets = read_model_file(tmp_path / "again.safetensors")
    _, ref = read_model_file(trained.model_path)
    assert meta == model.metadata
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(), ref[0].state_dict().values()))


def test_without_dropout_only_the_datasets_subsets_are_accepted(task, tmp_path):
    result = train(task, tmp_path / "nodrop", CFG.with_changes(iterations=1, modality_dropout=0.0))
    meta, _ = read_model_file(result.model_path)
    assert meta.modality_subsets == (("T1",), ("T1", "FLAIR"))
    assert meta.accepts(["FLAIR", "T1"]) and meta.accepts(["T1"]) and not meta.accepts(["FLAIR"])
    with pytest.raises(ValueError, match=r"one of the subsets \['T1'\], \['T1', 'FLAIR'\]"):
        meta.check_modalities(["FLAIR"])


def test_stop_and_resume_is_bit_identical_with_dropout(task, tmp_path):
    full = train(task, tmp_path / "full", CFG)
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] > 3

    part = train(task, tmp_path / "part", CFG, should_stop=stop_after_three)
    assert part.status == "stopped"
    resumed = train(task, tmp_path / "part", CFG, resume=True)
    a = read_model_file(full.last_model_path)[1][0].state_dict()
    b = read_model_file(resumed.last_model_path)[1][0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dropout_seed_changes_the_run(task, tmp_path):
    a = train(task, tmp_path / "a", CFG.with_changes(iterations=2, validation_interval=5))
    b = train(task, tmp_path / "b", CFG.with_changes(iterations=2, validation_interval=5, modality_dropout=0.3))
    wa = read_model_file(a.last_model_path)[1][0].state_dict()
    wb = read_model_file(b.last_model_path)[1][0].state_dict()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_the_subset_rule_reaches_the_sampler_and_the_model_file(task, tmp_path):
    a = train(task, tmp_path / "a", CFG.with_changes(iterations=2, validation_interval=5))
    b = train(task, tmp_path / "b", CFG.with_changes(iterations=2, validation_interval=5,
                                                   modality_subsets="independent"))
    meta_a, nets_a = read_model_file(a.last_model_path)
    meta_b, nets_b = read_model_file(b.last_model_path)
    assert meta_a.training["modality_subsets"] == "uniform" and meta_b.training["modality_subsets"] == "independent"
    wa, wb = nets_a[0].state_dict(), nets_b[0].state_dict()
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("kw, match", [
    ({"multi_unet": True}, "hetero_modal and multi_unet exclude each other"),
    ({"modality_dropout": 1.0}, r"modality_dropout must be in \[0, 1\)"),
])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        CFG.with_changes(**kw)


def test_old_configs_load_with_the_new_fields_off():
    d = CFG.to_dict()
    for k in ("hetero_modal", "modality_dropout"):
        d.pop(k)
    cfg = TrainConfig.from_dict(json.loads(json.dumps(d)))
    assert cfg.hetero_modal is False


def _subject(task, name="lesion"):
    from ACELib.data.contract import list_cases, read_dataset_info

    folder = task.dataset_path(task.dataset(name))
    image, _, geom = list_cases(folder, read_dataset_info(folder))[0].read()
    return image, geom


@pytest.mark.parametrize("names", [("T1",), ("FLAIR",), ("T1", "FLAIR")])
def test_predict_answers_for_each_subset_in_any_order(trained, task, names):
    model = load_model(trained.model_path, device="cpu")
    image, geom = _subject(task)  # (2, D, H, W): T1, FLAIR
    idx = [("T1", "FLAIR").index(m) for m in names]
    pred = model.predict(image[idx], geometry=geom, modalities=names)
    assert pred.labels.shape == image.shape[1:]
    swapped = model.predict(image[idx[::-1]], geometry=geom, modalities=names[::-1])
    assert np.array_equal(pred.labels, swapped.labels)


def test_subsets_change_the_answer_and_all_is_the_default(trained, task):
    model = load_model(trained.model_path, device="cpu")
    image, geom = _subject(task)
    full = model.predict(image, geometry=geom, return_probabilities=True)
    named = model.predict(image, geometry=geom, modalities=("T1", "FLAIR"), return_probabilities=True)
    t1 = model.predict(image[:1], geometry=geom, modalities=("T1",), return_probabilities=True)
    assert np.array_equal(full.probabilities, named.probabilities)
    assert not np.allclose(full.probabilities, t1.probabilities)


@pytest.mark.parametrize("names, match", [
    ((), "names no modality"),
    (("T2",), r"unknown \['T2'\]"),
    (("T1", "T1"), "repeats"),
])
def test_predict_refuses_empty_unknown_or_repeated_modalities(trained, task, names, match):
    model = load_model(trained.model_path, device="cpu")
    image, geom = _subject(task)
    with pytest.raises(ValueError, match=match):
        model.predict(image[: max(len(names), 1)], geometry=geom, modalities=names)
