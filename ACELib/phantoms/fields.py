"""Random smooth fields, Gaussian smoothing and point sampling on a phantom grid.

Every function takes ``(D, H, W)`` arrays and the grid's :class:`~ACELib.io.image.Geometry`.
Phantom grids have identity direction, so physical point (LPS mm) = origin + spacing * index, with
index in ``(x, y, z)`` order. A spatial transform is represented densely, as the source point of
every grid voxel: a ``(3, D, H, W)`` array of ``(x, y, z)`` millimetres, which :func:`sample` reads
maps at (trilinear). Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ACELib.io.image import Geometry, to_sitk


def physical_axes(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical coordinates ``(x, y, z)`` of the grid, broadcastable to ``(D, H, W)``.

    Raises:
        ValueError: the grid's direction is not the identity.
    """
    if not np.allclose(geometry.direction, np.eye(3).reshape(-1)):
        raise ValueError(f"phantom grids have identity direction, got {geometry.direction}")
    (ox, oy, oz), (sx, sy, sz) = geometry.origin, geometry.spacing
    d, h, w = geometry.shape
    x = (ox + sx * np.arange(w, dtype=np.float32))[None, None, :]
    y = (oy + sy * np.arange(h, dtype=np.float32))[None, :, None]
    z = (oz + sz * np.arange(d, dtype=np.float32))[:, None, None]
    return x, y, z


def smooth(array: np.ndarray, geometry: Geometry, sigma_mm: float | Sequence[float]) -> np.ndarray:
    """Gaussian smoothing with standard deviation ``sigma_mm`` (one value or one per ``(x, y, z)``).

    Returns:
        ``(D, H, W)`` float32; a copy of the input when every sigma is below a tenth of a voxel.
    """
    sig = np.broadcast_to(np.asarray(sigma_mm, dtype=np.float64), (3,))
    voxels = sig / np.asarray(geometry.spacing)
    if np.all(voxels < 0.1):
        return np.array(array, dtype=np.float32)
    if np.all(voxels <= 0.7):
        return _blur3(np.asarray(array, dtype=np.float32), voxels[::-1])
    sig = np.maximum(sig, 1e-3 * np.asarray(geometry.spacing))
    img = to_sitk(np.asarray(array, dtype=np.float32), geometry)
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, [float(s) for s in sig]))


def _blur3(array: np.ndarray, sigma_voxels_zyx: np.ndarray) -> np.ndarray:
    """Separable 3-tap blur ``[a, 1 - 2a, a]`` with ``a = sigma^2 / 2`` (the Gaussian's variance, for
    sigma up to about 0.7 voxel); borders repeat the edge voxel."""
    out = array.copy()
    for axis, sig in enumerate(sigma_voxels_zyx):
        a = np.float32(min(sig * sig / 2.0, 1.0 / 3.0))
        if a <= 0 or out.shape[axis] < 2:
            continue
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        prev = np.concatenate([np.take(out, [0], axis=axis), out[tuple(lo)]], axis=axis)
        nxt = np.concatenate([out[tuple(hi)], np.take(out, [-1], axis=axis)], axis=axis)
        out = (1 - 2 * a) * out + a * (prev + nxt)
    return out.astype(np.float32, copy=False)


def smooth_noise(rng: np.random.Generator, geometry: Geometry, sigma_mm: float) -> np.ndarray:
    """White noise smoothed with a Gaussian of ``sigma_mm``, rescaled to zero mean and unit std.

    Fields smoother than two voxels are made on a coarse grid (spacing ``sigma_mm / 2``, reaching
    ``2 * sigma_mm`` beyond the grid) and linearly interpolated, which is far cheaper than smoothing
    at full size.

    Returns:
        ``(D, H, W)`` float32.
    """
    if sigma_mm <= 0:
        raise ValueError(f"sigma_mm must be > 0, got {sigma_mm}")
    spacing = np.asarray(geometry.spacing, dtype=np.float64)
    step = sigma_mm / 2.0
    if step <= spacing.max():
        field = smooth(rng.standard_normal(geometry.shape, dtype=np.float32), geometry, sigma_mm)
    else:
        pad = 2.0 * sigma_mm
        extent = spacing * (np.asarray(geometry.size) - 1)
        size = [int(np.ceil((e + 2 * pad) / step)) + 1 for e in extent]
        origin = np.asarray(geometry.origin) - pad
        coarse_geom = Geometry(tuple(size), (step,) * 3, tuple(float(o) for o in origin))
        field = smooth(rng.standard_normal(coarse_geom.shape, dtype=np.float32), coarse_geom, sigma_mm)
        for axis in range(3):  # x, y, z = array axes 2, 1, 0
            pos = (geometry.origin[axis] + spacing[axis] * np.arange(geometry.size[axis]) - origin[axis]) / step
            pos = np.clip(pos, 0.0, size[axis] - 1.0)
            lo = np.minimum(np.floor(pos).astype(np.int64), size[axis] - 2)
            frac = (pos - lo).astype(np.float32)
            shape = [1, 1, 1]
            shape[2 - axis] = -1
            frac = frac.reshape(shape)
            field = (1.0 - frac) * np.take(field, lo, axis=2 - axis) + frac * np.take(field, lo + 1, axis=2 - axis)
    field = field.astype(np.float32, copy=False)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def grid_points(geometry: Geometry) -> np.ndarray:
    """Physical position of every voxel.

    Returns:
        ``(3, D, H, W)`` float32, ``(x, y, z)`` LPS millimetres.
    """
    return np.stack(np.broadcast_arrays(*physical_axes(geometry))).astype(np.float32)


