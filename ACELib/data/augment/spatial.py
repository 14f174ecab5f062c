"""Spatial augmentation of a patch: rotation, zoom, smooth deformation, mirroring.

The patch is read from a crop around its centre through one sampling grid, so the corners of a
rotated patch hold real image (not padding). Intensity images are interpolated linearly and label
maps by nearest neighbour: the type of the array decides, never a flag at the call site.
Randomness lives in :func:`draw_spatial`; :func:`apply_spatial` is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ACELib.data.augment.config import AugmentationConfig


@dataclass(frozen=True)
class SpatialParams:
    """One draw of the spatial transform of a patch.

    Attributes:
        matrix: ``(3, 3)`` map from output voxel offsets to input voxel offsets (z, y, x), or None
            (no resampling).
        displacement: ``(3, g, g, g)`` coarse deformation field in input voxels (z, y, x), or None.
        mirror: array axes (of the patch) to flip.
    """

    matrix: np.ndarray | None
    displacement: np.ndarray | None
    mirror: tuple[int, ...]

    @property
    def resamples(self) -> bool:
        return self.matrix is not None or self.displacement is not None

    def crop_size(self, patch: Sequence[int]) -> tuple[int, ...]:
        """Edge of the crop that holds every input voxel the grid reads (odd, centred)."""
        reach = np.asarray(patch, dtype=np.float64) / 2.0 + 1.5
        if self.matrix is not None:
            reach = np.abs(self.matrix) @ reach
        if self.displacement is not None:
            reach = reach + 3.0 * float(np.abs(self.displacement).max()) + 1.0
        return tuple(2 * int(math.ceil(r)) + 1 for r in reach)


def _rotation(angles: np.ndarray) -> np.ndarray:
    """Rotation matrix about z, y and x by ``angles`` (radians), composed in that order."""
    out = np.eye(3)
    for axis, a in enumerate(angles):
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out


def draw_spatial(rng: np.random.Generator, cfg: AugmentationConfig) -> SpatialParams:
    """Draw rotation, zoom, deformation and mirroring for one patch (a fixed number of draws)."""
    u = rng.random(4)
    angles = rng.uniform(-1.0, 1.0, 3) * math.radians(cfg.rotation_deg)
    zoom = float(np.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1]))))
    field = rng.standard_normal((3, 4, 4, 4)) * cfg.elastic_voxels
    flips = rng.random(len(cfg.mirror_axes))
    if not cfg.enabled:
        return SpatialParams(None, None, ())
    matrix = None
    if u[0] < cfg.p_rotation and cfg.rotation_deg > 0:
        matrix = _rotation(angles)
    if u[1] < cfg.p_scale and zoom != 1.0:
        matrix = (np.eye(3) if matrix is None else matrix) * zoom
    displacement = field if u[2] < cfg.p_elastic and cfg.elastic_voxels > 0 else None
    mirror = tuple(a for a, f in zip(cfg.mirror_axes, flips) if f < cfg.p_mirror)
    return SpatialParams(matrix, displacement, mirror)


def sampling_grid(params: SpatialParams, patch: Sequence[int], crop: Sequence[int]) -> torch.Tensor:
    """``(1, P, P, P, 3)`` grid for ``grid_sample`` (x, y, z in -1..1, align_corners=True) that reads
    the transformed patch out of a crop of size ``crop`` centred on the patch centre."""
    axes = [torch.arange(p, dtype=torch.float64) - (p // 2) for p in patch]  # voxel p // 2 is the centre
    offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (P, P, P, 3) z, y, x
    if params.matrix is not None:
        offsets = offsets @ torch.from_numpy(params.matrix).T
    if params.displacement is not None:
        coarse = torch.from_numpy(params.displacement)[None]  # (1, 3, g, g, g)
        dense = F.interpolate(coarse, size=tuple(patch), mode="trilinear", align_corners=True)[0]
        offsets = offsets + dense.permute(1, 2, 3, 0)
    centre = torch.tensor([c // 2 for c in crop], dtype=torch.float64)  # as :func:`ACELib.data.patches.crop`
    scale = torch.tensor([(c - 1) / 2.0 for c in crop], dtype=torch.float64)
    grid = (offsets + centre) / scale - 1.0
    return grid.flip(-1)[None].float()  # grid_sample wants (x, y, z)


def resample_image(crop: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """Linear interpolation of an intensity crop ``(C, *crop)`` float32 at ``grid``: ``(C, *patch)``."""
    x = torch.from_numpy(np.ascontiguousarray(crop))[None]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)[0].numpy()


def resample_labels(crop: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """Nearest-neighbour resampling of a label crop ``(*crop)`` uint8 at ``grid``: ``(*patch)`` uint8."""
    x = torch.from_numpy(crop.astype(np.float32))[None, None]
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=True)[0, 0]
    return out.round().to(torch.uint8).numpy()


def mirror(array: np.ndarray, axes: Sequence[int], spatial_from: int) -> np.ndarray:
    """Flip the patch axes ``axes`` (0..2) of an array whose spatial axes start at ``spatial_from``."""
    if not axes:
        return array
    return np.ascontiguousarray(np.flip(array, axis=tuple(spatial_from + a for a in axes)))


__all__ = ["SpatialParams", "draw_spatial", "mirror", "resample_image", "resample_labels", "sampling_grid"]
