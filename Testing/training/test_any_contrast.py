"""Any-contrast training: one input, every patch one of its case's images; the model takes one image of any name."""

import numpy as np
import pytest
import torch
from factory import make_tiny_task, stop_and_resume

from ACELib.data.augment import AugmentationConfig
from ACELib.data.loading import load_datasets
from ACELib.data.preprocessing import Preprocessing
from ACELib.data.sampling import BalancedSampler, extract_patch
from ACELib.inference import load_model, read_model_file
from ACELib.inference.predict import CaseInput, predict_case
from ACELib.io.image import read_image
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train

CFG = TrainConfig(loss="ace", iterations=4, batch_size=3, patch_size=8, base_channels=2, depth=2,
                  validation_interval=2, checkpoint_interval=2, device="cpu", any_contrast=True)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_tiny_task(tmp_path_factory.mktemp("ac"), n_anatomy=2, n_lesion=3, n_test=0,
                                    shape=(12, 12, 12), anatomy_modalities=("T1",)))


@pytest.fixture(scope="module")
def datasets(task):
    return load_datasets(task, Preprocessing(), lambda ds: ds.modalities)


@pytest.fixture(scope="module")
def trained(task, tmp_path_factory):
    return train(task, tmp_path_factory.mktemp("run") / "run", CFG)


def test_each_patch_is_one_of_its_cases_images_and_every_one_is_drawn(datasets):
    sampler = BalancedSampler(datasets, 8, 4, seed=1, one_channel=True)
    seen = {0: set(), 1: set()}
    for _ in range(40):
        state = sampler.get_state()
        batch = sampler.sample()
        assert batch.image.shape == (4, 1, 8, 8, 8)
        after = sampler.get_state()
        sampler.set_state(state)  # replay the batch's draws: case and centre, then the channel
        for b in range(4):
            k, case, center = sampler.draw()
            j = int(sampler.rng.integers(case.image.shape[0]))
            full, target = extract_patch(case, center, (8, 8, 8))
            assert np.array_equal(batch.image[b, 0].numpy(), full[j])
            assert np.array_equal(batch.target[b].numpy(), target)
            seen[k].add(j)
        assert sampler.get_state() == after
    assert seen == {0: {0}, 1: {0, 1}}  # the anatomy dataset's T1; both of the lesion dataset's images


def test_skip_lands_where_sampling_would_with_augmentation(datasets):
    aug = AugmentationConfig()
    a = BalancedSampler(datasets, 8, 3, seed=5, augmentation=aug, one_channel=True)
    b = BalancedSampler(datasets, 8, 3, seed=5, augmentation=aug, one_channel=True)
    for _ in range(3):
        a.sample()
    b.skip(3)
    x, y = a.sample(), b.sample()
    assert torch.equal(x.image, y.image) and torch.equal(x.target, y.target)


def test_one_channel_and_a_layout_exclude_each_other(datasets):
    with pytest.raises(ValueError, match="exclude each other"):
        BalancedSampler(datasets, 8, 3, layout=("T1", "FLAIR"), one_channel=True)


@pytest.mark.parametrize("kw", [{"hetero_modal": True}, {"multi_unet": True}])
def test_any_contrast_excludes_the_several_input_networks(kw):
    with pytest.raises(ValueError, match="any_contrast"):
        CFG.with_changes(**kw)


def test_the_model_has_one_input_and_both_datasets_are_validated(trained):
    meta, nets = read_model_file(trained.model_path)
    assert meta.modalities == ("any",) and meta.modality_subsets == "all"
    assert meta.training["any_contrast"] is True
    assert next(nets[0].parameters()).shape[1] == 1
    log = (trained.run_dir / "log.csv").read_text()
    assert "val:anatomy/CSF" in log and "val:lesion/WMH" in log


def test_stop_and_resume_is_bit_identical(task, tmp_path):
    full = train(task, tmp_path / "full", CFG)
    a = read_model_file(full.last_model_path)[1][0].state_dict()
    b = stop_and_resume(task, tmp_path / "part", CFG)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _lesion_files(task):
    folder = task.dataset_path(task.dataset("lesion")) / "imagesTr"
    return sorted(folder.glob("lesion_000_*.nii.gz"))  # _0000 (T1), _0001 (FLAIR)


def test_predict_takes_one_image_of_any_name(trained, task, tmp_path):
    model = load_model(trained.model_path, device="cpu")
    t1, flair = _lesion_files(task)
    a = predict_case(model, CaseInput("c", (flair,), ("FLAIR",)), tmp_path / "a.nii.gz")
    b = predict_case(model, CaseInput("c", (flair,), ("any",)), tmp_path / "b.nii.gz")
    labels_a, geom = read_image(a)
    assert np.array_equal(labels_a, read_image(b)[0])
    image, _ = read_image(flair)
    assert np.array_equal(labels_a, model.predict(image[None], geometry=geom).labels)


