"""Hetero-modal sampling: datasets with different modalities in one layout, seeded modality dropout."""

import numpy as np
import pytest
import torch
from factory import make_tiny_task

from ACELib.data.augment import AugmentationConfig
from ACELib.data.loading import load_datasets
from ACELib.data.preprocessing import Preprocessing
from ACELib.data.sampling import BalancedSampler, SamplerStream
from ACELib.labels import load_task
from ACELib.training.hetero import accepted_subsets, dataset_channels, union_modalities

LAYOUT = ("T1", "FLAIR")


@pytest.fixture(scope="module")
def hetero(tmp_path_factory):
    task = load_task(make_tiny_task(tmp_path_factory.mktemp("h"), n_anatomy=2, n_lesion=2, n_test=0,
                                    shape=(12, 14, 13), anatomy_modalities=("T1",)))
    return task, load_datasets(task, Preprocessing(), lambda ds: dataset_channels(ds, union_modalities(task)))


def test_union_and_dataset_channels(hetero):
    task, datasets = hetero
    assert task.input_modalities == ("T1",) and union_modalities(task) == LAYOUT
    assert [d.modalities for d in datasets] == [("T1",), ("T1", "FLAIR")]
    assert [d.cases[0].image.shape[0] for d in datasets] == [1, 2]
    assert accepted_subsets(task, LAYOUT, 0.5) == "any"
    assert accepted_subsets(task, LAYOUT, 0.0) == (("T1",), ("T1", "FLAIR"))


def test_without_layout_different_channel_counts_are_refused(hetero):
    with pytest.raises(ValueError, match="need a layout"):
        BalancedSampler(hetero[1], patch_size=8)


def test_each_sample_has_exactly_its_datasets_modalities_without_dropout(hetero):
    _, datasets = hetero
    batch = BalancedSampler(datasets, 8, 16, seed=3, layout=LAYOUT).sample()
    assert batch.image.shape == (16, 2, 8, 8, 8) and batch.present.shape == (16, 2)
    for b in range(16):
        expected = [True, False] if batch.dataset[b] == 0 else [True, True]
        assert batch.present[b].tolist() == expected
        assert not batch.image[b, ~batch.present[b]].any()  # absent channels hold zeros


def test_dropout_keeps_at_least_one_present_modality_and_drops_some(hetero):
    _, datasets = hetero
    sampler = BalancedSampler(datasets, 8, 8, seed=0, layout=LAYOUT, modality_dropout=0.5)
    presents = torch.cat([sampler.sample().present for _ in range(30)])
    assert presents.any(dim=1).all()
    assert {tuple(p) for p in presents.tolist()} == {(True, False), (False, True), (True, True)}


def test_uniform_subsets_keep_everything_in_most_patches_and_draw_subsets_evenly(hetero):
    # lesion dataset (T1, FLAIR): with p = 0.5 a patch keeps both with chance 0.5 + 0.5 / 3, and
    # T1 alone or FLAIR alone with 0.5 / 3 each; the per-modality rule gives 0.25 + 0.25 / 2 alone;
    # the single rule keeps both with chance 0.5 and each alone with 0.25
    _, datasets = hetero
    counts = {}
    for rule in ("uniform", "independent", "single"):
        sampler = BalancedSampler(datasets[1:], 8, 50, seed=2, layout=LAYOUT, modality_dropout=0.5,
                                  modality_subsets=rule)
        presents = torch.cat([sampler.sample().present for _ in range(40)])  # 2000 patches
        counts[rule] = {k: sum(tuple(p) == k for p in presents.tolist()) / len(presents)
                        for k in ((True, True), (True, False), (False, True))}
    assert abs(counts["uniform"][(True, True)] - 2 / 3) < 0.04
    assert abs(counts["uniform"][(True, False)] - 1 / 6) < 0.03 and abs(counts["uniform"][(False, True)] - 1 / 6) < 0.03
    assert abs(counts["independent"][(True, True)] - 0.25) < 0.04
    assert abs(counts["single"][(True, True)] - 0.5) < 0.04
    assert abs(counts["single"][(True, False)] - 0.25) < 0.03 and abs(counts["single"][(False, True)] - 0.25) < 0.03
    with pytest.raises(ValueError, match="modality_subsets must be one of"):
        BalancedSampler(datasets, 8, 2, layout=LAYOUT, modality_dropout=0.5, modality_subsets="every")


