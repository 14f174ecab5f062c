"""Soft Dice and marginal Dice: float64 reference, perfect predictions, marginalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from losses.loss_reference import dice_ref, random_batch

from ACELib.losses import marginal_dice_loss, soft_dice_loss

SHAPES = [(2, 5, 3, 4, 5), (3, 4, 7), (1, 3, 2, 3, 2, 3)]


def _perfect_logits(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    onehot = torch.nn.functional.one_hot(target, num_classes).movedim(-1, 1).float()
    return 1e4 * (2 * onehot - 1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_soft_dice_matches_float64_reference(shape, include_background, smooth):
    logits, target, _ = random_batch(shape, seed=sum(shape) + 2, all_annotated=True)
    got = soft_dice_loss(logits, target, smooth, include_background)
    want = dice_ref(logits, target, smooth, include_background)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
def test_marginal_dice_matches_float64_reference(shape, include_background):
    logits, target, annotated = random_batch(shape, seed=sum(shape) + 3)
    got = marginal_dice_loss(logits, target, annotated, include_background=include_background)
    want = dice_ref(logits, target, 1e-5, include_background, annotated=annotated)
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("include_background", [True, False])
def test_perfect_logits_give_zero_dice_loss(shape, include_background):
    _, target, annotated = random_batch(shape, seed=9)
    logits = _perfect_logits(target, shape[1])
    assert float(soft_dice_loss(logits, target, include_background=include_background)) < 1e-6
    assert float(marginal_dice_loss(logits, target, annotated, include_background=include_background)) < 1e-6


def test_soft_dice_of_the_opposite_prediction_is_one():
    target = torch.tensor([[0, 0, 1, 1, 0]])
    logits = _perfect_logits(1 - target, 2)
    smooth = 1e-5
    # Both classes: intersection 0, |P| + |G| = 5 voxels, so Dice = smooth / (5 + smooth).
    want = 1.0 - smooth / (5 + smooth)
    assert float(soft_dice_loss(logits, target, smooth)) == pytest.approx(want, abs=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
def test_marginal_dice_equals_soft_dice_when_every_label_is_annotated(shape):
    logits, target, annotated = random_batch(shape, seed=13, all_annotated=True)
    torch.testing.assert_close(marginal_dice_loss(logits, target, annotated), soft_dice_loss(logits, target))


def test_marginal_dice_is_indifferent_to_the_split_among_merged_labels():
    # A lesion-dataset sample (annotates background and label 4): probability moved between
    # background and labels 1..3 leaves the loss unchanged.
    target = torch.tensor([[0, 0, 4, 4, 0, 0]])
    annotated = torch.tensor([[True, False, False, False, True]])
    probs_a = torch.tensor([0.5, 0.1, 0.1, 0.1, 0.2]).repeat(6, 1).T
    probs_b = torch.tensor([0.1, 0.6, 0.0001, 0.0999, 0.2]).repeat(6, 1).T
    losses = [marginal_dice_loss(torch.log(p).unsqueeze(0), target, annotated) for p in (probs_a, probs_b)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    assert float(soft_dice_loss(torch.log(probs_a).unsqueeze(0), target)) != pytest.approx(
        float(soft_dice_loss(torch.log(probs_b).unsqueeze(0), target)), rel=1e-3
    )


def test_marginal_dice_is_zero_when_no_class_is_counted():
    target = torch.zeros(2, 3, 4, dtype=torch.long)
    annotated = torch.tensor([[True, False, False], [True, False, False]])
    logits = torch.randn(2, 3, 3, 4)
    assert float(marginal_dice_loss(logits, target, annotated, include_background=False)) == 0.0
