"""Losses by name, for the trainer and the command line: ``build_loss("ace")``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ACELib.losses.ace import adaptive_cross_entropy
from ACELib.losses.ce import cross_entropy
from ACELib.losses.dice import marginal_dice_loss, soft_dice_loss
from ACELib.losses.marginal import marginal_cross_entropy
from ACELib.losses.names import LOSSES

# Each term: (logits, target, annotated, candidates, weight) -> scalar.
_Term = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _ce(z, t, a, c, w):
    return cross_entropy(z, t, weight=w)


def _dice(z, t, a, c, w):
    return soft_dice_loss(z, t)


def _ace(z, t, a, c, w):
    return adaptive_cross_entropy(z, t, a, label_set="dataset", weight=w)


def _ace_patch(z, t, a, c, w):
    return adaptive_cross_entropy(z, t, a, label_set="patch", weight=w)


def _marginal(z, t, a, c, w):
    return marginal_cross_entropy(z, t, c, weight=w)


def _marginal_dice(z, t, a, c, w):
    return marginal_dice_loss(z, t, a)


_TERMS: dict[str, tuple[_Term, ...]] = {
    "ce": (_ce,),
    "dice": (_dice,),
    "ace": (_ace,),
    "ace-patch": (_ace_patch,),
    "marginal": (_marginal,),
    "ace+dice": (_ace, _marginal_dice),
    "marginal+dice": (_marginal, _marginal_dice),
    "ce+dice": (_ce, _dice),
}


class SegmentationLoss(nn.Module):
    """A named loss: the sum of its terms, each called with the same four inputs.

    Args:
        name: a key of :data:`LOSSES`.
        weight: optional ``(C,)`` per-class weight for the cross-entropy term (Dice terms ignore it).
    """

    def __init__(self, name: str, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.name = name
        self._terms = _TERMS[name]
        self.register_buffer("weight", weight, persistent=False)

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        annotated: torch.Tensor,
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """Loss of a batch.

        Args:
            logits: ``(B, C, *spatial)`` raw scores.
            target: ``(B, *spatial)`` int64 joint label indices.
            annotated: ``(B, C)`` bool, labels each sample's dataset annotates.
            candidates: ``(B, C, C)`` bool candidate tables of each sample's dataset.

        Returns:
            float32 scalar.
        """
        total = None
        for term in self._terms:
            value = term(logits, target, annotated, candidates, self.weight)
            total = value if total is None else total + value
        return total

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def build_loss(name: str, weight: torch.Tensor | Sequence[float] | None = None) -> nn.Module:
    """Build a loss module by name.

    Args:
        name: one of :data:`LOSSES` (``"ce"``, ``"dice"``, ``"ace"``, ``"ace-patch"``, ``"marginal"``,
            ``"ace+dice"``, ``"marginal+dice"``, ``"ce+dice"``).
        weight: optional per-class weight ``(C,)`` (tensor or sequence of floats) for the
            cross-entropy term; not accepted by ``"dice"``, which has none.

    Returns:
        an ``nn.Module`` whose ``forward(logits, target, annotated, candidates)`` returns a scalar.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a weight that is not 1-D,
            not finite and >= 0, or given to ``"dice"``.
    """
    if name not in LOSSES:
        raise ValueError(f"loss name must be one of {sorted(LOSSES)}, got {name!r}")
    if weight is not None:
        if name == "dice":
            raise ValueError("weight is not supported by loss 'dice' (soft Dice has no class weight), got a weight")
        weight = torch.as_tensor(weight, dtype=torch.float32)
        if weight.ndim != 1 or not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
            raise ValueError(f"weight must be a 1-D sequence of finite values >= 0, got {weight.tolist()}")
    return SegmentationLoss(name, weight)
