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
)

# Terms more than this far below the largest term of a log-sum-exp are clamped to it: e**-80 is
# under float32's resolution of a sum >= 1, and an exp() that underflows to denormals is slow on CPU.
_LOG_TERM_FLOOR = -80.0


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """``log sum_{j: mask_j} exp(x_j)`` along ``dim``; every slice must hold at least one True.

    Value and gradient stay finite for any finite ``x`` (excluded entries get exactly zero gradient,
    no ``-inf * 0``): the peak is taken over the kept entries, terms are clamped to
    ``[_LOG_TERM_FLOOR, 0]`` relative to it before ``exp`` and excluded ones are then zeroed.
    Inputs are not checked (an internal building block).

    Args:
        x: floating tensor of any shape.
        mask: bool tensor of ``x``'s shape, True for the entries to sum.
        dim: the axis to reduce.

    Returns:
        ``x``'s shape without ``dim``.
    """
    peak = x.detach().masked_fill(~mask, torch.finfo(x.dtype).min).amax(dim, keepdim=True)
    terms = torch.exp((x - peak).clamp(_LOG_TERM_FLOOR, 0.0))
    total = torch.where(mask, terms, 0.0).sum(dim, keepdim=True)
    return (peak + torch.log(total)).squeeze(dim)


def candidate_set_nll(logits: torch.Tensor, target: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Per-voxel ``-log P(candidate set)``: the shared kernel of marginal CE and ACE.

    Inputs are assumed checked. Works in log space: ``log_softmax`` then a masked log-sum-exp over
    each voxel's candidate set (:func:`masked_logsumexp`); every set holds its target, so no set is
    empty.

    Args:
        logits: ``(B, C, *spatial)`` float32 raw scores.
        target: ``(B, *spatial)`` int64 joint indices in ``[0, C)``.
        candidates: ``(B, C, C)`` bool, row ``t`` of sample ``b`` = candidate set of target ``t``.

    Returns:
        ``(B, *spatial)`` float32, the loss of each voxel.
    """
    batch, num_classes, *spatial = logits.shape
    flat_target = target.reshape(batch, 1, -1).expand(batch, num_classes, -1)  # (B, C, N)
    # sets[b, j, v] = candidates[b, target[b, v], j]: a row gather, no (B, C, C, N) tensor.
    sets = torch.gather(candidates.transpose(1, 2), 2, flat_target).reshape(batch, num_classes, *spatial)
    log_prob = torch.log_softmax(logits, dim=1)
    return -masked_logsumexp(log_prob, sets, dim=1)


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
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)``, 0 = background.
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
    target = check_logits_target(logits, target)
    check_candidates(candidates, logits)
    check_reduction(reduction)
    weight = check_weight(weight, logits)
    with float32_region(logits):
        loss = candidate_set_nll(logits.float(), target, candidates)
        return reduce_voxel_loss(loss, target, reduction, weight)
