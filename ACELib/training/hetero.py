"""Hetero-modal training (``TrainConfig.hetero_modal``): one model over the union of the datasets' modalities.

Each training dataset keeps its own modalities; the single model's inputs are their union (the
task's declared ``modalities`` first, then the others in the order the training datasets first name
them). Every dataset loads only the modalities it has, the sampler places them into the union's
channels with a ``present`` mask (:class:`ACELib.data.sampling.BalancedSampler` ``layout``), and
modality dropout lets the model see every subset.
"""

from __future__ import annotations

from collections.abc import Sequence

from ACELib.inference.model_file import ALL_MODALITIES, ANY_SUBSET
from ACELib.labels import DatasetSpec, Task


def union_modalities(task: Task) -> tuple[str, ...]:
    """The hetero-modal model's modalities: the task's declared ones, then those of its training
    datasets in order of first appearance."""
    out = list(task.modalities)
    for ds in task.train_datasets:
        out.extend(m for m in ds.modalities if m not in out)
    return tuple(out)


def dataset_channels(ds: DatasetSpec, layout: Sequence[str]) -> tuple[str, ...]:
    """The modalities of ``ds`` that the model uses, in the model's order."""
    return tuple(m for m in layout if m in ds.modalities)


def accepted_subsets(task: Task, layout: Sequence[str], modality_dropout: float):
    """The ``modality_subsets`` rule of a hetero-modal model trained with this dropout.

    With dropout every non-empty subset is trained (:data:`ANY_SUBSET`); without it only the subsets
    the training datasets have are (one per distinct set, in the model's order).
    """
    if modality_dropout > 0:
        return ANY_SUBSET
    subsets: list[tuple[str, ...]] = []
    for ds in task.train_datasets:
        sub = dataset_channels(ds, layout)
        if sub not in subsets:
            subsets.append(sub)
    return ALL_MODALITIES if subsets == [tuple(layout)] else tuple(subsets)


__all__ = ["accepted_subsets", "dataset_channels", "union_modalities"]
