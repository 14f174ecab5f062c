"""Ignore voxels (nnU-Net's ignore label, target ``IGNORE_INDEX``): every loss leaves them out."""

from __future__ import annotations

import pytest
import torch

from ACELib.labels import IGNORE_INDEX
from ACELib.losses import build_loss, cross_entropy
from ACELib.losses.registry import LOSSES

C = 5


def _batch(seed=0, shape=(2, 7, 6, 5)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], C, *shape[1:], generator=g)
    target = torch.randint(0, C, shape, generator=g)
    target[1] = torch.where(target[1] == 4, 0, target[1])  # sample 1: a tissue dataset (no WMH)
    annotated = torch.ones(shape[0], C, dtype=torch.bool)
    annotated[1, 4] = False
    candidates = torch.eye(C, dtype=torch.bool).repeat(shape[0], 1, 1)
    candidates[1, 0, 4] = True  # background of the tissue dataset may be WMH
    candidates[1, 3, 4] = True  # WM widened to WMH
    ignored = torch.zeros(shape, dtype=torch.bool)
    ignored[:, 2:5, 1:4, :3] = True
    ignored[1, 0, 0, 0] = True
    return logits, target.masked_fill(ignored, IGNORE_INDEX), annotated, candidates, ignored


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_and_gradient_do_not_depend_on_predictions_at_ignore_voxels(name):
    logits, target, annotated, candidates, ignored = _batch()
    loss_fn = build_loss(name)
    values = []
    for seed in (1, 2):
        other = torch.randn(logits.shape, generator=torch.Generator().manual_seed(seed)) * 20
        z = torch.where(ignored.unsqueeze(1), other, logits).requires_grad_(True)
        loss = loss_fn(z, target, annotated, candidates)
        loss.backward()
        assert torch.isfinite(loss)
        assert float(z.grad.abs().amax(dim=1)[ignored].max()) == 0.0
        assert float(z.grad.abs().sum()) > 0.0
        values.append(float(loss.detach()))
    assert values[0] == pytest.approx(values[1], rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignore_voxels_equal_leaving_them_out(name):
    """A batch whose second half is ignored gives the loss of its first half alone."""
    logits, target, annotated, candidates, _ = _batch(shape=(2, 8, 4, 4))
    target[:, 4:] = IGNORE_INDEX
    loss_fn = build_loss(name)
    full = loss_fn(logits, target, annotated, candidates)
    half = loss_fn(logits[:, :, :4].contiguous(), target[:, :4].contiguous(), annotated, candidates)
    assert float(full) == pytest.approx(float(half), rel=1e-5, abs=1e-6)


def test_cross_entropy_matches_torch_ignore_index():
    logits, target, *_ = _batch()
    ours = cross_entropy(logits, target)
    ref = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    assert float(ours) == pytest.approx(float(ref), rel=1e-6)


def test_every_voxel_ignored_gives_zero():
    logits, target, annotated, candidates, _ = _batch()
    target.fill_(IGNORE_INDEX)
    for name in ("ce", "ace", "marginal", "ace-patch"):
        assert float(build_loss(name)(logits, target, annotated, candidates)) == 0.0


@pytest.mark.parametrize("bad", [C, 254, 256])
def test_values_outside_the_classes_other_than_ignore_are_refused(bad):
    logits, target, *_ = _batch()
    target[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"only 255 may lie outside: ignore voxels"):
        cross_entropy(logits, target)
