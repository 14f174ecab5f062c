"""Lesions on a subject anatomy: white matter hyperintensities (WMH) and tumours with edema.

* WMH are confined to voxels labelled white matter: periventricular caps and bands (more at the
  frontal and occipital horns, thicker with higher load) plus deep punctate lesions.
* A tumour is a core (solid / enhancing part, optionally a necrotic centre) with surrounding edema
  that spreads along white matter: edema is the region reached within a travel distance when
  moving fast through WM, slowly through GM and hardly through CSF (fast marching).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ACELib.io.image import Geometry
from ACELib.phantoms.anatomy import GM, WM, Anatomy, distance_mm
from ACELib.phantoms.fields import physical_axes, smooth_noise

# Speed of edema spread per tissue, relative to white matter (fast marching).
EDEMA_SPEED = {"CSF": 0.02, "GM": 0.15, "WM": 1.0}


def wmh_mask(rng: np.random.Generator, anatomy: Anatomy, load_ml: float, *,
             periventricular_share: float = 0.75, decay_mm: float = 5.0) -> np.ndarray:
    """White matter hyperintensities of about ``load_ml`` millilitres inside the anatomy's white matter.

    Args:
        load_ml: target lesion volume (>= 0); the result is within a few voxels of it (more when
            punctate lesions round up) unless the white matter is too small.
        periventricular_share: part of the load placed around the ventricles; the rest is deep
            punctate lesions.
        decay_mm: how fast the periventricular lesion likelihood falls with distance to the ventricles.

    Returns:
        ``(D, H, W)`` bool, a subset of ``anatomy.tissue == WM``.

    Raises:
        ValueError: ``load_ml`` negative or ``periventricular_share`` outside [0, 1].
    """
    if load_ml < 0:
        raise ValueError(f"load_ml must be >= 0, got {load_ml}")
    if not 0.0 <= periventricular_share <= 1.0:
        raise ValueError(f"periventricular_share must be in [0, 1], got {periventricular_share}")
    geom = anatomy.geometry
    wm = anatomy.tissue == WM
    n_total = min(int(round(load_ml / anatomy.voxel_ml)), int(wm.sum()))
    mask = np.zeros(geom.shape, dtype=bool)
    if n_total == 0:
        return mask
    dist = distance_mm(anatomy.ventricles, geom)
    n_pv = int(round(periventricular_share * n_total)) if anatomy.ventricles.any() else 0
    if n_pv:
        _, y, _ = physical_axes(geom)
        ys = np.broadcast_to(y, geom.shape)[anatomy.ventricles]
        half = max(float(ys.max() - ys.min()) / 2.0, geom.spacing[1])
        caps = np.clip(np.abs(y - float(np.median(ys))) / half, 0.0, 1.5)
        noise = smooth_noise(rng, geom, max(3.0, 2.0 * geom.spacing[0]))
        score = -dist / decay_mm + 1.2 * caps + 0.6 * noise
        mask |= _top(score, wm, n_pv)
    n_deep = n_total - int(mask.sum())
    if n_deep > 0:
        deep = wm & ~mask & (dist > 8.0) & (anatomy.fractions[WM] > 0.7)
        if not deep.any():
            deep = wm & ~mask
        mask |= _punctate(rng, geom, deep, n_deep)
    missing = n_total - int(mask.sum())
    if missing > 0:  # blobs overlapped or were clipped by the white matter: grow the lesions to the load
        grow = distance_mm(mask, geom) + rng.uniform(0.0, 0.5 * geom.spacing[0], geom.shape)
        mask |= _top(-grow, wm & ~mask, missing)
    return mask & wm


def _top(score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` allowed voxels of highest score."""
    values = score[allowed]
    n = min(n, values.size)
    out = np.zeros(score.shape, dtype=bool)
    if n == 0:
        return out
    thr = np.partition(values, values.size - n)[values.size - n]
    out[allowed] = values >= thr
    return out


