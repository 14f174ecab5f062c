"""Marginal cross entropy: float64 reference, ACE as its special case, widened labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from losses.loss_reference import marginal_ref, random_batch

from ACELib.labels import Task, annotated_mask, candidate_table
from ACELib.losses import ace_candidates, adaptive_cross_entropy, cross_entropy, marginal_cross_entropy
from ACELib.losses.marginal import masked_logsumexp

SHAPES = [(2, 5, 3, 4, 5), (3, 4, 7), (1, 3, 2, 3, 2, 3)]


def _random_candidates(batch: int, num_classes: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    candidates = torch.rand(batch, num_classes, num_classes, generator=gen) < 0.4
    candidates |= torch.eye(num_classes, dtype=torch.bool)
    return candidates


def _task_batch(task: Task, dataset_names: list[str], spatial: tuple[int, ...], seed: int):
    """Targets, annotated masks and candidate tables of samples drawn from the named datasets."""
    gen = torch.Generator().manual_seed(seed)
    datasets = {ds.name: ds for ds in task.datasets}
    annotated = torch.stack([torch.from_numpy(annotated_mask(task, datasets[n])) for n in dataset_names])
    candidates = torch.stack([torch.from_numpy(candidate_table(task, datasets[n])) for n in dataset_names])
    target = torch.empty((len(dataset_names), *spatial), dtype=torch.long)
    for b in range(len(dataset_names)):
        labels = annotated[b].nonzero().squeeze(1)
        target[b] = labels[torch.randint(0, len(labels), spatial, generator=gen)]
    logits = 3 * torch.randn((len(dataset_names), task.num_classes, *spatial), generator=gen)
    return logits, target, annotated, candidates


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_marginal_matches_float64_reference(shape, reduction, weighted):
    logits, target, _ = random_batch(shape, seed=sum(shape) + 1, all_annotated=True)
    candidates = _random_candidates(shape[0], shape[1], seed=len(shape))
    weight = torch.linspace(0.5, 1.5, shape[1]) if weighted else None
    got = marginal_cross_entropy(logits, target, candidates, reduction, weight)
    want = marginal_ref(logits, target, candidates, reduction, weight)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_marginal_with_singleton_sets_is_cross_entropy(shape):
    logits, target, _ = random_batch(shape, seed=5, all_annotated=True)
    candidates = torch.eye(shape[1], dtype=torch.bool).expand(shape[0], -1, -1).clone()
    torch.testing.assert_close(
        marginal_cross_entropy(logits, target, candidates, "none"), cross_entropy(logits, target, "none")
    )


@pytest.mark.parametrize(
    "dataset_names", [["anatomy", "lesion"], ["lesion", "lesion", "anatomy"], ["anatomy"], ["lesion"]]
)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ace_dataset_mode_is_marginal_ce_with_candidate_table_rows(wmh_task, dataset_names, reduction):
    logits, target, annotated, candidates = _task_batch(wmh_task, dataset_names, (3, 4, 5), seed=2)
    torch.testing.assert_close(ace_candidates(annotated, "dataset"), candidates, rtol=0, atol=0)
    weight = torch.tensor([0.5, 1.0, 1.0, 1.0, 3.0])
    ace = adaptive_cross_entropy(logits, target, annotated, "dataset", reduction, weight)
    marginal = marginal_cross_entropy(logits, target, candidates, reduction, weight)
    torch.testing.assert_close(ace, marginal, rtol=0, atol=0)


@pytest.mark.parametrize("dataset_names", [["anatomy", "lesion"], ["anatomy", "anatomy"]])
def test_widening_changes_the_loss_only_at_widened_voxels(wmh_task_dict, dataset_names):
    plain_task = Task.from_dict(wmh_task_dict)
    wmh_task_dict["datasets"][0]["widen"] = {"WM": ["WMH"]}
    widened_task = Task.from_dict(wmh_task_dict)
    logits, target, _, plain = _task_batch(plain_task, dataset_names, (5, 4, 3), seed=4)
    *_, widened = _task_batch(widened_task, dataset_names, (5, 4, 3), seed=4)
    wm, wmh = widened_task.label_index("WM"), widened_task.label_index("WMH")
    assert widened[:, wm, wmh].tolist() == [name == "anatomy" for name in dataset_names]
    loss_plain = marginal_cross_entropy(logits, target, plain, "none")
    loss_widened = marginal_cross_entropy(logits, target, widened, "none")
    is_anatomy = torch.tensor([name == "anatomy" for name in dataset_names]).view(-1, 1, 1, 1)
    at_widened = is_anatomy & (target == wm)
    assert bool(at_widened.any())
    torch.testing.assert_close(loss_widened[~at_widened], loss_plain[~at_widened], rtol=0, atol=0)
    # At widened voxels the allowed set grows by WMH: the loss drops by log(1 + p_WMH / p_WM).
    p = torch.softmax(logits.double(), dim=1)
    drop = torch.log1p(p[:, wmh] / p[:, wm])[at_widened]
    torch.testing.assert_close((loss_plain - loss_widened)[at_widened].double(), drop, rtol=1e-4, atol=1e-5)
    assert bool((loss_widened[at_widened] < loss_plain[at_widened]).all())



@pytest.mark.parametrize("scale", [1.0, 50.0, 1e4])
def test_masked_logsumexp_matches_float64_and_ignores_excluded_entries(scale):
    gen = torch.Generator().manual_seed(int(scale))
    x = (scale * torch.randn(4, 6, 9, generator=gen)).requires_grad_(True)
    mask = torch.rand(4, 6, 9, generator=gen) < 0.5
    mask[:, 2] = True  # every slice keeps at least one entry
    got = masked_logsumexp(x, mask, dim=1)
    want = torch.logsumexp(x.detach().double().masked_fill(~mask, float("-inf")), dim=1)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-5)
    got.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    assert bool((x.grad[~mask] == 0).all())
    want_grad = torch.softmax(x.detach().double().masked_fill(~mask, float("-inf")), dim=1)
    torch.testing.assert_close(x.grad.double(), want_grad, rtol=1e-5, atol=1e-6)
