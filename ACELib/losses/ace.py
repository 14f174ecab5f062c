"""Adaptive cross entropy (ACE; Roulet, Fernandez Slezak, Ferrante, MIDL 2019, Eq. 4).

A model is trained on the joint label set of several partially labelled datasets (e.g. a tissue
dataset and a lesion dataset). Background of a dataset that does not annotate every label is not
"background": it may be any label the dataset is silent about. At such a voxel ACE takes
``-log sum_{j in S} p_j`` instead of ``-log p_0``; everywhere else it is plain cross entropy.

Two choices of ``S`` (background always belongs to it):

* ``label_set="dataset"`` (default): background plus the labels the sample's dataset does not
  annotate. A lesion-free patch of a lesion dataset still penalises false-positive lesions.
* ``label_set="patch"``: the paper's Eq. 4, every label except the non-background labels present in
  the sample's target. In a lesion-free patch of a lesion dataset the lesion joins ``S``, so such a
  patch never penalises false-positive lesions. Use it to reproduce the paper.

In both modes, samples whose dataset annotates every label get plain cross entropy. ACE in dataset
mode is :func:`ACELib.losses.marginal.marginal_cross_entropy` with candidate row 0 = background plus
the non-annotated labels and singleton rows elsewhere; both share one kernel.
"""

from __future__ import annotations

import torch

from ACELib.losses._common import (
    check_annotated,
    check_logits_target,
    check_reduction,
    check_target_annotated,
    check_weight,
    float32_region,
    reduce_voxel_loss,
    split_ignore,
)
from ACELib.losses._set_nll import set_nll

LABEL_SETS = ("dataset", "patch")


def ace_candidates(
    annotated: torch.Tensor, label_set: str = "dataset", present: torch.Tensor | None = None
) -> torch.Tensor:
    """Candidate tables ``(B, C, C)`` that make marginal cross entropy equal to ACE.

    Args:
        annotated: ``(B, C)`` bool, the labels each sample's dataset annotates (column 0 True).
        label_set: ``"dataset"`` or ``"patch"``.
        present: ``(B, C)`` bool, labels present in each sample's target (needed for ``"patch"``).

    Returns:
        ``(B, C, C)`` bool: identity, except row 0 of samples that do not annotate every label,
        which holds the set ``S`` described in the module docstring.

    Raises:
        ValueError: unknown ``label_set``, or ``present`` missing for ``"patch"``.
    """
    if label_set not in LABEL_SETS:
        raise ValueError(f"label_set must be one of {LABEL_SETS}, got {label_set!r}")
    batch, num_classes = annotated.shape
    eye = torch.eye(num_classes, dtype=torch.bool, device=annotated.device)
    if label_set == "dataset":
        background_set = ~annotated
    else:
        if present is None:
            raise ValueError("present must be a (B, C) bool tensor for label_set='patch', got None")
        background_set = ~present
    background_set = background_set.clone()
    background_set[:, 0] = True
    fully_annotated = annotated.all(dim=1, keepdim=True)  # (B, 1)
    background_set = torch.where(fully_annotated, eye[0].expand(batch, -1), background_set)
    table = eye.expand(batch, -1, -1).clone()
    table[:, 0] = background_set
    return table


