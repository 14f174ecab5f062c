"""Soft Dice losses: the paper's naive multi-class Dice and the marginal Dice of Fidon et al. (2021).

Both compare softmax probabilities ``p`` with the one-hot target ``g`` per sample ``b`` and class
``c``, summing over the voxels ``v`` of the sample::

    Dice_bc = (2 * sum_v p_bcv g_bcv + smooth) / (sum_v p_bcv + sum_v g_bcv + smooth)
    loss    = 1 - mean over the (b, c) pairs taken into account of Dice_bc

Edge-case policy: a class absent from both prediction and target has Dice 1 (``smooth / smooth``);
a class absent from the target but predicted has Dice close to 0. ``smooth`` must be > 0. Ignore
voxels (target ``IGNORE_INDEX``) are left out of every sum.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from ACELib.losses._common import (
    check_annotated,
    check_logits_target,
    check_target_annotated,
    float32_region,
    label_counts,
    split_ignore,
)
from ACELib.losses._set_nll import full_precision_bmm


def _check_dice_options(smooth: float, include_background: bool) -> None:
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not math.isfinite(smooth) or smooth <= 0:
        raise ValueError(f"smooth must be a finite number > 0, got {smooth!r}")
    if not isinstance(include_background, bool):
        raise ValueError(f"include_background must be a bool, got {include_background!r}")


class _DicePerClass(torch.autograd.Function):
    """``(prob (B, C, N), target (B, N), counts (B, C), smooth) -> Dice (B, C)``, gradient written directly.

    ``d Dice_bc / d prob_bcv = 2 [t_v = c] / den_bc - num_bc / den_bc^2``: a per-(sample, class)
    constant plus a term at the target class, so the backward is one broadcast and one scatter.
    """

    @staticmethod
    def forward(ctx, prob, target, counts, smooth):
        batch, num_classes, _ = prob.shape
        prob_at_target = prob.gather(1, target.unsqueeze(1)).squeeze(1)  # (B, N): p of the true class
        intersection = prob.new_zeros(batch, num_classes).scatter_add_(1, target, prob_at_target)
        numerator = 2.0 * intersection + smooth
        denominator = prob.sum(dim=2) + counts + smooth
        ctx.save_for_backward(target, numerator, denominator)
        ctx.num_voxels = prob.shape[2]
        return numerator / denominator

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_dice):
        target, numerator, denominator = ctx.saved_tensors
        at_target = 2.0 * grad_dice / denominator  # (B, C)
        everywhere = -grad_dice * numerator / denominator.square()
        grad = everywhere.unsqueeze(2).expand(-1, -1, ctx.num_voxels).contiguous()  # (B, C, N)
        grad.scatter_add_(1, target.unsqueeze(1), at_target.gather(1, target).unsqueeze(1))
        return grad, None, None, None


def _dice_per_class(
    prob: torch.Tensor, target: torch.Tensor, smooth: float, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """Soft Dice of each sample and class, without building the one-hot target.

    Args:
        prob: ``(B, C, N)`` float32 probabilities.
        target: ``(B, N)`` int64 class indices.
        smooth: added to numerator and denominator.
        counts: ``(B, C)`` float32 voxels of each class in each sample's target, when known.

    Returns:
        ``(B, C)`` float32 Dice values.
    """
    if counts is None:
        counts = label_counts(target, prob.shape[1])
    return _DicePerClass.apply(prob, target, counts.to(prob.dtype), smooth)


def _valid_probabilities(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Softmax ``(B, C, N)`` float32 of the logits, 0 at ignore voxels (``valid`` False): they add
    nothing to the Dice sums, and their logits get no gradient."""
    batch, num_classes = logits.shape[:2]
    prob = torch.softmax(logits.float(), dim=1).reshape(batch, num_classes, -1)
    if valid is not None:
        prob = prob * valid.reshape(batch, 1, -1).to(prob.dtype)
    return prob


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5, include_background: bool = True
) -> torch.Tensor:
    """Naive soft multi-class Dice loss on the joint label set (the paper's Dice baseline).

    ``1 - mean_{b, c} Dice_bc`` with ``Dice_bc`` as in the module docstring, ``p = softmax(logits)``,
    ``g`` the one-hot target, sums over the voxels of each sample, the mean over every sample and
    every class (classes ``1..C-1`` when ``include_background`` is False).

    Args:
        logits: ``(B, C, *spatial)`` raw scores, any floating dtype (computed in float32).
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)``.
        smooth: added to numerator and denominator (> 0); default ``1e-5``.
        include_background: whether class 0 takes part in the mean.

    Returns:
        float32 scalar in ``[0, 1]``.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: a shape, dtype, device or value does not fit, or a bad option.
    """
    target, valid = split_ignore(check_logits_target(logits, target))
    _check_dice_options(smooth, include_background)
    batch, num_classes = logits.shape[:2]
    with float32_region(logits):
        prob = _valid_probabilities(logits, valid)
        counts = None if valid is None else label_counts(target, num_classes, valid)
        dice = _dice_per_class(prob, target.reshape(batch, -1), float(smooth), counts)
        if not include_background:
            dice = dice[:, 1:]
        return 1.0 - dice.mean()


