"""What each network of a training run is: its datasets, inputs, outputs, network and model-file description.

A single model (ACE and the other joint losses) is one member over every training dataset: on the
task's common modalities, on their union (hetero-modal), or on one image of any contrast
(``any_contrast``). A Multi-UNet has one member per training dataset, trained with CE on the
dataset's own modalities and labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ACELib.inference.model_file import MemberSpec, ModelMetadata
from ACELib.inference.model_schema import ANY_CONTRAST
from ACELib.labels import IGNORE, IGNORE_INDEX, DatasetSpec, Task
from ACELib.networks import HeteroUNet3D, UNet3D, UNetConfig
from ACELib.training.config import TrainConfig
from ACELib.training.hetero import accepted_subsets, dataset_channels, label_sources, union_modalities


@dataclass(frozen=True)
class MemberPlan:
    """What one network learns: from which datasets, with which inputs, outputs and loss."""

    name: str
    datasets: tuple[DatasetSpec, ...]
    modalities: tuple[str, ...]
    classes: tuple[int, ...]
    loss: str


def plan_members(task: Task, config: TrainConfig) -> list[MemberPlan]:
    """One joint network (hetero-modal: on the union of the datasets' modalities; any-contrast: on
    one input), or (``multi_unet``) one network per training dataset trained with CE."""
    if not config.multi_unet:
        if config.hetero_modal:
            modalities = union_modalities(task)
        elif config.any_contrast:
            modalities = (ANY_CONTRAST,)
        else:
            modalities = task.input_modalities
        return [MemberPlan("joint", task.train_datasets, modalities, tuple(range(task.num_classes)), config.loss)]
    plans = []
    for ds in task.train_datasets:
        classes = (0, *sorted(task.label_index(n) for n in ds.labels.values() if n != IGNORE))
        plans.append(MemberPlan(ds.name, (ds,), ds.modalities, classes, "ce"))
    return plans


def model_metadata(task: Task, plans: list[MemberPlan], config: TrainConfig) -> ModelMetadata:
    """The model file's header of a run's members (the training settings without the local ones)."""
    members = tuple(MemberSpec(p.name, p.modalities, p.classes, net_description(p, config)) for p in plans)
    local = ("device", "num_threads", "preprocessing", "cache_dir", "num_workers")
    training = {k: v for k, v in config.to_dict().items() if k not in local}
    subsets = (accepted_subsets(task, plans[0].modalities, config.modality_dropout) if config.hetero_modal
               else "all")
    sources = label_sources(task, plans[0].modalities) if config.hetero_modal else ()
    return ModelMetadata(labels=task.labels, members=members, preprocessing=config.preprocessing,
                         patch_size=(config.patch_size,) * 3, task_name=task.name, training=training,
                         modality_subsets=subsets, label_sources=sources,
                         passes="one" if config.pass_distillation else "sources")


def net_config(plan: MemberPlan, config: TrainConfig) -> UNetConfig:
    """The member's U-Net sizes: one input channel per modality, one output per class."""
    return UNetConfig(in_channels=len(plan.modalities), num_classes=len(plan.classes),
                      base_channels=config.base_channels, depth=config.depth)


def net_description(plan: MemberPlan, config: TrainConfig) -> dict:
    """The model file's network description of a member (``"kind": "hetero"`` for a hetero-modal one)."""
    cfg = net_config(plan, config).to_dict()
    return {**cfg, "kind": "hetero"} if config.hetero_modal else cfg


def build_net(plan: MemberPlan, config: TrainConfig) -> torch.nn.Module:
    """A freshly initialised network of the member (seed the torch generator first)."""
    cfg = net_config(plan, config)
    return HeteroUNet3D(cfg) if config.hetero_modal else UNet3D(cfg)


def dataset_modalities(plan: MemberPlan, config: TrainConfig):
    """What each dataset loads: the member's modalities, or (hetero-modal) those of them it has, or
    (any-contrast) all of its own."""
    if config.hetero_modal:
        return lambda ds: dataset_channels(ds, plan.modalities)
    if config.any_contrast:
        return lambda ds: ds.modalities
    return lambda ds: plan.modalities


def sampler_options(plan: MemberPlan, config: TrainConfig) -> dict:
    """The sampler's options for the member's inputs (:class:`ACELib.data.sampling.BalancedSampler`):
    the hetero-modal layout and its dropout, or one image per patch (any-contrast); none otherwise."""
    if config.hetero_modal:
        return {"layout": plan.modalities, "modality_dropout": config.modality_dropout,
                "modality_subsets": config.modality_subsets}
    if config.any_contrast:
        return {"one_channel": True, "contrast_views": config.contrast_distillation > 0}
    return {}


def local_tables(plan: MemberPlan, num_joint: int):
    """Joint -> member class lookup, or None when the member predicts every joint label."""
    if plan.classes == tuple(range(num_joint)):
        return None
    lut = torch.zeros(max(num_joint, IGNORE_INDEX + 1), dtype=torch.int64)
    lut[IGNORE_INDEX] = IGNORE_INDEX  # ignore voxels stay ignored
    for i, c in enumerate(plan.classes):
        lut[c] = i
    return lut


__all__ = ["MemberPlan", "build_net", "dataset_modalities", "local_tables", "model_metadata", "net_config",
           "net_description", "plan_members", "sampler_options"]
