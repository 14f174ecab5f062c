"""Naive categorical cross entropy on the joint label set (the paper's baseline)."""

from __future__ import annotations

import torch

from ACELib.losses._common import (
    check_logits_target,
    check_reduction,
    check_weight,
    float32_region,
    reduce_voxel_loss,
)


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Categorical cross entropy ``-log softmax(z)_t``, every voxel's target taken at face value.

    Args:
        logits: ``(B, C, *spatial)`` raw scores, any floating dtype (computed in float32).
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)``.
        reduction: ``"mean"`` over all voxels of the batch, ``"sum"`` or ``"none"``.
        weight: optional ``(C,)`` float per-class weight; ``"mean"`` is the weighted mean (divided by
            the sum of voxel weights, 0 if that is 0), like ``torch.nn.functional.cross_entropy``.

    Returns:
        float32 scalar, or ``(B, *spatial)`` for ``reduction="none"``.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: a shape, dtype, device or value does not fit, or an unknown ``reduction``.
    """
    target = check_logits_target(logits, target)
    check_reduction(reduction)
    weight = check_weight(weight, logits)
    with float32_region(logits):
        log_prob = torch.log_softmax(logits.float(), dim=1)
        loss = -log_prob.gather(1, target.unsqueeze(1)).squeeze(1)
        return reduce_voxel_loss(loss, target, reduction, weight)
