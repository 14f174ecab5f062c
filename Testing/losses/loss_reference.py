"""Straightforward float64 references of the loss formulas, written independently of ACELib.losses.

Probabilities are formed explicitly, summed over the allowed set, then logged: slow and naive on
purpose (only for small, moderate logits).
"""

from __future__ import annotations

import numpy as np
import torch


def softmax64(logits: torch.Tensor) -> np.ndarray:
    """(B, C, *spatial) -> float64 probabilities, same shape."""
    z = logits.detach().double().numpy()
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reduce(voxel_loss: np.ndarray, target: np.ndarray, reduction: str, weight) -> np.ndarray | float:
    if weight is not None:
        w = np.asarray(weight, dtype=np.float64)[target]
        voxel_loss = voxel_loss * w
        if reduction == "mean":
            return float(voxel_loss.sum() / w.sum())
    if reduction == "mean":
        return float(voxel_loss.mean())
    if reduction == "sum":
        return float(voxel_loss.sum())
    return voxel_loss


def ce_ref(logits, target, reduction="mean", weight=None):
    p = softmax64(logits)
    t = target.numpy()
    loss = np.empty(t.shape)
    for index in np.ndindex(*t.shape):
        b, rest = index[0], index[1:]
        loss[index] = -np.log(p[(b, t[index], *rest)])
    return _reduce(loss, t, reduction, weight)


def marginal_ref(logits, target, candidates, reduction="mean", weight=None):
    p = softmax64(logits)
    t = target.numpy()
    cand = candidates.numpy()
    loss = np.empty(t.shape)
    for index in np.ndindex(*t.shape):
        b, rest = index[0], index[1:]
        allowed = [j for j in range(p.shape[1]) if cand[b, t[index], j]]
        loss[index] = -np.log(sum(p[(b, j, *rest)] for j in allowed))
    return _reduce(loss, t, reduction, weight)


def ace_ref(logits, target, annotated, label_set="dataset", reduction="mean", weight=None):
    """Eq. 4: -log p_t, or -log sum_{j in S} p_j at background voxels of partially labelled samples."""
    p = softmax64(logits)
    t = target.numpy()
    ann = annotated.numpy().copy()
    ann[:, 0] = True
    num_classes = p.shape[1]
    loss = np.empty(t.shape)
    for b in range(t.shape[0]):
        if ann[b].all():
            allowed = {0}
        elif label_set == "dataset":
            allowed = {0} | {j for j in range(num_classes) if not ann[b, j]}
        else:
            present = set(np.unique(t[b]).tolist()) - {0}
            allowed = set(range(num_classes)) - present
        for rest in np.ndindex(*t.shape[1:]):
            tv = t[(b, *rest)]
            if tv == 0:
                loss[(b, *rest)] = -np.log(sum(p[(b, j, *rest)] for j in allowed))
            else:
                loss[(b, *rest)] = -np.log(p[(b, tv, *rest)])
    return _reduce(loss, t, reduction, weight)


def dice_ref(logits, target, smooth=1e-5, include_background=True, annotated=None):
    """Soft Dice per sample and class; with ``annotated``, the marginal (merged) version."""
    p = softmax64(logits)
    t = target.numpy()
    batch, num_classes = p.shape[:2]
    terms = []
    for b in range(batch):
        prob = p[b].reshape(num_classes, -1).copy()
        ann = np.ones(num_classes, bool) if annotated is None else annotated[b].numpy().copy()
        ann[0] = True
        for j in range(num_classes):
            if not ann[j]:
                prob[0] += prob[j]
                prob[j] = 0.0
        onehot = np.stack([(t[b].reshape(-1) == j).astype(np.float64) for j in range(num_classes)])
        for j in range(num_classes):
            if not ann[j] or (j == 0 and not include_background):
                continue
            inter = (prob[j] * onehot[j]).sum()
            terms.append(1.0 - (2 * inter + smooth) / (prob[j].sum() + onehot[j].sum() + smooth))
    return float(np.mean(terms)) if terms else 0.0


def random_batch(shape, seed, scale=3.0, all_annotated=False):
    """Random logits, annotated masks and targets holding only annotated labels.

    Sample 0 is a lesion dataset (background + last label), sample 1 fully annotated, sample 2 (if
    any) misses one of its annotated labels in the patch; the others are random.

    Returns:
        ``(logits float32 (B, C, *spatial), target int64 (B, *spatial), annotated bool (B, C))``.
    """
    gen = torch.Generator().manual_seed(seed)
    batch, num_classes, *spatial = shape
    logits = scale * torch.randn(shape, generator=gen)
    annotated = torch.rand(batch, num_classes, generator=gen) < 0.5
    annotated[:, 0] = True
    annotated[0] = False  # sample 0: a "lesion" dataset, background and the last label only
    annotated[0, [0, -1]] = True
    if batch > 1:
        annotated[1] = True  # sample 1: a fully annotated dataset
    if batch > 2:
        annotated[2] = True  # sample 2: a dataset that does not annotate label 1
        annotated[2, 1] = False
    if all_annotated:
        annotated[:] = True
    target = torch.empty((batch, *spatial), dtype=torch.long)
    for b in range(batch):
        labels = annotated[b].nonzero().squeeze(1)
        if b == 2 and len(labels) > 1:
            labels = labels[:-1]  # sample 2: an annotated label absent from the patch
        pick = torch.randint(0, len(labels), tuple(spatial), generator=gen)
        target[b] = labels[pick]
    return logits, target, annotated
