"""Input checks, the float32 policy and reductions shared by every loss of the package.

Policies, stated once for all losses:

* Losses take raw logits ``(B, C, *spatial)`` with at least one spatial dimension and ``C >= 2``;
  targets are ``(B, *spatial)`` integer joint label indices in ``[0, C)``, or
  :data:`~ACELib.labels.IGNORE_INDEX` (255) at *ignore voxels* (nnU-Net's ignore label: the voxel
  may be any joint label). Every loss leaves ignore voxels out: no loss, no gradient, not counted
  in ``"mean"`` (the mean is over the other voxels; 0 when every voxel is ignored), not in Dice sums.
* Computation happens in float32 with autocast switched off (also under ``torch.autocast``); the
  returned loss is float32 whatever the logits' dtype. Gradients flow back in the logits' dtype.
* Reductions: ``"mean"`` over all voxels of the batch, ``"sum"``, ``"none"`` (``(B, *spatial)``).
  With a per-class ``weight`` each voxel's loss is multiplied by the weight of its target class and
  ``"mean"`` is the weighted mean ``sum(w_v * l_v) / sum(w_v)``, as in ``torch.nn.functional.cross_entropy``;
  when every voxel weight is zero it returns 0 (not NaN).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ACELib.labels.candidates import IGNORE_INDEX

REDUCTIONS = ("mean", "sum", "none")


def check_logits_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Check logits ``(B, C, *spatial)`` and target ``(B, *spatial)``; return the target as int64.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: wrong dtype, shape, device or a target value outside ``[0, C)``.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating point tensor, got dtype {logits.dtype}")
    if logits.ndim < 3:
        raise ValueError(
            f"logits must have shape (B, C, *spatial) with at least one spatial dimension, "
            f"got shape {tuple(logits.shape)}"
        )
    if logits.shape[1] < 2:
        raise ValueError(f"logits must have at least 2 classes (dimension 1), got shape {tuple(logits.shape)}")
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise ValueError(f"target must be an integer tensor (int64 joint label indices), got dtype {target.dtype}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target must have shape (B, *spatial) = {expected} to match logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.device != logits.device:
        raise ValueError(f"target must be on the logits' device {logits.device}, got {target.device}")
    num_classes = logits.shape[1]
    if target.numel() > 0:
        lo, hi = (int(v) for v in torch.aminmax(target))
        if lo < 0 or hi >= num_classes:
            outside = (target < 0) | ((target >= num_classes) & (target != IGNORE_INDEX))
            if lo < 0 or bool(outside.any()):
                raise ValueError(
                    f"target values must be joint label indices in [0, {num_classes}), "
                    f"got values in [{lo}, {hi}] (only {IGNORE_INDEX} may lie outside: ignore voxels)"
                )
    return target.long()


def split_ignore(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Separate ignore voxels from a checked target ``(B, *spatial)``.

    Returns:
        ``(target, valid)``: the target with ignore voxels set to 0 (so it indexes tables), and
        ``valid`` ``(B, *spatial)`` bool, False at ignore voxels; ``valid`` is None when no voxel is
        ignored (the losses then skip all masking).
    """
    ignored = target == IGNORE_INDEX
    if not bool(ignored.any()):
        return target, None
    return target.masked_fill(ignored, 0), ~ignored


