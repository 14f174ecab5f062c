"""Pass distillation: the views a batch gets, the distillation term, the training option and one-pass inference."""

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch
from factory import make_tiny_task, stop_and_resume

from ACELib.cli import cmd_train
from ACELib.cli.main import main
from ACELib.data.contract import list_cases, read_dataset_info
from ACELib.inference import load_model, read_model_file
from ACELib.inference.label_sources import LabelSource, combine_passes
from ACELib.inference.metadata import parse_metadata
from ACELib.io.image import read_image
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train
from ACELib.training.distill import distillation_loss, pass_views, with_views

LAYOUT = ("T1", "T1c", "FLAIR")
SOURCES = (LabelSource(("CSF", "GM", "WM"), ("T1",)), LabelSource(("edema", "tumor"), LAYOUT))
CLASSES = ("background", "CSF", "GM", "WM", "edema", "tumor")
CLASS_OF = {n: i for i, n in enumerate(CLASSES)}.get


def _present(*rows):
    return torch.tensor([[m in row for m in LAYOUT] for row in rows])


def test_views_are_the_further_passes_of_each_sample():
    views = pass_views(_present(("T1", "T1c", "FLAIR"), ("T1",), ("T1c",), ("T1", "FLAIR")), LAYOUT, SOURCES)
    assert views.sample.tolist() == [0, 3]  # T1 alone and T1c alone need one pass: no view
    assert views.subsets == (("T1",), ("T1",))
    assert views.present.tolist() == [[True, False, False], [True, False, False]]
    assert views.given[3] == ("T1", "FLAIR")


def test_a_batch_without_further_passes_has_no_views():
    views = pass_views(_present(("T1",), ("FLAIR",)), LAYOUT, SOURCES)
    assert len(views) == 0 and views.present.shape == (0, 3)


@pytest.mark.parametrize("present, match", [
    (torch.ones(2, 2, dtype=torch.bool), r"present must be \(B, 3\)"),
    (torch.zeros(1, 3, dtype=torch.bool), "at least one modality"),
])
def test_bad_present_masks_are_refused(present, match):
    with pytest.raises(ValueError, match=match):
        pass_views(present, LAYOUT, SOURCES)


def test_views_join_the_batch_with_their_absent_channels_zeroed():
    image = torch.rand(2, 3, 4, 5, 6) + 1
    present = _present(("T1", "T1c", "FLAIR"), ("T1",))
    views = pass_views(present, LAYOUT, SOURCES)
    out, out_present = with_views(image, present, views)
    assert out.shape == (3, 3, 4, 5, 6) and torch.equal(out[:2], image)
    assert torch.equal(out[2, 0], image[0, 0]) and not out[2, 1:].any()
    assert out_present[2].tolist() == [True, False, False]


def test_the_term_is_zero_when_one_pass_already_gives_the_combination():
    logits = torch.randn(2, 6, 3, 4, 5)
    views = pass_views(_present(("T1", "T1c", "FLAIR"), ("T1",)), LAYOUT, SOURCES)
    assert distillation_loss(logits, logits[:1].clone(), views, SOURCES, CLASS_OF).item() == pytest.approx(0, abs=1e-6)


def test_the_term_is_the_kl_to_the_combined_passes_and_teaches_only_the_other_passes_labels():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 3, 4, 5, requires_grad=True)
    view_logits = torch.randn(1, 6, 3, 4, 5, requires_grad=True)
    views = pass_views(_present(("T1", "T1c", "FLAIR"), ("T1",)), LAYOUT, SOURCES)
    loss = distillation_loss(logits, view_logits, views, SOURCES, CLASS_OF)
    p = torch.softmax(logits[0].detach(), 0)
    q = combine_passes({("T1", "T1c", "FLAIR"): p, ("T1",): torch.softmax(view_logits[0].detach(), 0)},
                       SOURCES, ("T1", "T1c", "FLAIR"), CLASS_OF)
    expected = (q * (q.log() - p.log())).sum(0).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and loss.item() > 0
    loss.backward()
    assert view_logits.grad is None or not view_logits.grad.any()  # the views are the teacher
    assert not logits.grad[1].any()  # sample 1 (T1 alone) has no view
    lesion_grad = logits.grad[0, 4:].abs().max().item()
    assert lesion_grad < 1e-7 < logits.grad[0, 1:4].abs().max().item()  # only the tissue split is taught


