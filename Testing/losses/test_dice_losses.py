"""Soft Dice and marginal Dice: float64 reference, perfect predictions, marginalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from losses.loss_reference import dice_ref, random_batch

from ACELib.losses import marginal_dice_loss, soft_dice_loss
from ACELib.losses.dice import _dice_per_class

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


def _naive_dice_loss(logits, target, annotated=None, include_background=True, smooth=1e-5):
    """Float64 autograd reference: one-hot target, explicit merge of non-annotated labels."""
    prob = torch.softmax(logits, dim=1).flatten(2)
    batch, num_classes = prob.shape[:2]
    onehot = torch.nn.functional.one_hot(target.reshape(batch, -1), num_classes).transpose(1, 2).double()
    keep = torch.ones(batch, num_classes, dtype=torch.bool) if annotated is None else annotated.clone()
    keep[:, 0] = True
    away = (prob * (~keep).unsqueeze(2)).sum(dim=1)
    merged = prob * keep.unsqueeze(2)
    merged = torch.cat([merged[:, :1] + away.unsqueeze(1), merged[:, 1:]], dim=1)
    dice = (2 * (merged * onehot).sum(2) + smooth) / (merged.sum(2) + onehot.sum(2) + smooth)
    counted = keep.clone()
    if not include_background:
        counted[:, 0] = False
    return ((1 - dice) * counted).sum() / counted.sum().clamp_min(1)


@pytest.mark.parametrize("marginal", [False, True])
@pytest.mark.parametrize("include_background", [True, False])
def test_dice_gradients_match_naive_float64_autograd(marginal, include_background):
    logits, target, annotated = random_batch((3, 5, 3, 4, 5), seed=17)
    logits64 = logits.double().requires_grad_(True)
    _naive_dice_loss(logits64, target, annotated if marginal else None, include_background).backward()
    logits32 = logits.clone().requires_grad_(True)
    if marginal:
        loss = marginal_dice_loss(logits32, target, annotated, include_background=include_background)
    else:
        loss = soft_dice_loss(logits32, target, include_background=include_background)
    loss.backward()
    torch.testing.assert_close(logits32.grad.double(), logits64.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("smooth", [1e-5, 1.0])
def test_dice_per_class_gradcheck_in_float64(smooth):
    # The public losses compute in float32; the per-class Dice function itself works in float64.
    gen = torch.Generator().manual_seed(19)
    logits = torch.randn(2, 4, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (2, 7), generator=gen)
    target[1] = 0  # sample 1: classes absent from the target
    assert torch.autograd.gradcheck(
        lambda z: _dice_per_class(torch.softmax(z, dim=1), target, smooth), (logits,), eps=1e-6, atol=1e-8
    )