def test_the_shared_rule_gives_lesion_patches_the_modalities_every_dataset_has(hetero):
    # anatomy (T1) and lesion (T1, FLAIR), p = 0.5: a lesion patch keeps both with chance
    # 0.5 + 0.25 / 3, T1 alone (the shared modality) with 0.25 + 0.25 / 3 and FLAIR alone with 0.25 / 3
    _, datasets = hetero
    sampler = BalancedSampler(datasets, 8, 50, seed=3, layout=LAYOUT, modality_dropout=0.5, modality_subsets="shared")
    batches = [sampler.sample() for _ in range(60)]
    presents = torch.cat([b.present[b.dataset == 1] for b in batches]).tolist()
    share = {k: sum(tuple(p) == k for p in presents) / len(presents) for k in ((True, True), (True, False), (False, True))}
    assert len(presents) > 1200
    assert abs(share[(True, True)] - 7 / 12) < 0.04 and abs(share[(True, False)] - 1 / 3) < 0.04
    assert abs(share[(False, True)] - 1 / 12) < 0.025
    anatomy = torch.cat([b.present[b.dataset == 0] for b in batches])
    assert anatomy[:, 0].all() and not anatomy[:, 1].any()  # T1 is all the anatomy dataset has
    lesion_only = BalancedSampler(datasets[1:], 8, 50, seed=3, layout=LAYOUT, modality_dropout=0.5,
                                  modality_subsets="shared")  # one dataset: nothing is shared by others
    uniform = BalancedSampler(datasets[1:], 8, 50, seed=3, layout=LAYOUT, modality_dropout=0.5)
    assert _same(lesion_only.sample(), uniform.sample())


def test_dropout_never_adds_a_modality_the_dataset_lacks(hetero):
    _, datasets = hetero
    sampler = BalancedSampler(datasets, 8, 8, seed=4, layout=LAYOUT, modality_dropout=0.9)
    for _ in range(10):
        batch = sampler.sample()
        assert not batch.present[batch.dataset == 0, 1].any()  # anatomy has no FLAIR


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(
        (a.image, a.target, a.dataset, a.present), (b.image, b.target, b.dataset, b.present)))


@pytest.mark.parametrize("augment", [False, True])
def test_dropout_is_seeded_and_skip_is_exact(hetero, augment):
    _, datasets = hetero
    aug = AugmentationConfig() if augment else None
    kw = {"layout": LAYOUT, "modality_dropout": 0.5, "augmentation": aug}
    a, b = BalancedSampler(datasets, 8, 4, seed=7, **kw), BalancedSampler(datasets, 8, 4, seed=7, **kw)
    batches = [a.sample() for _ in range(5)]
    assert _same(batches[0], b.sample())
    skipped = BalancedSampler(datasets, 8, 4, seed=7, **kw)
    skipped.skip(3)
    assert _same(batches[3], skipped.sample()) and _same(batches[4], skipped.sample())
    restored = BalancedSampler(datasets, 8, 4, seed=99, **kw)
    c = BalancedSampler(datasets, 8, 4, seed=7, **kw)
    c.sample()
    restored.set_state(c.get_state())
    assert _same(batches[1], restored.sample())
    other = BalancedSampler(datasets, 8, 4, seed=8, **kw).sample()
    assert not _same(batches[0], other)


def test_worker_streams_carry_the_layout(hetero):
    _, datasets = hetero
    stream = SamplerStream(datasets, 8, 4, seed=1, start_step=3, layout=LAYOUT, modality_dropout=0.5)
    sampler = stream.worker_sampler(0, 2)
    assert sampler.layout == LAYOUT and sampler.sample().present.shape == (4, 2)


@pytest.mark.parametrize("kw, match", [
    ({"layout": ("T1",)}, r"lacks modalities \['FLAIR'\]"),
    ({"layout": LAYOUT, "modality_dropout": 1.0}, r"modality_dropout must be in \[0, 1\)"),
])
def test_bad_layouts_are_refused(hetero, kw, match):
    with pytest.raises(ValueError, match=match):
        BalancedSampler(hetero[1], 8, **kw)


def test_np_arrays_stay_float32(hetero):
    batch = BalancedSampler(hetero[1], 8, 2, seed=0, layout=LAYOUT, modality_dropout=0.3).sample()
    assert batch.image.dtype == torch.float32 and batch.present.dtype == torch.bool
    assert np.isfinite(batch.image.numpy()).all()
