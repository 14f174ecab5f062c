"""The Multi-UNet baseline (paper Sec. 2.2): one U-Net per dataset, label maps fused by overwriting.

Each member network is trained on one dataset only, with that dataset's modalities as inputs and
its own classes as outputs (background + the dataset's labels). At test time every member predicts
its label map, which is translated to *joint indices*, and the maps are fused with
:func:`fuse_label_maps`: a map of higher priority overwrites, with its non-background voxels, what
the maps of lower priority said. The paper fuses "by overwriting the brain tissue segmentation with
the (non-background) lesion masks", i.e. the lesion network has the higher priority. Background never
overwrites anything, so a voxel is background only if every member calls it background.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ACELib.networks.unet import UNet3D, UNetConfig


def fuse_label_maps(maps: Sequence, priority: Sequence[int] | None = None, background: int = 0):
    """Fuse label maps of joint indices: non-background voxels of higher-priority maps overwrite.

    Args:
        maps: ``K >= 1`` integer arrays of one shape (numpy arrays or torch tensors, all of one kind),
            holding joint indices, e.g. ``(D, H, W)`` or ``(B, D, H, W)``.
        priority: one integer per map; a higher number wins. Maps of equal priority are applied in
            the order given, so the later one wins. Default: the order given (the last map wins),
            e.g. ``[tissue_map, lesion_map]`` lets lesions overwrite tissue.
        background: the index that never overwrites (0, the joint background).

    Returns:
        The fused map, same kind, shape and dtype as ``maps[0]``.

    Raises:
        ValueError: no maps, maps of different shapes, or ``priority`` of the wrong length.
        TypeError: maps of mixed kinds, or not of an integer dtype.

    Example::

        fused = fuse_label_maps([tissue, lesion])               # lesion overwrites tissue
        fused = fuse_label_maps([lesion, tissue], priority=[1, 0])  # same result
    """
    maps = list(maps)
    if not maps:
        raise ValueError("fuse_label_maps: maps is empty; expected at least one label map")
    is_torch = isinstance(maps[0], torch.Tensor)
    for k, m in enumerate(maps):
        if isinstance(m, torch.Tensor) != is_torch or not isinstance(m, (torch.Tensor, np.ndarray)):
            raise TypeError(
                f"fuse_label_maps: maps must be all numpy arrays or all torch tensors; "
                f"maps[0] is {type(maps[0]).__name__}, maps[{k}] is {type(m).__name__}"
            )
        integer = (not m.is_floating_point() and not m.is_complex()) if is_torch else np.issubdtype(m.dtype, np.integer)
        if not integer:
            raise TypeError(f"fuse_label_maps: maps[{k}] must hold integer joint indices, got dtype {m.dtype}")
        if tuple(m.shape) != tuple(maps[0].shape):
            raise ValueError(
                f"fuse_label_maps: maps[{k}] has shape {tuple(m.shape)}, expected {tuple(maps[0].shape)} (maps[0])"
            )
    if priority is None:
        priority = list(range(len(maps)))
    priority = [int(p) for p in priority]
    if len(priority) != len(maps):
        raise ValueError(f"fuse_label_maps: priority needs one entry per map ({len(maps)}), got {len(priority)}")
    order = sorted(range(len(maps)), key=lambda k: (priority[k], k))  # lowest priority first
    fused = maps[order[0]].clone() if is_torch else maps[order[0]].copy()
    for k in order[1:]:
        m = maps[k]
        painted = m != background
        fused[painted] = m[painted].to(fused.dtype) if is_torch else m[painted].astype(fused.dtype)
    return fused


class MultiUNet(nn.Module):
    """Several :class:`UNet3D`, one per dataset, whose label maps are fused into the joint label space.

    Args:
        members: dataset name -> network (its own ``in_channels`` and ``num_classes``).
        joint_indices: dataset name -> joint index of each of that network's output channels
            (``len == num_classes``, entry 0 must be 0, the joint background).
        priority: dataset names from lowest to highest fusion priority (the last one overwrites the
            others). Default: the order of ``members``.

    Raises:
        ValueError: names that do not match, a ``joint_indices`` entry of the wrong length or not
            starting with 0, or a ``priority`` that is not an ordering of the members.
    """

    def __init__(
        self,
        members: Mapping[str, UNet3D],
        joint_indices: Mapping[str, Sequence[int]],
        priority: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("MultiUNet: members is empty; expected one UNet3D per dataset")
        names = list(members)
        if set(joint_indices) != set(names):
            raise ValueError(
                f"MultiUNet: joint_indices must name the members {names}, got {sorted(joint_indices)}"
            )
        for name in names:
            net, idx = members[name], list(joint_indices[name])
            if not isinstance(net, UNet3D):
                raise TypeError(f"MultiUNet: member {name!r} must be a UNet3D, got {type(net).__name__}")
            if len(idx) != net.config.num_classes or not idx or idx[0] != 0 or min(idx) < 0:
                raise ValueError(
                    f"MultiUNet: joint_indices[{name!r}] must list {net.config.num_classes} non-negative joint "
                    f"indices starting with 0 (background), got {idx}"
                )
        priority = list(names if priority is None else priority)
        if sorted(priority) != sorted(names):
            raise ValueError(f"MultiUNet: priority must order the members {names}, got {priority}")
        self.members = nn.ModuleDict({name: members[name] for name in names})
        self.joint_indices = {name: tuple(int(i) for i in joint_indices[name]) for name in names}
        self.priority = tuple(priority)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_task(cls, task, base_channels: int = 32, depth: int = 4, priority: Sequence[str] | None = None) -> MultiUNet:
        """One freshly initialised member per training dataset of ``task`` (an ``ACELib.labels.Task``).

        A member's inputs are its dataset's modalities, its outputs background + the dataset's labels
        in increasing dataset value. Default priority: the task's dataset order (later overwrites).
        """
        from ACELib.labels import dataset_value_to_joint_index

        members, indices = {}, {}
        for ds in task.train_datasets:
            mapping = dataset_value_to_joint_index(task, ds)
            indices[ds.name] = [mapping[v] for v in sorted(mapping)]
            members[ds.name] = UNet3D(UNetConfig(len(ds.modalities), len(mapping), base_channels, depth))
        return cls(members, indices, priority)

    def to_dict(self) -> dict:
        """JSON-serialisable description (configs, joint indices, priority) to rebuild with :meth:`from_dict`."""
        return {
            "members": {n: m.config.to_dict() for n, m in self.members.items()},
            "joint_indices": {n: list(v) for n, v in self.joint_indices.items()},
            "priority": list(self.priority),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> MultiUNet:
        """Rebuild (freshly initialised) from :meth:`to_dict` output; load weights afterwards."""
        unknown = sorted(set(data) - {"members", "joint_indices", "priority"})
        if unknown:
            raise ValueError(f"MultiUNet: unknown keys {unknown}; valid keys are ['joint_indices', 'members', 'priority']")
        missing = [k for k in ("members", "joint_indices") if k not in data]
        if missing:
            raise ValueError(f"MultiUNet: missing keys {missing}")
        members = {n: UNet3D(UNetConfig.from_dict(c)) for n, c in data["members"].items()}
        return cls(members, data["joint_indices"], data.get("priority"))

    # ------------------------------------------------------------------ inference
    def _inputs_for(self, inputs) -> dict[str, torch.Tensor]:
        if isinstance(inputs, torch.Tensor):
            return {name: inputs for name in self.members}
        missing = [n for n in self.members if n not in inputs]
        if missing:
            raise ValueError(f"MultiUNet: inputs lack the members {missing} (got {sorted(inputs)})")
        return {n: inputs[n] for n in self.members}

    def forward(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits of every member.

        Args:
            inputs: member name -> ``(B, in_channels_of_member, D, H, W)``, or one tensor for all
                members (when they share their input channels).

        Returns:
            member name -> ``(B, num_classes_of_member, D, H, W)`` logits.
        """
        return {n: self.members[n](x) for n, x in self._inputs_for(inputs).items()}

    def member_labels(self, logits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Arg-max of each member's logits, translated to joint indices: name -> ``(B, D, H, W)`` int64."""
        out = {}
        for n, z in logits.items():
            table = torch.tensor(self.joint_indices[n], dtype=torch.int64, device=z.device)
            out[n] = table[z.argmax(dim=1)]
        return out

    @torch.no_grad()
    def predict_labels(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Fused joint label map ``(B, D, H, W)`` int64 (see :func:`fuse_label_maps`); call ``eval()`` first."""
        labels = self.member_labels(self(inputs))
        maps = [labels[n] for n in self.priority]  # lowest priority first
        return fuse_label_maps(maps)