def test_predict_refuses_several_images_naming_them(trained, task, tmp_path):
    model = load_model(trained.model_path, device="cpu")
    case = CaseInput("two", tuple(_lesion_files(task)), ("T1", "FLAIR"))
    with pytest.raises(ValueError, match=r"'two'.*one image of any contrast.*2 \(\['T1', 'FLAIR'\]\)"):
        predict_case(model, case, tmp_path / "x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists()


def test_ace_predict_accepts_a_named_single_image(trained, task, tmp_path, capsys):
    from ACELib.cli.main import main

    _, flair = _lesion_files(task)
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "--model", str(trained.model_path), "--images", str(flair), "--modalities", "FLAIR",
                 "--out", str(out), "--device", "cpu"]) == 0
    assert out.exists()


def test_contrast_views_are_the_teacher_image_of_the_same_patch(datasets):
    sampler = BalancedSampler(datasets, 8, 6, seed=2, one_channel=True, contrast_views=True)
    views = 0
    for _ in range(10):
        state = sampler.get_state()
        batch = sampler.sample()
        after = sampler.get_state()
        sampler.set_state(state)
        for b in range(6):
            k, case, center = sampler.draw()
            j = int(sampler.rng.integers(case.image.shape[0]))
            full, _ = extract_patch(case, center, (8, 8, 8))
            assert np.array_equal(batch.image[b, 0].numpy(), full[j])
            has = batch.view_sample is not None and b in batch.view_sample.tolist()
            assert has == (k == 1 and j == 1)  # a lesion patch showing FLAIR; T1 (channel 0) is the teacher
            if has:
                v = batch.view_sample.tolist().index(b)
                assert np.array_equal(batch.view[v, 0].numpy(), full[0])
                views += 1
        assert sampler.get_state() == after  # views draw nothing: the stream is the one without them
    assert views > 0


def test_contrast_views_need_one_image_patches(datasets):
    with pytest.raises(ValueError, match="contrast_views needs one_channel"):
        BalancedSampler(datasets, 8, 3, contrast_views=True)
    with pytest.raises(ValueError, match="needs any_contrast"):
        TrainConfig(contrast_distillation=0.5)


def test_contrast_distillation_teaches_only_what_the_dataset_does_not_annotate():
    from ACELib.training.distill import contrast_distillation_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 3, 3, generator=g, requires_grad=True)
    teacher = torch.randn(2, 4, 3, 3, 3, generator=g)
    annotated = torch.tensor([[True, False, False, True], [True, False, True, True]])
    loss = contrast_distillation_loss(logits, teacher, annotated)
    loss.backward()
    own = annotated.clone()
    own[:, 0] = False
    # the dataset's own labels get no gradient: their target is the output itself
    assert torch.allclose(logits.grad[own[:, :, None, None, None].expand_as(logits)], torch.tensor(0.0), atol=1e-7)
    assert logits.grad.abs().sum() > 0 and loss > 0
    # a student whose split of the rest already equals the teacher's is not pulled
    p, t = torch.softmax(logits.detach(), 1), torch.softmax(teacher, 1)
    rest = own.logical_not()[:, :, None, None, None]
    matched = torch.where(rest, t / (t * rest).sum(1, keepdim=True) * (p * rest).sum(1, keepdim=True), p)
    assert contrast_distillation_loss(matched.log(), teacher, annotated).abs() < 1e-5
    assert contrast_distillation_loss(logits[:0], teacher[:0], annotated[:0]) == 0


def test_training_with_contrast_distillation_records_it_and_resumes_exactly(task, tmp_path):
    cfg = CFG.with_changes(contrast_distillation=1.0)
    full = train(task, tmp_path / "full", cfg)
    meta, _ = read_model_file(full.model_path)
    assert meta.training["contrast_distillation"] == 1.0
    a = read_model_file(full.last_model_path)[1][0].state_dict()
    b = stop_and_resume(task, tmp_path / "part", cfg)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = read_model_file(train(task, tmp_path / "plain", CFG).last_model_path)[1][0].state_dict()
    assert not all(torch.equal(a[k], plain[k]) for k in a)  # the term changes the training


def test_the_model_file_reads_one_image_of_any_name_as_its_input(trained, task):
    model = load_model(trained.model_path, device="cpu")
    meta = model.metadata
    assert meta.any_contrast and meta.input_names(["T2"]) == ("any",) and meta.accepts(["FLAIR"])
    assert meta.check_modalities(["T2"]) == ()
    assert not meta.accepts(["T1", "FLAIR"])
    with pytest.raises(ValueError, match=r"one image of any contrast, the input has 2"):
        meta.check_modalities(["T1", "FLAIR"])
    _, flair = _lesion_files(task)
    image, geom = read_image(flair)
    named = model.predict(image[None], geometry=geom, modalities=("FLAIR",)).labels
    assert np.array_equal(named, model.predict(image[None], geometry=geom).labels)
