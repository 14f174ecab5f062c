"""Subject anatomy: the template deformed by a random affine and a smooth non-linear warp, with
optional ventricle enlargement (ageing) and the mass effect of a tumour.

Transforms are dense: the template point read by every subject voxel (see
:mod:`ACELib.phantoms.fields`), so the tissue maps are interpolated once per subject."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ACELib.io.image import Geometry
from ACELib.phantoms.fields import grid_points, random_affine, random_displacement, sample, smooth
from ACELib.phantoms.template import Template

CSF, GM, WM = 1, 2, 3


@dataclass(frozen=True)
class Anatomy:
    """One subject's healthy tissue.

    Attributes:
        fractions: ``(4, D, H, W)`` float32 background/CSF/GM/WM fractions summing to 1.
        tissue: ``(D, H, W)`` uint8 tissue labels: 0 background, 1 CSF, 2 GM, 3 WM (largest fraction).
        ventricles: ``(D, H, W)`` bool, CSF voxels of the ventricles.
        geometry: the grid.
    """

    fractions: np.ndarray
    tissue: np.ndarray
    ventricles: np.ndarray
    geometry: Geometry

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.geometry.spacing)) / 1000.0


@dataclass(frozen=True)
class Deformation:
    """How a subject differs from the template: a map from subject points ``p`` to template points.

    ``q = matrix @ (p + displacement(p) - centre) + centre + translation``, then the ventricles are
    widened by pushing ``q`` by ``enlargement_mm`` into them (:func:`ventricle_enlargement`).

    Attributes:
        matrix: ``(3, 3)`` linear part (rotation and scaling).
        centre: ``(3,)`` point (mm) the linear part acts about (the brain centre).
        translation: ``(3,)`` mm.
        displacement: ``(3, D, H, W)`` smooth non-linear displacement (mm), or None.
        enlargement_mm: ventricle widening (mm, >= 0).
    """

    matrix: np.ndarray
    centre: np.ndarray
    translation: np.ndarray
    displacement: np.ndarray | None = None
    enlargement_mm: float = 0.0


def random_deformation(rng: np.random.Generator, template: Template, *, rotation_deg: float = 6.0,
                       scale: float = 0.08, translation_mm: float = 4.0, warp_mm: float = 3.0,
                       warp_smoothness_mm: float = 25.0, enlargement_mm: float = 0.0) -> Deformation:
    """A random subject: affine variation about the brain centre and a smooth non-linear warp.

    Args:
        rotation_deg, scale: see :func:`~ACELib.phantoms.fields.random_affine`.
        translation_mm: translation up to this much along each axis.
        warp_mm: standard deviation of the non-linear displacement (0: none).
        warp_smoothness_mm: its spatial smoothness (Gaussian sigma).
        enlargement_mm: ventricle widening.

    Raises:
        ValueError: a negative size.
    """
    for name, value in (("rotation_deg", rotation_deg), ("scale", scale), ("translation_mm", translation_mm),
                        ("warp_mm", warp_mm), ("enlargement_mm", enlargement_mm)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    matrix = random_affine(rng, rotation_deg, scale)
    translation = rng.uniform(-translation_mm, translation_mm, 3)
    disp = random_displacement(rng, template.geometry, warp_mm, warp_smoothness_mm) if warp_mm > 0 else None
    return Deformation(matrix, template.centre_mm(), translation, disp, float(enlargement_mm))


@functools.lru_cache(maxsize=4)
def _ventricle_push(template: Template) -> np.ndarray:
    """``(3, D, H, W)`` unit-maximum field pointing into the ventricles (gradient of their smoothed mask)."""
    geom = template.geometry
    sigma = max(6.0, 1.5 * template.spacing)
    soft = smooth(template.ventricles, geom, sigma).astype(np.float64)
    sx, sy, sz = geom.spacing
    gz, gy, gx = np.gradient(soft, sz, sy, sx)
    field = np.stack([gx, gy, gz]).astype(np.float32)
    peak = float(np.sqrt((field**2).sum(axis=0)).max())
    field = field / peak if peak > 0 else field
    field.flags.writeable = False
    return field


def ventricle_enlargement(template: Template, points: np.ndarray, enlargement_mm: float) -> np.ndarray:
    """Template points moved so that the ventricles look about ``enlargement_mm`` wider.

    Each point reads from a little further into the ventricles, which grows them; the push follows
    the gradient of their smoothed mask and fades away from them.

    Args:
        points: ``(3, ...)`` template-space points (mm).

    Returns:
        ``(3, ...)`` float32 points.
    """
    if enlargement_mm < 0:
        raise ValueError(f"enlargement_mm must be >= 0, got {enlargement_mm}")
    if enlargement_mm == 0:
        return points
    return points + enlargement_mm * sample(_ventricle_push(template), template.geometry, points)


def mass_effect(points: np.ndarray, centre_mm: Sequence[float], radius_mm: float,
                strength: float = 0.5) -> np.ndarray:
    """Radial push of tissue away from a tumour centre (applied to the template points that subject
    voxels read, with the centre in the same space).

    Each point ``p`` reads from ``c + (p - c) * (1 - w(p))`` with ``w = strength * exp(-r^2 / 2 s^2)``
    and ``s = 1.5 * radius_mm``: tissue near the centre spreads outward, far tissue stays. The map is
    one-to-one for ``strength < 1``.

    Args:
        points: ``(3, ...)`` physical points (mm).

    Returns:
        ``(3, ...)`` float32 points.

    Raises:
        ValueError: ``strength`` not in [0, 1) or ``radius_mm`` not positive.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"strength must be in [0, 1), got {strength}")
    if radius_mm <= 0:
        raise ValueError(f"radius_mm must be > 0, got {radius_mm}")
    c = np.asarray(centre_mm, dtype=np.float32).reshape(3, *([1] * (points.ndim - 1)))
    rel = points - c
    w = strength * np.exp(-(rel**2).sum(axis=0) / (2.0 * (1.5 * radius_mm) ** 2))
    return (c + rel * (1.0 - w)).astype(np.float32)