def sample(arrays: np.ndarray, geometry: Geometry, points: np.ndarray,
           default: Sequence[float] | float = 0.0) -> np.ndarray:
    """Trilinear interpolation of maps on ``geometry`` at arbitrary physical points.

    Args:
        arrays: ``(K, D, H, W)`` maps sharing ``geometry``.
        points: ``(3, ...)`` physical ``(x, y, z)`` points (e.g. ``(3, D, H, W)`` source points).
        default: value of each map outside the grid (one for all, or one per map); the maps fade to
            it over the last voxel.

    Returns:
        ``(K, ...)`` float32.
    """
    arrays = np.asarray(arrays, dtype=np.float32)
    if arrays.ndim != 4 or arrays.shape[1:] != geometry.shape:
        raise ValueError(f"arrays must be (K, D, H, W) with (D, H, W) = {geometry.shape}, got {arrays.shape}")
    if points.shape[0] != 3:
        raise ValueError(f"points must be (3, ...) physical (x, y, z), got shape {points.shape}")
    physical_axes(geometry)  # checks the identity direction
    k = arrays.shape[0]
    defaults = np.broadcast_to(np.asarray(default, dtype=np.float32), (k,))
    # maps minus their default, surrounded by one voxel of 0: outside points read 0
    padded = np.pad(arrays - defaults[:, None, None, None], ((0, 0), (1, 1), (1, 1), (1, 1)))
    flat = padded.reshape(k, -1)
    d, h, w = geometry.shape
    pts = points.reshape(3, -1)
    base = np.zeros(pts.shape[1], dtype=np.int64)
    weights = []
    for axis, n in zip((2, 1, 0), (d, h, w)):  # z, y, x
        pos = (pts[axis] - geometry.origin[axis]) / geometry.spacing[axis] + 1.0
        pos = np.clip(pos, 0.0, n + 1.0)
        lo = np.minimum(np.floor(pos).astype(np.int64), n)
        base = base * (n + 2) + lo
        frac = (pos - lo).astype(np.float32)
        weights.append((1.0 - frac, frac))
    out = np.zeros((k, pts.shape[1]), dtype=np.float32)
    for dz in (0, 1):
        for dy in (0, 1):
            wzy = weights[0][dz] * weights[1][dy]
            for dx in (0, 1):
                index = base + ((dz * (h + 2) + dy) * (w + 2) + dx)
                weight = wzy * weights[2][dx]
                for c in range(k):  # np.take per map is the fastest gather
                    out[c] += np.take(flat[c], index) * weight
    out += defaults[:, None]
    return out.reshape(k, *points.shape[1:])


def sample_nearest(labels: np.ndarray, geometry: Geometry, points: np.ndarray, default: int = 0) -> np.ndarray:
    """Nearest-neighbour lookup of a ``(D, H, W)`` map at physical ``points`` ``(3, ...)``.

    Returns:
        array of shape ``points.shape[1:]`` and the dtype of ``labels``; ``default`` outside the grid.
    """
    physical_axes(geometry)  # checks the identity direction
    pts = points.reshape(3, -1)
    d, h, w = geometry.shape
    flat_index = np.zeros(pts.shape[1], dtype=np.int64)
    outside = np.zeros(pts.shape[1], dtype=bool)
    for axis, n in zip((2, 1, 0), (d, h, w)):
        idx = np.rint((pts[axis] - geometry.origin[axis]) / geometry.spacing[axis]).astype(np.int64)
        outside |= (idx < 0) | (idx >= n)
        flat_index = flat_index * n + np.clip(idx, 0, n - 1)
    out = np.take(labels.reshape(-1), flat_index)
    out[outside] = default
    return out.reshape(points.shape[1:])


def random_affine(rng: np.random.Generator, rotation_deg: float, scale: float) -> np.ndarray:
    """A random ``(3, 3)`` matrix: per-axis scaling within ``1 +- scale``, then rotations of up to
    ``rotation_deg`` about each axis."""
    angles = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx @ np.diag(rng.uniform(1 - scale, 1 + scale, 3))


def random_displacement(rng: np.random.Generator, geometry: Geometry, std_mm: float,
                        smoothness_mm: float = 25.0) -> np.ndarray:
    """A smooth random displacement field: each component is Gaussian-smoothed noise of ``std_mm``.

    Returns:
        ``(3, D, H, W)`` float32, ``(x, y, z)`` millimetres.
    """
    return np.stack([std_mm * smooth_noise(rng, geometry, smoothness_mm) for _ in range(3)])
