"""Losses on raw logits ``(B, C, *spatial)`` for joint training from partially labelled datasets.

ACE (the paper's Eq. 4 and a dataset-level variant), marginal cross entropy over per-voxel candidate
sets, the naive cross entropy and soft Dice baselines, marginal Dice, and ``build_loss(name)``.

The names below are imported on first use (:mod:`ACELib.lazy`): :data:`LOSSES` (from
:mod:`ACELib.losses.names`) needs no torch.
"""

from ACELib.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ACELib.losses.ace": ("LABEL_SETS", "ace_candidates", "adaptive_cross_entropy"),
    "ACELib.losses.ce": ("cross_entropy",),
    "ACELib.losses.dice": ("marginal_dice_loss", "soft_dice_loss"),
    "ACELib.losses.marginal": ("marginal_cross_entropy", "masked_logsumexp"),
    "ACELib.losses.names": ("LOSSES",),
    "ACELib.losses.registry": ("SegmentationLoss", "build_loss"),
})
