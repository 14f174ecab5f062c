"""Validation Dice on held-out, partially labelled cases.

A prediction is scored only on what the case's dataset annotates: predicted labels the dataset does
not annotate are read as the dataset label they hide in (a widened label, e.g. WMH inside WM) or as
background, then Dice is computed per annotated non-background class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ACELib.data.loading import LoadedDataset
from ACELib.inference.sliding_window import sliding_window_logits
from ACELib.labels import IGNORE_INDEX


def to_dataset_view(pred: np.ndarray, annotated: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Map joint predictions ``(D, H, W)`` to what a dataset with these tables would have labelled."""
    c = annotated.shape[0]
    lut = np.zeros(c, dtype=np.int64)
    for j in range(c):
        if annotated[j]:
            lut[j] = j
        else:
            hosts = [t for t in range(1, c) if annotated[t] and candidates[t, j]]
            lut[j] = hosts[0] if hosts else 0
    return lut[pred]


def dice_scores(pred: np.ndarray, target: np.ndarray, classes: Sequence[int]) -> dict[int, float]:
    """Dice per class; classes absent from both maps are left out, and so are ignore voxels
    (target :data:`ACELib.labels.IGNORE_INDEX`), whatever is predicted there."""
    scored = target != IGNORE_INDEX
    if not scored.all():
        pred, target = pred[scored], target[scored]
    out = {}
    for c in classes:
        p, t = pred == c, target == c
        denom = p.sum() + t.sum()
        if denom:
            out[c] = float(2.0 * np.logical_and(p, t).sum() / denom)
    return out


@torch.no_grad()
def validate(net: torch.nn.Module, datasets: Sequence[LoadedDataset], classes: Sequence[int],
             device: torch.device, window: int = 96, amp_dtype=None,
             layout: Sequence[str] | None = None, one_channel: bool = False) -> tuple[float, dict[str, float]]:
    """Validation Dice for model selection, and the mean Dice per (dataset, class).

    The selection score weighs every dataset and every class the same: the mean over datasets of
    the mean over the classes each annotates (each of those a mean over the dataset's validation
    cases that have the class in their prediction or reference). A plain mean over (case, class)
    pairs would let a dataset with many small-lesion cases decide alone.

    Args:
        classes: joint index of each network output channel.
        layout: a hetero-modal network's modalities: each case is given the modalities its dataset
            has (the others zero, with the present mask); None: the cases' channels as they are.
        one_channel: a one-image network: case ``i`` of a dataset is given its channel ``i mod C``, so
            every modality of the dataset is validated.

    Returns:
        ``(selection_score, {"<dataset>/<class index>": mean})``; NaN when there is nothing to score.
    """
    was_training = net.training
    net.eval()
    lut = torch.tensor(list(classes), device=device)
    scores: dict[str, list[float]] = {}

    def run(x, present=None):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            x = x.contiguous(memory_format=torch.channels_last_3d)
            return net(x) if present is None else net(x, present.expand(x.shape[0], -1))

    try:
        for ds in datasets:
            for i, case in enumerate(ds.cases):
                image = case.image[i % case.image.shape[0]][None] if one_channel else case.image
                x, present = torch.from_numpy(image).to(device), None  # (a channel of a contiguous array is one)
                if layout is not None:
                    x, present = in_layout(x, ds.modalities, layout)
                logits = sliding_window_logits(lambda b, p=present: run(b, p), x, len(classes), (window,) * 3,
                                               overlap=0.25)
                pred = lut[logits.argmax(0)].cpu().numpy()
                view = to_dataset_view(pred, ds.annotated, ds.candidates)
                annotated = [c for c in np.flatnonzero(ds.annotated) if c != 0]
                for c, d in dice_scores(view, case.target.astype(np.int64), annotated).items():
                    scores.setdefault(f"{ds.spec.name}/{c}", []).append(d)
    finally:
        net.train(was_training)
    per_class = {k: float(np.mean(v)) for k, v in scores.items()}
    return selection_score(per_class), per_class


def in_layout(x: torch.Tensor, modalities: Sequence[str], layout: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(C, D, H, W)`` channels named ``modalities`` as ``(M, D, H, W)`` in ``layout`` (zeros where absent)
    and the ``(M,)`` bool present mask."""
    out = x.new_zeros((len(layout), *x.shape[1:]))
    present = torch.zeros(len(layout), dtype=torch.bool, device=x.device)
    for i, m in enumerate(modalities):
        out[layout.index(m)], present[layout.index(m)] = x[i], True
    return out, present


def selection_score(per_class: dict[str, float]) -> float:
    """Mean over datasets of the mean over their classes of ``{"<dataset>/<class>": dice}``; NaN if empty."""
    by_dataset: dict[str, list[float]] = {}
    for key, value in per_class.items():
        by_dataset.setdefault(key.rsplit("/", 1)[0], []).append(value)
    if not by_dataset:
        return float("nan")
    return float(np.mean([np.mean(v) for v in by_dataset.values()]))