def source_points(template: Template, deformation: Deformation) -> np.ndarray:
    """Template point read by every subject voxel.

    Returns:
        ``(3, D, H, W)`` float32 template-space points.
    """
    p = grid_points(template.geometry)
    if deformation.displacement is not None:
        p = p + deformation.displacement
    c = np.asarray(deformation.centre, dtype=np.float32)[:, None]
    flat = p.reshape(3, -1) - c
    q = (deformation.matrix.astype(np.float32) @ flat + c + deformation.translation.astype(np.float32)[:, None])
    q = q.reshape(p.shape)
    return ventricle_enlargement(template, q, deformation.enlargement_mm)


def warp_anatomy(template: Template, points: np.ndarray) -> Anatomy:
    """The template's tissue read at ``points`` (:func:`source_points`).

    Returns:
        The subject's :class:`Anatomy` on the template grid.
    """
    maps = np.concatenate([template.fractions[1:], template.ventricles[None]])
    csf, gm, wm, vent = np.clip(sample(maps, template.geometry, points), 0.0, 1.0)
    tissue = csf + gm + wm
    scale = np.maximum(tissue, 1.0)
    fractions = np.stack([1.0 - tissue / scale, csf / scale, gm / scale, wm / scale]).astype(np.float32)
    tissue = np.argmax(fractions, axis=0).astype(np.uint8)
    return Anatomy(fractions, tissue, (vent >= 0.5) & (tissue == CSF), template.geometry)


def distance_mm(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Distance (mm) from each voxel to the nearest voxel of ``mask`` (0 inside; large if it is empty).

    Returns:
        ``(D, H, W)`` float32.
    """
    if not mask.any():
        return np.full(mask.shape, 1e6, dtype=np.float32)
    img = geometry.apply_to(sitk.GetImageFromArray(mask.astype(np.uint8)))
    dist = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.maximum(sitk.GetArrayFromImage(dist), 0.0).astype(np.float32)
