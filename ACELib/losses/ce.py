"""Naive categorical cross entropy on the joint label set (the paper's baseline)."""

from __future__ import annotations

import torch

from ACELib.losses._common import (
    check_logits_target,
    check_reduction,
    check_weight,
    float32_region,
    reduce_voxel_loss,
    split_ignore,
)
from ACELib.losses._set_nll import set_nll


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Categorical cross entropy ``-log softmax(z)_t``, every voxel's target taken at face value.

    Computed by the kernel shared with ACE and marginal cross entropy (:mod:`ACELib.losses._set_nll`),
    so ACE with every label annotated equals it bit for bit.

    Args:
        logits: ``(B, C, *spatial)`` raw scores, any floating dtype (computed in float32).
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)`` (``IGNORE_INDEX``: left out).
        reduction: ``"mean"`` over all voxels of the batch, ``"sum"`` or ``"none"``.
        weight: optional ``(C,)`` float per-class weight; ``"mean"`` is the weighted mean (divided by
            the sum of voxel weights, 0 if that is 0), like ``torch.nn.functional.cross_entropy``.

    Returns:
        float32 scalar, or ``(B, *spatial)`` for ``reduction="none"``.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: a shape, dtype, device or value does not fit, or an unknown ``reduction``.
    """
    target, valid = split_ignore(check_logits_target(logits, target))
    check_reduction(reduction)
    weight = check_weight(weight, logits)
    with float32_region(logits):
        loss = set_nll(logits.float(), target, None)
        return reduce_voxel_loss(loss, target, reduction, weight, valid)
