"""Hetero-modal training (``TrainConfig.hetero_modal``): one model over the union of the datasets' modalities.

Each training dataset keeps its own modalities; the single model's inputs are their union (the
task's declared ``modalities`` first, then the others in the order the training datasets first name
them). Every dataset loads only the modalities it has, the sampler places them into the union's
channels with a ``present`` mask (:class:`ACELib.data.sampling.BalancedSampler` ``layout``), and
modality dropout lets the model see every subset.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from ACELib.inference.label_sources import LabelSource
from ACELib.inference.model_file import ALL_MODALITIES, ANY_SUBSET
from ACELib.labels import BACKGROUND, DatasetSpec, Task


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


def label_sources(task: Task, layout: Sequence[str]) -> tuple[LabelSource, ...]:
    """What each training dataset teaches a hetero-modal model: its foreground labels (in the task's
    label order) and its modalities (in the model's order)."""
    out = []
    for ds in task.train_datasets:
        names = tuple(lab.name for lab in task.labels if lab.name in ds.annotated_names and lab.name != BACKGROUND)
        out.append(LabelSource(names, dataset_channels(ds, layout)))
    return tuple(out)


def record_label_sources(model_path: str | os.PathLike, task: Task) -> bool:
    """Write :func:`label_sources` into a hetero-modal model file trained before models recorded them
    (weights unchanged), so that its inference reads each label from its own modalities.

    Returns:
        False when there was nothing to do (not hetero-modal, or the sources are there already).
    """
    from ACELib.inference.metadata import read_model_metadata
    from ACELib.inference.model_file import read_model_file, save_model
    from ACELib.networks.hetero import network_kind

    header = read_model_metadata(model_path)  # the header alone: no weights read when nothing is to do
    if header.get("label_sources") or network_kind(header["members"][0]["network"]) != "hetero":
        return False
    meta, nets = read_model_file(model_path)
    sources = label_sources(task, meta.members[0].modalities)
    save_model(model_path, dataclasses.replace(meta, label_sources=sources), nets)
    return True


__all__ = ["accepted_subsets", "dataset_channels", "label_sources", "record_label_sources", "union_modalities"]