def test_no_views_give_a_zero_term_with_a_gradient():
    logits = torch.randn(1, 6, 2, 2, 2, requires_grad=True)
    views = pass_views(_present(("T1",)), LAYOUT, SOURCES)
    loss = distillation_loss(logits, logits[:0], views, SOURCES, CLASS_OF)
    loss.backward()
    assert loss.item() == 0 and logits.grad is not None


def test_view_logits_of_the_wrong_shape_are_refused():
    views = pass_views(_present(("T1", "FLAIR")), LAYOUT, SOURCES)
    with pytest.raises(ValueError, match=r"view_logits must be \(1, 6, 2, 2, 2\)"):
        distillation_loss(torch.randn(1, 6, 2, 2, 2), torch.randn(2, 6, 2, 2, 2), views, SOURCES, CLASS_OF)


# ------------------------------------------------------------------ training and inference
CFG = TrainConfig(loss="ace+dice", iterations=4, batch_size=4, patch_size=8, base_channels=2, depth=2,
                  validation_interval=2, checkpoint_interval=2, device="cpu", hetero_modal=True,
                  modality_dropout=0.5, pass_distillation=1.0)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_tiny_task(tmp_path_factory.mktemp("pd"), n_anatomy=2, n_lesion=2, n_test=1,
                                    shape=(12, 12, 12), anatomy_modalities=("T1",)))


@pytest.fixture(scope="module")
def trained(task, tmp_path_factory):
    return train(task, tmp_path_factory.mktemp("run") / "run", CFG)


def test_a_distilled_model_says_it_runs_in_one_pass(trained):
    meta, _ = read_model_file(trained.model_path)
    assert meta.passes == "one" and meta.training["pass_distillation"] == 1.0
    assert meta.label_sources  # kept: they still name what each label was taught with
    assert meta.inference_passes(("T1", "FLAIR")) == [("T1", "FLAIR")]
    assert dataclasses.replace(meta, passes="sources").inference_passes(("T1", "FLAIR")) == [("T1", "FLAIR"), ("T1",)]
    plain = train(load_task(trained.run_dir / "task.json"), trained.run_dir.parent / "plain",
                  CFG.with_changes(pass_distillation=0.0, iterations=1))
    assert read_model_file(plain.model_path)[0].passes == "sources"


def test_distillation_changes_the_weights(task, trained, tmp_path):
    plain = train(task, tmp_path / "plain", CFG.with_changes(pass_distillation=0.0))
    a = read_model_file(trained.last_model_path)[1][0].state_dict()
    b = read_model_file(plain.last_model_path)[1][0].state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_stop_and_resume_is_bit_identical_with_distillation(task, trained, tmp_path):
    a = read_model_file(trained.last_model_path)[1][0].state_dict()
    b = stop_and_resume(task, tmp_path / "part", CFG)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _test_case(task):
    folder = task.dataset_path(task.dataset("test"))
    return list_cases(folder, read_dataset_info(folder))[0]


def _count_forwards(model):
    calls = {"n": 0}
    net = model.fast_networks()[0]
    hook = net.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    return calls, hook


def test_one_pass_inference_runs_the_network_once_per_window(trained, task):
    model = load_model(trained.model_path, device="cpu")
    image, _, geom = _test_case(task).read()
    calls, hook = _count_forwards(model)
    one = model.predict(image, geometry=geom, return_probabilities=True).probabilities
    n_one = calls["n"]
    model.metadata = dataclasses.replace(model.metadata, passes="sources")
    calls["n"] = 0
    two = model.predict(image, geometry=geom, return_probabilities=True).probabilities
    hook.remove()
    assert calls["n"] == 2 * n_one  # label sources: a pass over T1 + FLAIR and one over T1
    assert not np.allclose(one, two)


