"""The Multi-UNet baseline's fusion rule (paper Sec. 2.2): label maps fused by overwriting.

Each member network is trained on one dataset only, with that dataset's modalities as inputs and
its own classes as outputs (background + the dataset's labels): see
:func:`ACELib.training.plan_members` (what each member learns) and
:class:`ACELib.inference.model_file.MemberSpec` (a trained member in the model file). At test time
:meth:`ACELib.inference.SegmentationModel.predict` runs every member, translates its label map to
*joint indices*, and fuses the maps with :func:`fuse_label_maps`: a map of higher priority
overwrites, with its non-background voxels, what the maps of lower priority said. The paper fuses "by overwriting the brain tissue segmentation with
the (non-background) lesion masks", i.e. the lesion network has the higher priority. Background never
overwrites anything, so a voxel is background only if every member calls it background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


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