def marginal_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    annotated: torch.Tensor,
    smooth: float = 1e-5,
    include_background: bool = True,
) -> torch.Tensor:
    """Marginal soft Dice loss (Fidon et al., MICCAI 2021) for partially labelled samples.

    For each sample, the probabilities of the labels its dataset does not annotate are summed into
    the background channel (they are all "background" to that dataset); Dice is then computed as in
    :func:`soft_dice_loss` over the annotated classes only, and averaged over all annotated
    (sample, class) pairs. With every label annotated it equals :func:`soft_dice_loss`.

    Widened labels (an anatomy dataset's WM that may hide WMH) are not supported here: a target of
    a widened label is compared with that label's probability alone. Use a cross-entropy term
    (``marginal_cross_entropy``) to handle widening.

    Args:
        logits: ``(B, C, *spatial)`` raw scores, any floating dtype (computed in float32).
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)``; every label present in a
            sample must be annotated by that sample's dataset.
        annotated: ``(B, C)`` bool, labels each sample's dataset annotates (column 0 treated as True).
        smooth: added to numerator and denominator (> 0); default ``1e-5``.
        include_background: whether the (merged) background class takes part in the mean.

    Returns:
        float32 scalar in ``[0, 1]``; 0 when no (sample, class) pair is counted (every sample
        annotates background only and ``include_background`` is False).

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: a shape, dtype, device or value does not fit, a bad option, or a target label
            that its sample's dataset does not annotate.
    """
    target, valid = split_ignore(check_logits_target(logits, target))
    annotated = check_annotated(annotated, logits)
    _check_dice_options(smooth, include_background)
    counts = check_target_annotated(target, annotated, valid)
    batch, num_classes = logits.shape[:2]
    with float32_region(logits):
        prob = _valid_probabilities(logits, valid)
        # merged = M_b @ p: row 0 sums background and the labels the sample's dataset does not
        # annotate, row c > 0 keeps an annotated label and is 0 for the others.
        merge = torch.diag_embed(annotated.to(prob.dtype))
        merge[:, 0] = (~annotated).to(prob.dtype)
        merge[:, 0, 0] = 1.0
        merged = full_precision_bmm(merge, prob)
        dice = _dice_per_class(merged, target.reshape(batch, -1), float(smooth), counts)
        counted = annotated.clone()
        if not include_background:
            counted[:, 0] = False
        counted = counted.to(dice.dtype)
        # Mean of (1 - Dice) over the counted pairs; 0 when no pair is counted.
        return ((1.0 - dice) * counted).sum() / counted.sum().clamp_min(1.0)
