"""Smoothing, smooth noise and point sampling on phantom grids (no template needed)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ACELib.io.image import Geometry
from ACELib.phantoms.fields import (
    grid_points,
    physical_axes,
    random_affine,
    random_displacement,
    sample,
    sample_nearest,
    smooth,
    smooth_noise,
)

GEOM = Geometry((13, 11, 9), (2.0, 1.5, 3.0), (-10.0, 5.0, 2.5))  # (x, y, z): arrays are (9, 11, 13)


def _to_index(points: np.ndarray, geom: Geometry) -> np.ndarray:
    """(3, N) physical (x, y, z) -> (3, N) continuous (z, y, x) indices."""
    idx = (points - np.asarray(geom.origin)[:, None]) / np.asarray(geom.spacing)[:, None]
    return idx[::-1]


def test_sample_at_grid_points_returns_the_maps():
    maps = np.random.default_rng(0).random((2, *GEOM.shape), dtype=np.float32)
    out = sample(maps, GEOM, grid_points(GEOM))
    np.testing.assert_allclose(out, maps, atol=1e-5)


def test_sample_matches_scipy_trilinear_inside_the_grid():
    rng = np.random.default_rng(1)
    vol = rng.random(GEOM.shape, dtype=np.float32)
    lo = np.asarray(GEOM.origin)
    hi = lo + np.asarray(GEOM.spacing) * (np.asarray(GEOM.size) - 1)
    pts = rng.uniform(lo, hi, (50, 3)).T.astype(np.float32)
    ref = ndimage.map_coordinates(vol.astype(np.float64), _to_index(pts.astype(np.float64), GEOM), order=1)
    np.testing.assert_allclose(sample(vol[None], GEOM, pts)[0], ref, atol=1e-5)


@pytest.mark.parametrize("default", [0.0, 1.0, -2.5])
def test_sample_outside_the_grid_gives_default(default):
    maps = np.ones((1, *GEOM.shape), dtype=np.float32)
    far = np.array([[-500.0, 0.0, 0.0], [0.0, 900.0, 0.0], [0.0, 0.0, -70.0]], dtype=np.float32).T
    np.testing.assert_allclose(sample(maps, GEOM, far, default=default)[0], default)


def test_sample_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"arrays must be \(K, D, H, W\)"):
        sample(np.zeros(GEOM.shape), GEOM, grid_points(GEOM))
    with pytest.raises(ValueError, match=r"points must be \(3, \.\.\.\)"):
        sample(np.zeros((1, *GEOM.shape)), GEOM, np.zeros((2, 5)))


def test_sample_nearest_rounds_to_the_closest_voxel():
    labels = np.arange(np.prod(GEOM.shape)).reshape(GEOM.shape)
    pts = grid_points(GEOM) + 0.3 * np.asarray(GEOM.spacing, dtype=np.float32)[:, None, None, None]
    np.testing.assert_array_equal(sample_nearest(labels, GEOM, pts), labels)
    assert sample_nearest(labels, GEOM, np.full((3, 1), 1e4, dtype=np.float32), default=-1)[0] == -1


def test_non_identity_direction_is_refused():
    oblique = Geometry(GEOM.size, GEOM.spacing, GEOM.origin, (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="identity direction"):
        physical_axes(oblique)


@pytest.mark.parametrize("sigma_voxels", [0.3, 0.6, 1.5])
def test_smooth_impulse_response_has_the_gaussian_variance(sigma_voxels):
    geom = Geometry((31, 31, 31), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    impulse = np.zeros(geom.shape, dtype=np.float32)
    impulse[15, 15, 15] = 1.0
    out = smooth(impulse, geom, sigma_voxels * 2.0)
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    profile = out.sum(axis=(0, 1))
    var = float((profile * (np.arange(31) - 15) ** 2).sum() / profile.sum())
    assert var == pytest.approx(sigma_voxels**2, rel=0.1)


def test_smooth_keeps_a_constant():
    np.testing.assert_allclose(smooth(np.full(GEOM.shape, 3.0), GEOM, 4.0), 3.0, rtol=1e-4)


@pytest.mark.parametrize("sigma_mm", [2.0, 7.0, 40.0])
def test_smooth_noise_is_standardised_reproducible_and_smooth(sigma_mm):
    geom = Geometry((33, 29, 27), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    a = smooth_noise(np.random.default_rng(5), geom, sigma_mm)
    b = smooth_noise(np.random.default_rng(5), geom, sigma_mm)
    c = smooth_noise(np.random.default_rng(6), geom, sigma_mm)
    assert a.shape == geom.shape and a.dtype == np.float32
    assert abs(float(a.mean())) < 1e-4 and float(a.std()) == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # neighbour correlation grows with sigma (white noise would give about 0)
    corr = float(np.corrcoef(a[:, :, :-1].ravel(), a[:, :, 1:].ravel())[0, 1])
    assert corr > 0.3


def test_smoother_noise_varies_more_slowly():
    geom = Geometry((40, 40, 40), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    diffs = [float(np.abs(np.diff(smooth_noise(np.random.default_rng(0), geom, s), axis=2)).mean())
             for s in (3.0, 10.0, 30.0)]
    assert diffs[0] > diffs[1] > diffs[2]


def test_smooth_noise_rejects_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma_mm must be > 0"):
        smooth_noise(np.random.default_rng(0), GEOM, 0.0)


def test_random_affine_is_a_scaled_rotation():
    m = random_affine(np.random.default_rng(2), rotation_deg=10.0, scale=0.1)
    singular = np.linalg.svd(m, compute_uv=False)
    assert np.all((singular > 0.89) & (singular < 1.11))
    assert np.linalg.det(m) > 0


def test_random_displacement_has_requested_size():
    d = random_displacement(np.random.default_rng(3), GEOM, std_mm=2.5, smoothness_mm=6.0)
    assert d.shape == (3, *GEOM.shape)
    np.testing.assert_allclose(d.reshape(3, -1).std(axis=1), 2.5, rtol=1e-3)
