"""Each label read from the modalities it was trained with (hetero-modal models).

A hetero-modal model learns each label only from the datasets that annotate it, and so only with
their modalities: in the tumour scenario, CSF/GM/WM only ever come from T1 images (the anatomy
dataset), edema and tumour from T1, T1c, T2 and FLAIR (the lesion dataset). Given all four, the
network's *split between the tissue classes* is something no training sample ever scored. ACE reads
the lesion dataset's background as "any label that is not lesion", and the same reading combines two
passes of the model:

* the pass over a lesion source's modalities gives P(lesion) and P(not lesion);
* the pass over the anatomy source's modalities splits the rest among tissue and background.

In general, sources are taken from the most modalities to the fewest. Each source's labels receive
their share of the mass that is left (``R * p(j) / sum of p over the labels not yet placed``, from the
pass over that source's modalities present in the input), and whatever is left at the end goes to the
labels no source placed (background), split as the last pass splits it. When every source's
modalities present in the input are the same set, this is the single pass unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model-file reader imports this module without torch
    import torch


@dataclass(frozen=True)
class LabelSource:
    """A training dataset, as far as inference needs it: the labels it annotates and its modalities.

    Attributes:
        labels: foreground joint label names the dataset annotates.
        modalities: the dataset's modalities (names of the model's inputs).
    """

    labels: tuple[str, ...]
    modalities: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "modalities": list(self.modalities)}

    @classmethod
    def from_dict(cls, d: Mapping) -> LabelSource:
        return cls(tuple(d["labels"]), tuple(d["modalities"]))


def _subset(source: LabelSource, given: Sequence[str]) -> tuple[str, ...]:
    """The source's modalities present in the input, in the input's order."""
    return tuple(m for m in given if m in source.modalities)


def source_passes(sources: Sequence[LabelSource], given: Sequence[str]) -> list[tuple[str, ...]]:
    """The input subsets to run the network on, in model-input order of ``given``: one per distinct
    non-empty ``source.modalities ∩ given``, most modalities first. One entry (``given``) means a
    single ordinary pass."""
    subsets: list[tuple[str, ...]] = []
    for s in sources:
        sub = _subset(s, given)
        if sub and sub not in subsets:
            subsets.append(sub)
    subsets.sort(key=len, reverse=True)  # stable: ties keep training order
    return subsets or [tuple(given)]


def combine_passes(probs: Mapping[tuple[str, ...], torch.Tensor], sources: Sequence[LabelSource],
                   given: Sequence[str], class_of: Callable[[str], int | None]) -> torch.Tensor:
    """Combine the softmax maps of several passes (see the module docstring).

    Args:
        probs: subset -> ``(K, D, H, W)`` probabilities over the network's K classes, for every subset
            of :func:`source_passes`.
        sources: the model's label sources.
        given: the input's modalities.
        class_of: label name -> the network's class index (None: the network has no such class).

    Returns:
        ``(K, D, H, W)`` probabilities (each voxel sums to 1).
    """
    import torch

    order = source_passes(sources, given)
    first = probs[order[0]]
    out = torch.zeros_like(first)
    rest = torch.ones_like(first[0])
    open_classes = list(range(first.shape[0]))
    p = first
    for sub in order:
        p = probs[sub]
        placed = [c for s in sources if _subset(s, given) == sub
                  for c in (class_of(name) for name in s.labels) if c is not None and c in open_classes]
        placed = list(dict.fromkeys(placed))
        if not placed:
            continue
        share = rest / p[open_classes].sum(0).clamp_min(1e-12)
        out[placed] = p[placed] * share
        rest = (rest - out[placed].sum(0)).clamp_min(0.0)
        open_classes = [c for c in open_classes if c not in placed]
    if open_classes:
        out[open_classes] = p[open_classes] * (rest / p[open_classes].sum(0).clamp_min(1e-12))
    return out


__all__ = ["LabelSource", "combine_passes", "source_passes"]