def check_annotated(annotated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Check the ``(B, C)`` bool mask of annotated labels; return it with column 0 forced to True."""
    if not isinstance(annotated, torch.Tensor):
        raise TypeError(f"annotated must be a torch.Tensor, got {type(annotated).__name__}")
    if annotated.dtype != torch.bool:
        raise ValueError(f"annotated must be a bool tensor, got dtype {annotated.dtype}")
    expected = tuple(logits.shape[:2])
    if tuple(annotated.shape) != expected:
        raise ValueError(f"annotated must have shape (B, C) = {expected}, got {tuple(annotated.shape)}")
    if annotated.device != logits.device:
        raise ValueError(f"annotated must be on the logits' device {logits.device}, got {annotated.device}")
    annotated = annotated.clone()
    annotated[:, 0] = True
    return annotated


def check_target_annotated(target: torch.Tensor, annotated: torch.Tensor,
                           valid: torch.Tensor | None = None) -> torch.Tensor:
    """Raise when a sample's target holds a label its dataset does not annotate.

    Returns:
        ``(B, C)`` float32: the voxel count of each label in each sample's target
        (:func:`label_counts`; only ``valid`` voxels when given).
    """
    counts = label_counts(target, annotated.shape[1], valid)
    present = counts > 0
    bad = present & ~annotated
    if bool(bad.any()):
        b, j = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"target of sample {b} holds joint label {j}, which annotated[{b}] marks as not annotated "
            f"by that sample's dataset"
        )
    return counts


def label_counts(target: torch.Tensor, num_classes: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, C)`` float32 voxel count of each joint label in each sample of ``target`` ``(B, *spatial)``.

    Float counts: exact up to 2**24 voxels per sample, and never 0 once a label occurs. With
    ``valid`` (``(B, *spatial)`` bool, :func:`split_ignore`) only the valid voxels are counted.
    """
    batch = target.shape[0]
    flat = target.reshape(batch, -1)
    counts = torch.zeros(batch, num_classes, device=target.device)
    if valid is not None:
        return counts.scatter_add_(1, flat, valid.reshape(batch, -1).to(counts.dtype))
    return counts.scatter_add_(1, flat, torch.ones(1, 1, device=target.device).expand_as(flat))


def check_candidates(candidates: torch.Tensor, logits: torch.Tensor) -> None:
    """Check the ``(B, C, C)`` bool candidate tables (each target must be its own candidate)."""
    if not isinstance(candidates, torch.Tensor):
        raise TypeError(f"candidates must be a torch.Tensor, got {type(candidates).__name__}")
    if candidates.dtype != torch.bool:
        raise ValueError(f"candidates must be a bool tensor, got dtype {candidates.dtype}")
    c = logits.shape[1]
    expected = (logits.shape[0], c, c)
    if tuple(candidates.shape) != expected:
        raise ValueError(f"candidates must have shape (B, C, C) = {expected}, got {tuple(candidates.shape)}")
    if candidates.device != logits.device:
        raise ValueError(f"candidates must be on the logits' device {logits.device}, got {candidates.device}")
    diagonal = candidates.diagonal(dim1=1, dim2=2)
    if not bool(diagonal.all()):
        b, t = (int(v) for v in (~diagonal).nonzero()[0])
        raise ValueError(
            f"candidates[b, t, t] must be True (a target is always one of its own candidates), "
            f"got False at b={b}, t={t}"
        )


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_weight(weight: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """Check a per-class weight ``(C,)`` (finite, >= 0); return it as float32 on the logits' device."""
    if weight is None:
        return None
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor or None, got {type(weight).__name__}")
    c = logits.shape[1]
    if tuple(weight.shape) != (c,):
        raise ValueError(f"weight must have shape (C,) = ({c},), got {tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise ValueError(f"weight must be a floating point tensor, got dtype {weight.dtype}")
    weight = weight.detach().to(device=logits.device, dtype=torch.float32)
    if not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
        raise ValueError(f"weight must hold finite values >= 0, got {weight.tolist()}")
    return weight


@contextlib.contextmanager
def float32_region(logits: torch.Tensor) -> Iterator[None]:
    """Switch autocast off for the logits' device, so the loss is computed in float32."""
    device_type = logits.device.type
    if not _autocast_enabled(device_type):  # nothing to switch off (entering autocast costs ~15 us)
        yield
        return
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (True when it cannot be told: switch it off anyway)."""
    available = getattr(torch.amp, "is_autocast_available", None)
    if available is not None and not available(device_type):
        return False
    try:
        return bool(torch.is_autocast_enabled(device_type))  # torch >= 2.4
    except TypeError:
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return True


def reduce_voxel_loss(
    loss: torch.Tensor, target: torch.Tensor, reduction: str, weight: torch.Tensor | None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply per-class weights (by target class) and the reduction to a ``(B, *spatial)`` voxel loss.

    ``valid`` (``(B, *spatial)`` bool or None, :func:`split_ignore`): voxels where it is False get
    weight 0, so they add nothing to the loss or its gradient and ``"mean"`` is over the others.
    """
    if valid is not None:
        voxel_weight = valid.to(loss.dtype) if weight is None else weight[target] * valid.to(loss.dtype)
        loss = loss * voxel_weight
        if reduction == "mean":
            total = voxel_weight.sum()
            return loss.sum() / total.clamp_min(torch.finfo(total.dtype).tiny)
        return loss.sum() if reduction == "sum" else loss
    if weight is not None:
        voxel_weight = weight[target]
        loss = loss * voxel_weight
        if reduction == "mean":
            total = voxel_weight.sum()
            return loss.sum() / total.clamp_min(torch.finfo(total.dtype).tiny)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
