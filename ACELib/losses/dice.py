"""Soft Dice losses: the paper's naive multi-class Dice and the marginal Dice of Fidon et al. (2021).

Both compare softmax probabilities ``p`` with the one-hot target ``g`` per sample ``b`` and class
``c``, summing over the voxels ``v`` of the sample::

    Dice_bc = (2 * sum_v p_bcv g_bcv + smooth) / (sum_v p_bcv + sum_v g_bcv + smooth)
    loss    = 1 - mean over the (b, c) pairs taken into account of Dice_bc

Edge-case policy: a class absent from both prediction and target has Dice 1 (``smooth / smooth``);
a class absent from the target but predicted has Dice close to 0. ``smooth`` must be > 0.
"""

from __future__ import annotations

import math

import torch

from ACELib.losses._common import (
    check_annotated,
    check_logits_target,
    check_target_annotated,
    float32_region,
)


def _check_dice_options(smooth: float, include_background: bool) -> None:
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not math.isfinite(smooth) or smooth <= 0:
        raise ValueError(f"smooth must be a finite number > 0, got {smooth!r}")
    if not isinstance(include_background, bool):
        raise ValueError(f"include_background must be a bool, got {include_background!r}")


def _dice_per_class(prob: torch.Tensor, target: torch.Tensor, smooth: float) -> torch.Tensor:
    """Soft Dice of each sample and class, without building the one-hot target.

    Args:
        prob: ``(B, C, N)`` float32 probabilities.
        target: ``(B, N)`` int64 class indices.

    Returns:
        ``(B, C)`` float32 Dice values.
    """
    batch, num_classes, _ = prob.shape
    prob_at_target = prob.gather(1, target.unsqueeze(1)).squeeze(1)  # (B, N): p of the true class
    intersection = prob.new_zeros(batch, num_classes).scatter_add(1, target, prob_at_target)
    target_size = prob.new_zeros(batch, num_classes).scatter_add(1, target, torch.ones_like(prob_at_target))
    pred_size = prob.sum(dim=2)
    return (2.0 * intersection + smooth) / (pred_size + target_size + smooth)


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
    target = check_logits_target(logits, target)
    _check_dice_options(smooth, include_background)
    batch, num_classes = logits.shape[:2]
    with float32_region(logits):
        prob = torch.softmax(logits.float(), dim=1).reshape(batch, num_classes, -1)
        dice = _dice_per_class(prob, target.reshape(batch, -1), float(smooth))
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
    target = check_logits_target(logits, target)
    annotated = check_annotated(annotated, logits)
    _check_dice_options(smooth, include_background)
    check_target_annotated(target, annotated)
    batch, num_classes = logits.shape[:2]
    with float32_region(logits):
        prob = torch.softmax(logits.float(), dim=1).reshape(batch, num_classes, -1)
        keep = annotated.unsqueeze(2).to(prob.dtype)  # (B, C, 1)
        merged_away = (prob * (1.0 - keep)).sum(dim=1, keepdim=True)  # (B, 1, N)
        merged = prob * keep
        merged = torch.cat([merged[:, :1] + merged_away, merged[:, 1:]], dim=1)
        dice = _dice_per_class(merged, target.reshape(batch, -1), float(smooth))
        counted = annotated.clone()
        if not include_background:
            counted[:, 0] = False
        counted = counted.to(dice.dtype)
        # Mean of (1 - Dice) over the counted pairs; 0 when no pair is counted.
        return ((1.0 - dice) * counted).sum() / counted.sum().clamp_min(1.0)
