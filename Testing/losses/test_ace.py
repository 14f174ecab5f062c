"""Adaptive cross entropy: against a float64 reference, its special cases and the two label sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from losses.loss_reference import ace_ref, ce_ref, random_batch, softmax64

from ACELib.losses import adaptive_cross_entropy, cross_entropy

SHAPES = [(2, 5, 3, 4, 5), (3, 4, 7), (3, 3, 2, 3, 2, 3)]
BG, CSF, GM, WM, WMH = range(5)


def _weight(num_classes: int) -> torch.Tensor:
    return torch.linspace(0.3, 2.0, num_classes)


def _lesion_tissue_annotated(batch: int, lesion_rows=(0,)) -> torch.Tensor:
    """(B, 5) annotated masks: lesion rows annotate {bg, WMH}, the others {bg, CSF, GM, WM}."""
    annotated = torch.zeros(batch, 5, dtype=torch.bool)
    for b in range(batch):
        annotated[b, [BG, WMH] if b in lesion_rows else [BG, CSF, GM, WM]] = True
    return annotated


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("label_set", ["dataset", "patch"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ace_matches_float64_reference(shape, label_set, reduction, weighted):
    logits, target, annotated = random_batch(shape, seed=sum(shape))
    weight = _weight(shape[1]) if weighted else None
    got = adaptive_cross_entropy(logits, target, annotated, label_set, reduction, weight)
    want = ace_ref(logits, target, annotated, label_set, reduction, weight)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ace_matches_reference_at_larger_logits(reduction, weighted):
    logits, target, annotated = random_batch((3, 5, 4, 3, 5), seed=7, scale=25.0)
    weight = _weight(5) if weighted else None
    got = adaptive_cross_entropy(logits, target, annotated, "dataset", reduction, weight)
    want = ace_ref(logits, target, annotated, "dataset", reduction, weight)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("label_set", ["dataset", "patch"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ace_equals_ce_when_every_label_is_annotated(shape, label_set, weighted):
    logits, target, annotated = random_batch(shape, seed=3, all_annotated=True)
    weight = _weight(shape[1]) if weighted else None
    ace = adaptive_cross_entropy(logits, target, annotated, label_set, "none", weight)
    ce = cross_entropy(logits, target, "none", weight)
    torch.testing.assert_close(ace, ce, rtol=0, atol=0)
    np.testing.assert_allclose(ce.numpy(), ce_ref(logits, target, "none", weight), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(
    "probs_a, probs_b",
    [
        ([0.1, 0.2, 0.3, 0.3, 0.1], [0.6, 0.1, 0.1, 0.1, 0.1]),
        ([0.02, 0.02, 0.02, 0.04, 0.9], [0.07, 0.01, 0.01, 0.01, 0.9]),
        ([0.25, 0.25, 0.25, 0.24, 0.01], [0.001, 0.001, 0.001, 0.987, 0.01]),
    ],
)
@pytest.mark.parametrize("label_set", ["dataset", "patch"])
def test_ace_is_indifferent_to_the_split_among_non_lesion_labels(probs_a, probs_b, label_set):
    # A lesion-dataset sample with a lesion in the patch: voxel 0 is background, voxel 1 lesion.
    target = torch.tensor([[BG, WMH]])
    annotated = _lesion_tissue_annotated(1)
    losses = []
    for probs in (probs_a, probs_b):
        voxel = torch.log(torch.tensor(probs, dtype=torch.float64)).float()
        logits = torch.stack([voxel, voxel], dim=1).unsqueeze(0)  # (1, 5, 2)
        losses.append(adaptive_cross_entropy(logits, target, annotated, label_set, "none"))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    assert math.isclose(float(losses[0][0, 0]), -math.log(1.0 - probs_a[WMH]), rel_tol=1e-5)


@pytest.mark.parametrize("label_set", ["dataset", "patch"])
def test_ace_gradient_has_no_component_along_the_split_of_the_allowed_set(label_set):
    target = torch.tensor([[BG, WMH, BG]])
    annotated = _lesion_tissue_annotated(1)
    logits = torch.randn(1, 5, 3, dtype=torch.float32, requires_grad=True)
    adaptive_cross_entropy(logits, target, annotated, label_set, "sum").backward()
    p = torch.softmax(logits.detach().double(), dim=1)
    allowed = [BG, CSF, GM, WM]
    for v in (0, 2):
        mass = p[0, allowed, v].sum()
        # d/dz_j of -log sum_S p = p_j (1 - 1/P_S) on S: proportional to p, so moving probability
        # within S (a direction orthogonal to it at fixed P_S) changes nothing.
        ratio = logits.grad[0, allowed, v].double() / p[0, allowed, v]
        torch.testing.assert_close(ratio, torch.full_like(ratio, float(1 - 1 / mass)), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(logits.grad[0, WMH, v].double(), p[0, WMH, v], rtol=1e-4, atol=1e-6)


def test_patch_and_dataset_modes_agree_when_the_patch_holds_every_annotated_label():
    # Sample 0: lesion dataset, lesion present. Sample 1: tissue dataset, every tissue present.
    target = torch.tensor([[BG, WMH, BG, BG, WMH, BG, BG], [BG, CSF, GM, WM, WM, GM, BG]])
    annotated = _lesion_tissue_annotated(2)
    logits = torch.randn(2, 5, 7)
    patch = adaptive_cross_entropy(logits, target, annotated, "patch", "none")
    dataset = adaptive_cross_entropy(logits, target, annotated, "dataset", "none")
    torch.testing.assert_close(patch, dataset, rtol=0, atol=0)


@pytest.mark.parametrize(
    "target_row, annotated_labels",
    [
        ([BG, BG, BG, BG, BG, BG, BG], [BG, WMH]),  # lesion-free patch of the lesion dataset
        ([BG, GM, WM, GM, BG, WM, BG], [BG, CSF, GM, WM]),  # tissue patch without CSF
        ([BG, CSF, BG, BG, CSF, BG, CSF], [BG, CSF, GM, WM]),  # tissue patch with CSF only
    ],
)
def test_patch_mode_differs_exactly_at_background_voxels_of_patches_missing_labels(target_row, annotated_labels):
    target = torch.tensor([target_row])
    annotated = torch.zeros(1, 5, dtype=torch.bool)
    annotated[0, annotated_labels] = True
    logits = torch.randn(1, 5, 7)
    patch = adaptive_cross_entropy(logits, target, annotated, "patch", "none")
    dataset = adaptive_cross_entropy(logits, target, annotated, "dataset", "none")
    background = target == BG
    torch.testing.assert_close(patch[~background], dataset[~background], rtol=0, atol=0)
    # Patch mode allows a superset at background (absent annotated labels join S): lower loss.
    assert bool((patch[background] < dataset[background]).all())


def test_patch_mode_never_penalises_lesions_in_a_lesion_free_patch():
    target = torch.zeros(1, 4, 3, dtype=torch.long)
    annotated = _lesion_tissue_annotated(1)
    logits = torch.zeros(1, 5, 4, 3)
    logits[:, WMH] = 8.0  # the model predicts lesion everywhere
    patch = adaptive_cross_entropy(logits, target, annotated, "patch")
    dataset = adaptive_cross_entropy(logits, target, annotated, "dataset")
    p = softmax64(logits)[0, :, 0, 0]
    assert abs(float(patch)) < 1e-6
    assert math.isclose(float(dataset), -math.log(1 - p[WMH]), rel_tol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ace_weighted_mean_divides_by_the_sum_of_voxel_weights(reduction):
    logits, target, annotated = random_batch((2, 5, 3, 4, 5), seed=11)
    weight = _weight(5)
    voxel = adaptive_cross_entropy(logits, target, annotated, reduction="none")
    got = adaptive_cross_entropy(logits, target, annotated, reduction=reduction, weight=weight)
    w = weight[target]
    want = {"mean": (voxel * w).sum() / w.sum(), "sum": (voxel * w).sum(), "none": voxel * w}[reduction]
    torch.testing.assert_close(got, want)


def test_ace_mean_is_zero_when_every_voxel_weight_is_zero():
    logits, target, annotated = random_batch((2, 5, 3, 4, 5), seed=12)
    weight = torch.zeros(5)
    logits.requires_grad_(True)
    loss = adaptive_cross_entropy(logits, target, annotated, weight=weight)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert bool(torch.isfinite(logits.grad).all())
