"""What surrounds the brain: extracerebral CSF, and (skull-on phantoms) skull, fat and scalp.

In adult brains CSF is 10-20 % of the intracranial volume, much of it in the subarachnoid space
between brain and skull, and the datasets of the field (MRBrainS) label that extracerebral CSF as
CSF. The template's brain mask holds almost none of it, so every subject gets a rim of CSF of
subject-varying width around the brain, wider with atrophy. Skull-on subjects are then wrapped in
cortical bone, subcutaneous fat and scalp, each of random, smoothly varying thickness; those
layers are background for every label map.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ACELib.phantoms.anatomy import CSF, Anatomy, distance_mm
from ACELib.phantoms.fields import smooth_noise

HEAD_CLASSES = ("scalp", "fat", "skull")
"""Order of the head-tissue fraction maps (:func:`head_fractions`), as in ``mri.CLASSES``."""


@dataclass(frozen=True)
class HeadShape:
    """Thickness of the layers around the brain (mm, mean over the surface).

    Attributes:
        csf_mm: extracerebral CSF rim.
        skull_mm, fat_mm, scalp_mm: head layers (used by skull-on subjects only).
        variation: relative variation of every thickness over the surface (smooth field).
    """

    csf_mm: float
    skull_mm: float
    fat_mm: float
    scalp_mm: float
    variation: float = 0.3

    def to_dict(self) -> dict:
        return {k: round(float(v), 3) for k, v in self.__dict__.items()}


def draw_head_shape(rng: np.random.Generator, atrophy_mm: float = 0.0) -> HeadShape:
    """Random layer thicknesses; the CSF rim widens with ``atrophy_mm`` (ventricle enlargement)."""
    if atrophy_mm < 0:
        raise ValueError(f"atrophy_mm must be >= 0, got {atrophy_mm}")
    return HeadShape(csf_mm=float(rng.uniform(1.5, 3.5) + 0.6 * atrophy_mm), skull_mm=float(rng.uniform(4.0, 8.0)),
                     fat_mm=float(rng.uniform(1.5, 4.0)), scalp_mm=float(rng.uniform(2.0, 5.0)),
                     variation=float(rng.uniform(0.15, 0.4)))


def _shell(distance: np.ndarray, inner: np.ndarray, outer: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Partial-volume fraction of the layer between ``inner`` and ``outer`` mm outside a surface.

    ``distance`` is the centre-to-centre distance (mm) of an outside voxel to the nearest inside voxel,
    so the voxel spans ``[distance - voxel, distance]`` mm from the surface (half a voxel beyond the
    inside voxels' centres); its fraction is the overlap of that span with the layer.
    """
    lo, hi = distance - voxel_mm, distance
    overlap = np.minimum(hi, outer) - np.maximum(lo, inner)
    return (np.clip(overlap, 0.0, voxel_mm) / voxel_mm).astype(np.float32)


def add_extracerebral_csf(anatomy: Anatomy, rng: np.random.Generator, shape: HeadShape) -> Anatomy:
    """The anatomy with a CSF rim of ``shape.csf_mm`` (varying over the surface) around the brain.

    The rim takes its fraction from the background; tissue labels are recomputed.
    """
    geom = anatomy.geometry
    voxel = float(np.mean(geom.spacing))
    brain = anatomy.fractions[0] < 0.5
    dist = distance_mm(brain, geom)
    width = shape.csf_mm * (1.0 + shape.variation * np.clip(smooth_noise(rng, geom, 15.0), -2.0, 2.0))
    rim = _shell(dist, np.zeros_like(dist), np.maximum(width, 0.0), voxel) * (dist > 0)
    fr = anatomy.fractions.copy()
    add = np.minimum(rim, fr[0])
    fr[0] -= add
    fr[CSF] += add
    tissue = np.argmax(fr, axis=0).astype(np.uint8)
    return replace(anatomy, fractions=fr, tissue=tissue)


def head_fractions(anatomy: Anatomy, rng: np.random.Generator, shape: HeadShape) -> np.ndarray:
    """Fractions of scalp, fat and skull (:data:`HEAD_CLASSES`) outside the intracranial volume.

    Layers from inside out: skull, fat, scalp, starting at the outer edge of brain + CSF. The
    caller takes their fractions from the background.

    Returns:
        ``(3, D, H, W)`` float32, summing to at most the background fraction.
    """
    geom = anatomy.geometry
    voxel = float(np.mean(geom.spacing))
    inside = anatomy.fractions[0] < 0.5
    dist = distance_mm(inside, geom)
    layers = []
    for thickness in (shape.skull_mm, shape.fat_mm, shape.scalp_mm):
        vary = 1.0 + shape.variation * np.clip(smooth_noise(rng, geom, 20.0), -2.0, 2.0)
        layers.append(np.maximum(thickness * vary, 0.5))
    edges = np.cumsum(np.stack(layers), axis=0)
    zero = np.zeros_like(dist)
    skull = _shell(dist, zero, edges[0], voxel)
    fat = _shell(dist, edges[0], edges[1], voxel)
    scalp = _shell(dist, edges[1], edges[2], voxel)
    out = np.stack([scalp, fat, skull]) * (dist > 0)
    total = out.sum(axis=0)
    room = anatomy.fractions[0]
    scale = np.where(total > room, room / np.maximum(total, 1e-6), 1.0)
    return (out * scale[None]).astype(np.float32)


__all__ = ["HEAD_CLASSES", "HeadShape", "add_extracerebral_csf", "draw_head_shape", "head_fractions"]
