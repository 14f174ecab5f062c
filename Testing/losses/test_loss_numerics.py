"""Numerics: extreme logits, bf16 autocast, float32 results and finite gradients for every loss."""

from __future__ import annotations

import math

import pytest
import torch
from losses.loss_reference import random_batch

from ACELib.losses import LOSSES, ace_candidates, adaptive_cross_entropy, build_loss

SHAPE = (2, 5, 3, 4, 5)


def _inputs(scale: float, seed: int = 0):
    logits, target, annotated = random_batch(SHAPE, seed=seed)
    if scale > 0:
        logits = scale * torch.sign(logits)  # every logit is +scale or -scale
    candidates = ace_candidates(annotated, "dataset")
    candidates[:, 3, 4] = True  # a widened label, for "marginal"
    return logits, target, annotated, candidates


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("scale", [1e4, 1e2])
def test_extreme_logits_give_finite_loss_and_gradients(name, scale):
    logits, target, annotated, candidates = _inputs(scale)
    logits.requires_grad_(True)
    loss = build_loss(name)(logits, target, annotated, candidates)
    loss.backward()
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert math.isfinite(loss.item())
    assert bool(torch.isfinite(logits.grad).all())


@pytest.mark.parametrize("label_set", ["dataset", "patch"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ace_is_exact_in_log_space_when_the_allowed_set_is_improbable(label_set, reduction):
    # Lesion dataset, lesion in the patch; the model puts all mass on the lesion at background voxels.
    target = torch.tensor([[0, 0, 4]])
    annotated = torch.tensor([[True, False, False, False, True]])
    logits = torch.full((1, 5, 3), -1e4)
    logits[:, 4] = 1e4
    logits.requires_grad_(True)
    loss = adaptive_cross_entropy(logits, target, annotated, label_set, reduction)
    loss.sum().backward()
    # -log sum_S p = logsumexp(z) - logsumexp(z_S) = 1e4 - (-1e4 + log 4); a naive log(sum p) is inf.
    per_voxel = torch.tensor([[2e4 - math.log(4), 2e4 - math.log(4), 0.0]])
    want = {"mean": per_voxel.mean(), "sum": per_voxel.sum(), "none": per_voxel}[reduction]
    torch.testing.assert_close(loss.detach(), want, rtol=1e-6, atol=1e-3)
    assert bool(torch.isfinite(logits.grad).all())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bf16_autocast_computes_the_loss_in_float32(name):
    logits32, target, annotated, candidates = _inputs(0.0, seed=1)
    conv = torch.nn.Conv3d(5, 5, kernel_size=1)
    loss_fn = build_loss(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(logits32)
        assert logits.dtype == torch.bfloat16
        loss = loss_fn(logits, target, annotated, candidates)
    loss.backward()
    assert loss.dtype == torch.float32
    assert math.isfinite(loss.item())
    assert all(bool(torch.isfinite(p.grad).all()) for p in conv.parameters())
    # Same value as the float32 loss of the same bf16 logits outside autocast.
    torch.testing.assert_close(loss.detach(), loss_fn(logits.detach().float(), target, annotated, candidates))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bf16_autocast_with_extreme_logits_stays_finite(name):
    logits, target, annotated, candidates = _inputs(1e4, seed=2)
    logits = logits.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = build_loss(name)(logits, target, annotated, candidates)
    loss.backward()
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    assert logits.grad.dtype == torch.bfloat16
    assert bool(torch.isfinite(logits.grad).all())
