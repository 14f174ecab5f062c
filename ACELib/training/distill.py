"""Pass distillation (``TrainConfig.pass_distillation``): teach a hetero-modal model to answer in one pass.

A hetero-modal model given more modalities than a dataset had was never scored on that dataset's
labels with that input (in the tumour scenario: the split between CSF, GM and WM was only taught from
T1). Inference with label sources therefore runs one pass per source and combines them
(:mod:`ACELib.inference.label_sources`), about twice the cost with four modalities. Pass
distillation moves that combination into training:

* every training patch whose modalities call for more than one pass (:func:`source_passes`) is also
  run, in the same forward pass, with each further pass's modalities alone (its *views*: a lesion
  patch with T1, T1c, T2 and FLAIR is also run with T1 alone);
* the patch's own output is pulled toward the passes combined (:func:`combine_passes` of the
  detached softmax maps), by ``KL(combined || one pass)`` averaged over voxels and weighted.
  The views are teachers only: the training loss does not score them.

Two other placements were measured worse (docs/hetero_modal.md): views scored by the training loss
too (which also trains the lesions from T1 alone), and views run apart in eval mode (running
batch-norm statistics, as inference runs them).

The combined target takes each source's labels from its own pass, so on the labels of the pass over
all the patch's modalities the target equals the output itself and the term teaches only what the
other passes know (the tissue split). A model trained this way records ``passes: "one"`` and is
segmented in one pass. No randomness is drawn: resume stays exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ACELib.inference.label_sources import LabelSource, combine_passes, source_passes


@dataclass(frozen=True)
class PassViews:
    """The extra views of a batch.

    Attributes:
        sample: ``(V,)`` int64, the batch sample each view is of.
        present: ``(V, M)`` bool, the view's modalities.
        subsets: per view, its modality names (in the layout's order).
        given: per batch sample, its modality names (in the layout's order).
    """

    sample: torch.Tensor
    present: torch.Tensor
    subsets: tuple[tuple[str, ...], ...]
    given: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return int(self.sample.numel())


def pass_views(present: torch.Tensor, layout: Sequence[str], sources: Sequence[LabelSource]) -> PassViews:
    """The views a batch needs: for each sample, one per pass of :func:`source_passes` other than the
    pass over all the sample's modalities.

    Args:
        present: ``(B, M)`` bool, each sample's modalities in ``layout``'s channel order.
        layout: the model's modality names (``M`` of them).
        sources: the model's label sources.

    Raises:
        ValueError: ``present`` is not ``(B, len(layout))`` or a sample has no modality.
    """
    if present.ndim != 2 or present.shape[1] != len(layout):
        raise ValueError(f"present must be (B, {len(layout)}) for layout {list(layout)}, got {tuple(present.shape)}")
    rows = present.bool().cpu().tolist()
    if not all(any(r) for r in rows):
        raise ValueError("present: every sample needs at least one modality")
    given = tuple(tuple(m for m, p in zip(layout, r) if p) for r in rows)
    sample, masks, subsets = [], [], []
    for i, names in enumerate(given):
        for sub in source_passes(sources, names):
            if sub == names:  # the sample's own pass
                continue
            sample.append(i)
            masks.append([m in sub for m in layout])
            subsets.append(sub)
    return PassViews(torch.tensor(sample, dtype=torch.int64),
                     torch.tensor(masks, dtype=torch.bool).reshape(len(masks), len(layout)),
                     tuple(subsets), given)


def with_views(image: torch.Tensor, present: torch.Tensor, views: PassViews) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch followed by its views: images ``(B + V, M, D, H, W)`` (absent channels zero, as at
    inference) and present masks ``(B + V, M)``."""
    idx = views.sample.to(image.device)
    view_present = views.present.to(present.device)
    view_image = image[idx] * view_present[:, :, None, None, None].to(image.dtype)
    return torch.cat([image, view_image]), torch.cat([present, view_present])


def distillation_loss(logits: torch.Tensor, view_logits: torch.Tensor, views: PassViews,
                      sources: Sequence[LabelSource], class_of: Callable[[str], int | None]) -> torch.Tensor:
    """``KL(combined passes || one pass)``, averaged over the voxels of the samples that have views.

    Args:
        logits: ``(B, K, D, H, W)`` the batch's outputs (one pass over each sample's modalities).
        view_logits: ``(V, K, D, H, W)`` the views' outputs, in :class:`PassViews` order.
        views: from :func:`pass_views` for this batch.
        sources: the model's label sources.
        class_of: label name -> the network's class index (None: not one of its classes).

    Returns:
        a scalar (0 with gradient when no sample has a view).
    """
    if len(views) == 0:
        return logits.sum() * 0.0
    if view_logits.shape[0] != len(views) or view_logits.shape[1:] != logits.shape[1:]:
        raise ValueError(f"view_logits must be ({len(views)}, {', '.join(map(str, logits.shape[1:]))}), "
                         f"got {tuple(view_logits.shape)}")
    log_p = F.log_softmax(logits.float(), dim=1)
    with torch.no_grad():
        probs, view_probs = log_p.detach().exp(), torch.softmax(view_logits.float(), dim=1)
        passes: dict[int, dict] = {}  # sample -> {subset: (K, D, H, W) probabilities}, in sample order
        for j, i in sorted(enumerate(views.sample.tolist()), key=lambda t: t[1]):
            passes.setdefault(i, {views.given[i]: probs[i]})[views.subsets[j]] = view_probs[j]
        rows = list(passes)
        q = torch.stack([combine_passes(passes[i], sources, views.given[i], class_of) for i in rows])
    kl = torch.xlogy(q, q) - q * log_p[rows]  # (S, K, D, H, W); 0 log 0 = 0
    return kl.sum(1).mean()


def contrast_distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, annotated: torch.Tensor
                               ) -> torch.Tensor:
    """Contrast distillation (``TrainConfig.contrast_distillation``): ``KL(q || p)`` averaged over voxels.

    A one-image model (``any_contrast``) is shown a lesion case's T2, say, with the case's lesion
    labels only: nothing tells it which tissue the rest is in a T2. The same patch's teacher image
    (T1, which the anatomy dataset taught tissue on) runs in the same forward pass, and the target
    ``q`` keeps the model's own probabilities of the labels the sample's dataset annotates (so their
    logits get no gradient: the loss teaches them) and splits the rest of the probability as the
    teacher view does (ACE's reading of a dataset's background: any label it does not annotate).

    Args:
        logits: ``(V, K, D, H, W)`` outputs of the samples that have views.
        teacher_logits: ``(V, K, D, H, W)`` outputs of their views (detached here).
        annotated: ``(V, K)`` bool, the labels each sample's dataset annotates (background ignored).

    Returns:
        a scalar (0 with gradient when there is no view).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    if teacher_logits.shape != logits.shape or annotated.shape != logits.shape[:2]:
        raise ValueError(f"teacher_logits {tuple(teacher_logits.shape)} must match logits {tuple(logits.shape)} and "
                         f"annotated {tuple(annotated.shape)} be {tuple(logits.shape[:2])}")
    log_p = F.log_softmax(logits.float(), dim=1)
    with torch.no_grad():
        own = annotated.bool().clone()
        own[:, 0] = False
        own = own[:, :, None, None, None]
        p, t = log_p.detach().exp(), torch.softmax(teacher_logits.float(), dim=1)
        rest = (p * ~own).sum(1, keepdim=True)
        t_rest = torch.where(own, 0.0, t)
        q = torch.where(own, p, rest * t_rest / t_rest.sum(1, keepdim=True).clamp_min(1e-12))
    kl = torch.xlogy(q, q) - q * log_p
    return kl.sum(1).mean()


__all__ = ["PassViews", "contrast_distillation_loss", "distillation_loss", "pass_views", "with_views"]
