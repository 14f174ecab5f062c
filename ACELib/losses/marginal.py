"""Marginal (partial-label) cross entropy over per-voxel candidate sets.

A voxel of sample ``b`` with joint target ``t`` may truly be any label of the candidate set
``candidates[b, t]`` (built per dataset by :func:`ACELib.labels.candidate_table`). The loss is the
negative log of the probability mass on that set::

    loss_v = -log sum_{j in cand[b, t_v]} softmax(z_v)_j
           = -(logsumexp(z_v[cand]) - logsumexp(z_v))

Singleton sets give plain cross entropy; background rows holding the labels a dataset does not
annotate give ACE (:mod:`ACELib.losses.ace`); tissue rows widened to lesions (WM -> {WM, WMH}) let
an anatomy dataset say nothing about lesions hidden inside its tissue labels.
"""

from __future__ import annotations

import torch

from ACELib.losses._common import (
    check_candidates,
    check_logits_target,
    check_reduction,
    check_weight,
    float32_region,
    reduce_voxel_loss,
    split_ignore,
)
from ACELib.losses._set_nll import masked_logsumexp, set_nll

__all__ = ["marginal_cross_entropy", "masked_logsumexp"]


def marginal_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    candidates: torch.Tensor,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Partial-label cross entropy: ``-log`` of the probability of each voxel's candidate set.

    Args:
        logits: ``(B, C, *spatial)`` raw scores, any floating dtype (computed in float32).
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)``, 0 = background;
            ``IGNORE_INDEX`` (255) at ignore voxels, which are left out (their candidate set is every label).
        candidates: ``(B, C, C)`` bool; ``candidates[b, t, j]`` is True when a voxel of sample ``b``
            with target ``t`` may truly be label ``j`` (stack ``ACELib.labels.candidate_table`` of each
            sample's dataset). ``candidates[b, t, t]`` must be True.
        reduction: ``"mean"`` (over all voxels of the batch), ``"sum"`` or ``"none"``.
        weight: optional ``(C,)`` float per-class weight; a voxel's loss is multiplied by the weight
            of its target class and ``"mean"`` divides by the sum of voxel weights (0 if that is 0).

    Returns:
        float32 scalar, or ``(B, *spatial)`` for ``reduction="none"``.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: a shape, dtype, device or value does not fit (the message names the parameter).
    """
    target, valid = split_ignore(check_logits_target(logits, target))
    check_candidates(candidates, logits)
    check_reduction(reduction)
    weight = check_weight(weight, logits)
    with float32_region(logits):
        loss = set_nll(logits.float(), target, candidates)  # -log P(candidate set) per voxel
        return reduce_voxel_loss(loss, target, reduction, weight, valid)
