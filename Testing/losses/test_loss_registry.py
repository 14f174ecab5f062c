"""The loss registry: every name builds a module computing the sum of its documented terms."""

from __future__ import annotations

import pytest
import torch
from losses.loss_reference import random_batch

from ACELib.losses import (
    LOSSES,
    ace_candidates,
    adaptive_cross_entropy,
    build_loss,
    cross_entropy,
    marginal_cross_entropy,
    marginal_dice_loss,
    soft_dice_loss,
)

WEIGHT = torch.tensor([0.5, 1.0, 2.0, 1.0, 3.0])

# name -> the functional terms it must add up (weight applies to cross-entropy terms only).
EXPECTED = {
    "ce": lambda z, t, a, c, w: cross_entropy(z, t, weight=w),
    "dice": lambda z, t, a, c, w: soft_dice_loss(z, t),
    "ace": lambda z, t, a, c, w: adaptive_cross_entropy(z, t, a, "dataset", weight=w),
    "ace-patch": lambda z, t, a, c, w: adaptive_cross_entropy(z, t, a, "patch", weight=w),
    "marginal": lambda z, t, a, c, w: marginal_cross_entropy(z, t, c, weight=w),
    "ace+dice": lambda z, t, a, c, w: adaptive_cross_entropy(z, t, a, weight=w) + marginal_dice_loss(z, t, a),
    "marginal+dice": lambda z, t, a, c, w: marginal_cross_entropy(z, t, c, weight=w) + marginal_dice_loss(z, t, a),
    "ce+dice": lambda z, t, a, c, w: cross_entropy(z, t, weight=w) + soft_dice_loss(z, t),
}


def _inputs():
    logits, target, annotated = random_batch((3, 5, 3, 4, 5), seed=21)
    candidates = ace_candidates(annotated, "dataset")
    candidates[:, 3, 4] = True  # widened WM -> {WM, WMH}
    return logits, target, annotated, candidates


def test_registry_lists_every_built_loss():
    assert set(LOSSES) == set(EXPECTED)
    assert all(isinstance(text, str) and text and "\n" not in text for text in LOSSES.values())


@pytest.mark.parametrize(
    "name, weighted",
    [(name, weighted) for name in sorted(EXPECTED) for weighted in (False, True) if not (weighted and name == "dice")],
)
def test_built_loss_is_the_sum_of_its_terms(name, weighted):
    weight = WEIGHT if weighted else None
    z, t, a, c = _inputs()
    module = build_loss(name, weight=None if weight is None else weight.tolist())
    assert isinstance(module, torch.nn.Module)
    got = module(z, t, a, c)
    assert got.ndim == 0 and got.dtype == torch.float32
    torch.testing.assert_close(got, EXPECTED[name](z, t, a, c, weight))


def test_ace_and_marginal_differ_only_through_widening():
    z, t, a, c = _inputs()
    plain = ace_candidates(a, "dataset")
    torch.testing.assert_close(build_loss("marginal")(z, t, a, plain), build_loss("ace")(z, t, a, c))
    assert float(build_loss("marginal")(z, t, a, c)) < float(build_loss("ace")(z, t, a, c))


def test_weight_is_a_buffer_that_follows_the_module():
    module = build_loss("ace", weight=WEIGHT)
    assert torch.equal(dict(module.named_buffers())["weight"], WEIGHT)
    assert module.to(torch.float64).weight.dtype == torch.float64
    assert "ace" in repr(module)


@pytest.mark.parametrize(
    "name, weight, match",
    [
        ("acee", None, r"loss name must be one of \['ace', 'ace\+dice', .*\], got 'acee'"),
        ("ACE", None, r"loss name must be one of .*got 'ACE'"),
        ("dice", [1.0] * 5, r"weight is not supported by loss 'dice'"),
        ("ace", [[1.0] * 5], r"weight must be a 1-D sequence of finite values >= 0, got \[\[1.0"),
        ("ce", [1.0, -2.0], r"weight must be a 1-D sequence of finite values >= 0, got \[1.0, -2.0\]"),
        ("ce+dice", [1.0, float("inf")], r"weight must be a 1-D sequence of finite values >= 0, got \[1.0, inf\]"),
    ],
)
def test_bad_names_and_weights_raise(name, weight, match):
    with pytest.raises(ValueError, match=match):
        build_loss(name, weight)


def test_weight_of_the_wrong_length_is_caught_at_forward():
    z, t, a, c = _inputs()
    with pytest.raises(ValueError, match=r"weight must have shape \(C,\) = \(5,\), got \(3,\)"):
        build_loss("ace", weight=[1.0, 1.0, 1.0])(z, t, a, c)