def adaptive_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    annotated: torch.Tensor,
    label_set: str = "dataset",
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adaptive cross entropy on raw logits.

    Per voxel: ``-log p_t`` where the target ``t`` is not background or the sample's dataset
    annotates every label; otherwise ``-(logsumexp(z_S) - logsumexp(z))`` with ``S`` chosen by
    ``label_set`` (see the module docstring). Computed in float32 in log space.

    Args:
        logits: ``(B, C, *spatial)`` raw scores, any floating dtype (computed in float32).
        target: ``(B, *spatial)`` int64 joint label indices in ``[0, C)``, 0 = background;
            ``IGNORE_INDEX`` (255) at ignore voxels, which are left out.
        annotated: ``(B, C)`` bool, which joint labels each sample's dataset annotates
            (``ACELib.labels.annotated_mask``); column 0 (background) is treated as True.
        label_set: ``"dataset"`` (default) or ``"patch"`` (the paper's Eq. 4).
        reduction: ``"mean"`` over all voxels of the batch (the paper's ``1/m sum``), ``"sum"`` or
            ``"none"``.
        weight: optional ``(C,)`` float per-class weight; a voxel's loss is multiplied by the weight
            of its target class and ``"mean"`` divides by the sum of voxel weights (0 if that is 0),
            like ``torch.nn.functional.cross_entropy``.

    Returns:
        float32 scalar, or ``(B, *spatial)`` for ``reduction="none"``.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: a shape, dtype, device or value does not fit, an unknown ``label_set`` or
            ``reduction``, or a target label that its sample's dataset does not annotate.

    Example:
        >>> logits = torch.randn(2, 5, 8, 8, 8, requires_grad=True)
        >>> target = torch.randint(0, 5, (2, 8, 8, 8))
        >>> annotated = torch.ones(2, 5, dtype=torch.bool)
        >>> adaptive_cross_entropy(logits, target, annotated).backward()
    """
    target, valid = split_ignore(check_logits_target(logits, target))
    annotated = check_annotated(annotated, logits)
    if label_set not in LABEL_SETS:
        raise ValueError(f"label_set must be one of {LABEL_SETS}, got {label_set!r}")
    check_reduction(reduction)
    weight = check_weight(weight, logits)
    # In both modes the background row is a set exactly in partially annotated samples (patch mode:
    # labels a dataset does not annotate cannot be present, so its set always holds more than 0).
    in_set = _set_voxels(target, annotated)
    present = _present_in_partial_samples(target, annotated, in_set) if label_set == "patch" else None
    candidates = ace_candidates(annotated, label_set, present)
    with float32_region(logits):
        loss = set_nll(logits.float(), target, candidates, in_set)
        return reduce_voxel_loss(loss, target, reduction, weight, valid)


def _present_in_partial_samples(target: torch.Tensor, annotated: torch.Tensor, in_set: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` bool: labels present in the target of each partially annotated sample (patch mode).

    Rows of fully annotated samples stay False: their ACE is cross entropy whatever the patch
    holds. The target is assumed checked and ``in_set`` is :func:`_set_voxels`: a partially
    annotated sample's voxels are background (``in_set`` 1) or one of its annotated labels, so
    when it annotates a single label besides background (a lesion dataset), that label is
    present exactly when some voxel is not background; other samples count their labels.
    """
    batch, num_classes = annotated.shape
    present = torch.zeros_like(annotated)
    labelled = (in_set.reshape(batch, -1).amin(dim=1) < 1.0).tolist() if in_set.numel() else [False] * batch
    for b, row in enumerate(annotated.tolist()):
        if all(row):
            continue
        labels = [c for c in range(1, num_classes) if row[c]]
        if len(labels) == 1:
            present[b, labels[0]] = labelled[b]
        else:
            present[b] = torch.bincount(target[b].reshape(-1), minlength=num_classes) > 0
    return present


def _set_voxels(target: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Float 0/1 ``(B, *spatial)``: background voxels of partially annotated samples.

    One table lookup per voxel that also checks the target: a voxel whose label its sample does not
    annotate looks up 2, and then :func:`check_target_annotated` raises with the details.
    """
    batch = annotated.shape[0]
    code = torch.where(annotated, 0.0, 2.0)  # (B, C): 2 = not annotated
    code[:, 0] = code.amax(dim=1) / 2.0  # 1 = background of a partially annotated sample
    voxel_code = code.gather(1, target.reshape(batch, -1))
    if voxel_code.numel() and float(voxel_code.amax()) > 1.0:
        check_target_annotated(target, annotated)
    return voxel_code.view(target.shape)
