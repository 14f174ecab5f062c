"""Metrics of one binary mask against another: Dice, HD95, absolute volume difference.

Conventions, stated once for the whole metrics package:

* Masks are boolean (or integer, non-zero = inside) numpy arrays ``(D, H, W)`` = ``(z, y, x)``;
  ``spacing`` is in millimetres in ``(x, y, z)`` order, exactly ``Geometry.spacing`` (SimpleITK's
  order), so it is passed to SimpleITK unchanged.
* **Dice** ``= 2 |P ∩ G| / (|P| + |G|)``.
* **HD95** (mm): the symmetric 95th-percentile Hausdorff distance between the *surfaces* of the two
  masks, ``max(p95(d(S_P -> S_G)), p95(d(S_G -> S_P)))`` as in the WMH challenge and MONAI
  (``np.percentile``, linear interpolation). A surface voxel is a mask voxel with at least one of
  its 6 face neighbours outside the mask; outside the image counts as outside. Distances are between
  voxel centres, in mm (Euclidean distance maps from SimpleITK's ``SignedMaurerDistanceMap``).
* **AVD** (%): absolute volume difference relative to the reference, ``|V_P - V_G| / V_G * 100``
  (WMH challenge). Volumes are also reported in mL.

Edge-case policy (tested):

==================  =====  ======  ======
case                Dice   HD95    AVD
==================  =====  ======  ======
both masks empty    1.0    0.0     0.0
reference empty,    0.0    inf     inf
prediction not
prediction empty,   0.0    inf     100.0
reference not
==================  =====  ======  ======

``inf`` marks a distance or ratio that does not exist (the distance to an empty set). Summary
statistics (:func:`ACELib.metrics.evaluation.summarize`) average the finite values only and report
how many were left out, so a missed structure is visible rather than silently averaged away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class MaskCounts:
    """Voxel counts of a prediction ``P`` against a reference ``G``."""

    tp: int
    fp: int
    fn: int

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp

    @property
    def n_ref(self) -> int:
        return self.tp + self.fn


def _as_mask(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be a boolean or numeric mask, got dtype {arr.dtype}")
    return arr != 0


def _check_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = _as_mask(pred, "pred_mask"), _as_mask(gt, "gt_mask")
    if p.shape != g.shape:
        raise ValueError(f"pred_mask has shape {p.shape}, gt_mask has shape {g.shape}; they must match")
    return p, g


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """``spacing`` as three positive finite floats ``(x, y, z)``, or ``ValueError``."""
    try:
        sp = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing must be three positive numbers (x, y, z) in mm, got {spacing!r}") from None
    if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be three positive numbers (x, y, z) in mm, got {spacing!r}")
    return sp  # type: ignore[return-value]


def mask_counts(pred_mask, gt_mask) -> MaskCounts:
    """True positives, false positives and false negatives of two masks of one shape (any ndim)."""
    p, g = _check_pair(pred_mask, gt_mask)
    tp = int(np.count_nonzero(p & g))
    return MaskCounts(tp=tp, fp=int(np.count_nonzero(p)) - tp, fn=int(np.count_nonzero(g)) - tp)


def dice_from_counts(c: MaskCounts) -> float:
    denominator = 2 * c.tp + c.fp + c.fn
    return 1.0 if denominator == 0 else 2.0 * c.tp / denominator


def dice(pred_mask, gt_mask) -> float:
    """Dice overlap of two masks of one shape; 1.0 when both are empty.

    Raises:
        ValueError: the shapes differ.
    """
    return dice_from_counts(mask_counts(pred_mask, gt_mask))


def voxel_volume_ml(spacing: Sequence[float]) -> float:
    """Volume of one voxel in mL (spacing in mm)."""
    x, y, z = check_spacing(spacing)
    return x * y * z / 1000.0


def avd_from_volumes(v_pred: float, v_ref: float) -> float:
    """``|v_pred - v_ref| / v_ref * 100`` (%); 0 when both are 0, ``inf`` when only ``v_ref`` is 0."""
    if v_ref == 0:
        return 0.0 if v_pred == 0 else float("inf")
    return abs(v_pred - v_ref) / v_ref * 100.0


def absolute_volume_difference(pred_mask, gt_mask, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """Absolute volume difference in percent of the reference volume (see the module's edge cases).

    Args:
        pred_mask, gt_mask: masks of one shape.
        spacing: voxel size in mm; the ratio does not depend on it, it is checked for consistency.
    """
    c = mask_counts(pred_mask, gt_mask)
    unit = voxel_volume_ml(spacing)
    return avd_from_volumes(c.n_pred * unit, c.n_ref * unit)


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a 3D boolean mask: inside voxels with a face neighbour outside (or off the image)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~interior


def _distance_to(surface_mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Euclidean distance (mm) from every voxel centre to the nearest voxel of ``surface_mask``."""
    img = sitk.GetImageFromArray(surface_mask.astype(np.uint8))
    img.SetSpacing(spacing)
    dist = sitk.SignedMaurerDistanceMap(
        img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True, backgroundValue=0
    )
    # surface voxels themselves get <= 0 (they are the object); they are at distance 0
    return np.maximum(sitk.GetArrayFromImage(dist), 0.0)


def surface_distances(pred_mask, gt_mask, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: ``(from each pred surface voxel to gt, from each gt surface voxel to pred)``.

    Both masks must be non-empty and 3D. Work is restricted to the bounding box of the two masks.
    """
    p, g = _check_pair(pred_mask, gt_mask)
    if p.ndim != 3:
        raise ValueError(f"surface distances need 3D masks (D, H, W), got shape {p.shape}")
    sp = check_spacing(spacing)
    union = p | g
    if not p.any() or not g.any():
        raise ValueError("surface distances need two non-empty masks")
    lo = [int(np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != ax))).min()) for ax in range(3)]
    hi = [int(np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != ax))).max()) + 1 for ax in range(3)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    # surfaces are taken on the full image (a mask cut by the crop must not gain a false surface)
    sp_surf, sg_surf = surface(p)[box], surface(g)[box]
    d_to_g = _distance_to(sg_surf, sp)
    d_to_p = _distance_to(sp_surf, sp)
    return d_to_g[sp_surf], d_to_p[sg_surf]


def hd95(pred_mask, gt_mask, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """Symmetric 95th-percentile Hausdorff distance (mm) between the surfaces of two 3D masks.

    Args:
        pred_mask, gt_mask: ``(D, H, W)`` masks of one shape.
        spacing: voxel size in mm, ``(x, y, z)`` order (``Geometry.spacing``).

    Returns:
        HD95 in mm; 0.0 when both masks are empty, ``inf`` when exactly one is.

    Raises:
        ValueError: shapes differ, masks are not 3D, or the spacing is not three positive numbers.
    """
    p, g = _check_pair(pred_mask, gt_mask)
    if p.ndim != 3:
        raise ValueError(f"hd95 needs 3D masks (D, H, W), got shape {p.shape}")
    check_spacing(spacing)
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 0.0
    if not has_p or not has_g:
        return float("inf")
    d_pg, d_gp = surface_distances(p, g, spacing)
    return float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))