def test_t1_alone_is_one_pass_either_way(trained, task):
    model = load_model(trained.model_path, device="cpu")
    image, _, geom = _test_case(task).read()
    one = model.predict(image[:1], geometry=geom, modalities=("T1",), return_probabilities=True).probabilities
    model.metadata = dataclasses.replace(model.metadata, passes="sources")
    two = model.predict(image[:1], geometry=geom, modalities=("T1",), return_probabilities=True).probabilities
    assert np.array_equal(one, two)


def test_ace_predict_passes_overrides_the_model_file(trained, task, tmp_path):
    case = _test_case(task)
    outs = {}
    for passes in ("one", "sources"):
        out = tmp_path / f"{passes}.nii.gz"
        assert main(["predict", "--model", str(trained.model_path), "--images", *map(str, case.image_paths),
                     "--out", str(out), "--device", "cpu", "--passes", passes, "--probabilities"]) == 0
        outs[passes] = out
    model = load_model(trained.model_path, device="cpu")
    image, _, geom = case.read()
    labels, _ = read_image(outs["one"])
    assert np.array_equal(labels, model.predict(image, geometry=geom).labels)  # the file's default is one pass


def test_the_file_refuses_an_unknown_pass_rule(trained):
    meta, _ = read_model_file(trained.model_path)
    doc = json.loads(meta.to_json())
    assert doc["passes"] == "one"
    doc["passes"] = "two"
    with pytest.raises(ValueError, match=r"'passes' must be one of \['sources', 'one'\], got 'two'"):
        parse_metadata(json.dumps(doc))
    del doc["passes"]
    assert parse_metadata(json.dumps(doc)).get("passes", "sources") == "sources"  # files before the option


@pytest.mark.parametrize("kw, match", [
    ({"pass_distillation": -0.1}, "pass_distillation must be a finite number >= 0"),
    ({"pass_distillation": float("nan")}, "pass_distillation must be a finite number >= 0"),
    ({"hetero_modal": False}, r"pass_distillation \(1\) needs hetero_modal"),
])
def test_bad_distillation_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        CFG.with_changes(**kw)


def test_the_option_reaches_the_settings_and_older_settings_read_as_off():
    p = argparse.ArgumentParser()
    cmd_train.add_arguments(p)
    args = p.parse_args(["--task", "t.json", "--out", "r", "--hetero-modal", "--pass-distillation", "0.5"])
    assert cmd_train.config_from_args(args).pass_distillation == 0.5
    d = CFG.to_dict()
    del d["pass_distillation"]
    assert TrainConfig.from_dict(d).pass_distillation == 0.0
    assert CFG.resume_conflicts(TrainConfig.from_dict(d)) == ["pass_distillation: run has 0.0, asked 1.0"]


def test_the_views_teach_but_the_training_loss_scores_only_the_batch(task, tmp_path, monkeypatch):
    import ACELib.training.trainer as trainer
    from ACELib.networks import HeteroUNet3D

    seen = {"loss": [], "net": []}
    build = trainer.build_loss

    def recording_loss(name):
        inner = build(name)

        class Recording(torch.nn.Module):
            def forward(self, logits, *rest):
                seen["loss"].append(logits.shape[0])
                return inner(logits, *rest)
        return Recording()

    forward = HeteroUNet3D.forward

    def recording_forward(self, x, present):
        if self.training:
            seen["net"].append(x.shape[0])
        return forward(self, x, present)

    monkeypatch.setattr(trainer, "build_loss", recording_loss)
    monkeypatch.setattr(HeteroUNet3D, "forward", recording_forward)
    train(task, tmp_path / "r", CFG.with_changes(iterations=3, validation_interval=10))
    assert seen["loss"] == [4, 4, 4]
    assert max(seen["net"]) > 4  # some batches carried views (lesion patches with FLAIR and T1)