def _punctate(rng: np.random.Generator, geom: Geometry, allowed: np.ndarray, n_voxels: int) -> np.ndarray:
    """Small roundish blobs inside ``allowed`` totalling about ``n_voxels`` voxels."""
    voxel_ml = float(np.prod(geom.spacing)) / 1000.0
    total_ml = n_voxels * voxel_ml
    count = 1 + rng.poisson(2.0 + 1.5 * total_ml)
    sizes = rng.dirichlet(np.full(count, 1.5)) * n_voxels
    candidates = np.argwhere(allowed)
    out = np.zeros(geom.shape, dtype=bool)
    spacing_zyx = np.asarray(geom.spacing[::-1])
    for size in sizes:
        centre = candidates[rng.integers(len(candidates))]
        radius = (3.0 * max(size, 1.0) * voxel_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
        axes = radius * rng.uniform(0.7, 1.3, 3)
        reach = np.ceil(axes.max() / spacing_zyx).astype(int) + 1
        lo = np.maximum(centre - reach, 0)
        hi = np.minimum(centre + reach + 1, geom.shape)
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        rho = sum(((g - c) * s / a) ** 2 for g, c, s, a in zip(grids, centre, spacing_zyx, axes))
        blob = rho <= 1.0
        blob[tuple(centre - lo)] = True
        region = tuple(slice(a, b) for a, b in zip(lo, hi))
        out[region] |= blob & allowed[region]
    return out


def pick_tumour_centre(rng: np.random.Generator, tissue: np.ndarray, geometry: Geometry,
                       radius_mm: float) -> tuple[int, int, int]:
    """A random white matter voxel, at least ``0.8 * radius_mm`` inside the brain where possible.

    Args:
        tissue: ``(D, H, W)`` tissue labels (0 background, 3 WM).

    Returns:
        The voxel index ``(z, y, x)``.

    Raises:
        ValueError: there is no white matter.
    """
    inside = distance_mm(tissue == 0, geometry)
    wm = tissue == WM
    for margin in (0.8 * radius_mm, 0.4 * radius_mm, 0.0):
        candidates = np.argwhere(wm & (inside > margin))
        if len(candidates):
            break
    else:
        raise ValueError("the anatomy holds no white matter voxel to place a tumour in")
    z, y, x = candidates[rng.integers(len(candidates))]
    return int(z), int(y), int(x)


def tumour_core(rng: np.random.Generator, anatomy: Anatomy, centre_mm: Sequence[float], radius_mm: float,
                necrosis_fraction: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """An irregular ellipsoidal tumour core of mean radius ``radius_mm`` around ``centre_mm``.

    Args:
        necrosis_fraction: relative radius of a necrotic centre (0: none, < 1).

    Returns:
        ``(core, necrosis)``: ``(D, H, W)`` bool maps inside the brain; ``necrosis`` is within ``core``.
    """
    if radius_mm <= 0:
        raise ValueError(f"radius_mm must be > 0, got {radius_mm}")
    if not 0.0 <= necrosis_fraction < 1.0:
        raise ValueError(f"necrosis_fraction must be in [0, 1), got {necrosis_fraction}")
    geom = anatomy.geometry
    x, y, z = physical_axes(geom)
    axes = radius_mm * rng.uniform(0.75, 1.25, 3)
    rho = np.sqrt(((x - centre_mm[0]) / axes[0]) ** 2 + ((y - centre_mm[1]) / axes[1]) ** 2
                  + ((z - centre_mm[2]) / axes[2]) ** 2)
    rho = rho + 0.25 * smooth_noise(rng, geom, max(radius_mm / 2.0, 2.0 * geom.spacing[0]))
    brain = anatomy.tissue > 0
    core = (rho < 1.0) & brain
    centre_idx = _index(geom, centre_mm)
    core[centre_idx] = brain[centre_idx] or core[centre_idx]
    necrosis = core & (rho < necrosis_fraction)
    return core, necrosis


def _index(geom: Geometry, point_mm: Sequence[float]) -> tuple[int, int, int]:
    xyz = np.rint((np.asarray(point_mm) - np.asarray(geom.origin)) / np.asarray(geom.spacing)).astype(int)
    xyz = np.clip(xyz, 0, np.asarray(geom.size) - 1)
    return int(xyz[2]), int(xyz[1]), int(xyz[0])


def edema_mask(rng: np.random.Generator, anatomy: Anatomy, core: np.ndarray, extent_mm: float) -> np.ndarray:
    """Edema around ``core``: voxels reached within ``extent_mm`` of white-matter travel.

    The travel time from the core (fast marching) uses speeds :data:`EDEMA_SPEED` weighted by the
    tissue fractions, so edema follows white matter tracts, rarely enters grey matter and stops at
    CSF. A smooth random field roughens its border.

    Returns:
        ``(D, H, W)`` bool on GM or WM voxels, outside ``core``.
    """
    if extent_mm < 0:
        raise ValueError(f"extent_mm must be >= 0, got {extent_mm}")
    geom = anatomy.geometry
    tissue = anatomy.tissue
    if extent_mm == 0 or not core.any():
        return np.zeros(geom.shape, dtype=bool)
    f = anatomy.fractions
    speed = EDEMA_SPEED["CSF"] * f[1] + EDEMA_SPEED["GM"] * f[2] + EDEMA_SPEED["WM"] * f[3] + 1e-3
    surface = core & ~_eroded(core)
    seeds = np.argwhere(surface)[:, ::-1]  # (x, y, z) indices
    fm = sitk.FastMarchingImageFilter()
    fm.SetTrialPoints([[int(v) for v in s] for s in seeds])
    fm.SetStoppingValue(float(2.0 * extent_mm + 10.0 * geom.spacing[0]))
    travel = sitk.GetArrayFromImage(fm.Execute(geom.apply_to(sitk.GetImageFromArray(speed.astype(np.float32)))))
    travel = travel + 0.2 * extent_mm * smooth_noise(rng, geom, max(4.0, 2.0 * geom.spacing[0]))
    return (travel < extent_mm) & ~core & ((tissue == WM) | (tissue == GM))


def _eroded(mask: np.ndarray) -> np.ndarray:
    """6-neighbour binary erosion (voxels beyond the array count as outside)."""
    out = mask.copy()
    for axis in range(3):
        for shift in (1, -1):
            rolled = np.roll(mask, shift, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
            rolled[tuple(edge)] = False
            out &= rolled
    return out
