"""Losses on raw logits ``(B, C, *spatial)`` for joint training from partially labelled datasets.

ACE (the paper's Eq. 4 and a dataset-level variant), marginal cross entropy over per-voxel candidate
sets, the naive cross entropy and soft Dice baselines, marginal Dice, and ``build_loss(name)``.
"""

from ACELib.losses.ace import LABEL_SETS, ace_candidates, adaptive_cross_entropy
from ACELib.losses.ce import cross_entropy
from ACELib.losses.dice import marginal_dice_loss, soft_dice_loss
from ACELib.losses.marginal import marginal_cross_entropy, masked_logsumexp
from ACELib.losses.registry import LOSSES, SegmentationLoss, build_loss

__all__ = [
    "LABEL_SETS",
    "LOSSES",
    "SegmentationLoss",
    "ace_candidates",
    "adaptive_cross_entropy",
    "build_loss",
    "cross_entropy",
    "marginal_cross_entropy",
    "marginal_dice_loss",
    "masked_logsumexp",
    "soft_dice_loss",
]
