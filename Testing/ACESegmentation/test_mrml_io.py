"""Volume nodes <-> arrays and ACELib geometries, with oblique grids and parent transforms."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from ACESegmentationLib import mrml_io  # noqa: E402
from mrml_helpers import addVolume, obliqueTransform, rotation  # noqa: E402

from ACELib.io.image import Geometry, read_image, write_image  # noqa: E402

SHAPE = (7, 9, 11)  # (D, H, W), odd sizes


def _voxels(seed: int = 0, shape=SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 20, size=shape).astype(np.float32)


GRIDS = {
    "axis-aligned": dict(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), directions=None, transform=None),
    "anisotropic": dict(spacing=(0.9, 1.1, 2.5), origin=(-40.0, 12.5, 3.0), directions=None, transform=None),
    "oblique": dict(spacing=(0.9, 1.1, 2.5), origin=(-40.0, 12.5, 3.0), directions=rotation("y", 23.0),
                    transform=None),
    "oblique+transform": dict(spacing=(0.9, 1.1, 2.5), origin=(-40.0, 12.5, 3.0),
                              directions=rotation("y", 23.0), transform=obliqueTransform()),
}


@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
def test_volume_geometry_maps_voxels_like_slicer(slicerContext, grid):
    node = addVolume(slicerContext.scene, _voxels(), **grid)
    geometry = mrml_io.volumeGeometry(node)
    # Slicer's own world position of voxel (i, j, k), via its IJK-to-RAS and parent transforms
    ijk = np.array([3.0, 5.0, 2.0, 1.0])
    world = mrml_io.parentToWorld(node) @ mrml_io.localIJKToRAS(node) @ ijk
    lps = geometry.index_to_physical() @ ijk
    np.testing.assert_allclose(lps[:3], world[:3] * np.array([-1, -1, 1]), atol=1e-9)
    assert geometry.size == (SHAPE[2], SHAPE[1], SHAPE[0])
    assert geometry.shape == SHAPE


def test_geometry_matches_simpleitk_file_roundtrip(slicerContext, tmp_path):
    """A NIfTI written from the node's array and geometry reads back with the same geometry."""
    grid = GRIDS["oblique+transform"]
    node = addVolume(slicerContext.scene, _voxels(), **grid)
    geometry = mrml_io.volumeGeometry(node)
    write_image(tmp_path / "t1.nii.gz", mrml_io.arrayFromVolumeNode(node), geometry)
    array, back = read_image(tmp_path / "t1.nii.gz")
    assert back.differences(geometry, tol=1e-5) == []
    np.testing.assert_array_equal(array, mrml_io.arrayFromVolumeNode(node))


@pytest.mark.parametrize("grid", GRIDS.values(), ids=GRIDS.keys())
def test_set_volume_from_array_is_bit_exact(slicerContext, grid):
    source = addVolume(slicerContext.scene, _voxels(1), **grid)
    geometry = mrml_io.volumeGeometry(source)
    target = slicerContext.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "copy")
    target.SetAndObserveTransformNodeID(source.GetTransformNodeID())
    mrml_io.setVolumeNodeFromArray(target, mrml_io.arrayFromVolumeNode(source), geometry)
    np.testing.assert_array_equal(mrml_io.arrayFromVolumeNode(target), mrml_io.arrayFromVolumeNode(source))
    np.testing.assert_allclose(mrml_io.localIJKToRAS(target), mrml_io.localIJKToRAS(source), atol=1e-9)
    assert mrml_io.volumeGeometry(target).differences(geometry, tol=1e-9) == []


def test_read_volumes_stacks_channels_in_order(slicerContext):
    grid = GRIDS["oblique+transform"]
    t1 = addVolume(slicerContext.scene, _voxels(1), "T1", **grid)
    flair = addVolume(slicerContext.scene, _voxels(2).astype(np.int16), "FLAIR", **grid)
    image, geometry = mrml_io.readVolumes([t1, flair])
    assert image.shape == (2, *SHAPE) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0], _voxels(1))
    np.testing.assert_array_equal(image[1], _voxels(2).astype(np.int16).astype(np.float32))
    assert geometry == mrml_io.volumeGeometry(t1)


MISMATCHES = {
    "spacing": dict(spacing=(1.0, 1.0, 2.0)),
    "origin": dict(origin=(1.0, 0.0, 0.0)),
    "direction": dict(directions=rotation("z", 5.0)),
    "transform": dict(transform=obliqueTransform()),
}


@pytest.mark.parametrize("change", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_mismatched_geometry_is_a_clear_error(slicerContext, change):
    t1 = addVolume(slicerContext.scene, _voxels(1), "T1")
    flair = addVolume(slicerContext.scene, _voxels(2), "FLAIR", **change)
    with pytest.raises(mrml_io.GeometryMismatchError, match="'FLAIR' does not share the voxel grid of 'T1'"):
        mrml_io.readVolumes([t1, flair])


def test_mismatched_size_is_a_clear_error(slicerContext):
    t1 = addVolume(slicerContext.scene, _voxels(1), "T1")
    flair = addVolume(slicerContext.scene, _voxels(2, shape=(7, 9, 12)), "FLAIR")
    with pytest.raises(mrml_io.GeometryMismatchError, match=r"size \(11, 9, 7\) vs \(12, 9, 7\)"):
        mrml_io.readVolumes([t1, flair])


def test_resample_onto_first_when_asked(slicerContext):
    """A FLAIR shifted by whole voxels is resampled onto the T1 grid: overlapping voxels are exact."""
    array = _voxels(3)
    t1 = addVolume(slicerContext.scene, _voxels(1), "T1", spacing=(1.0, 1.0, 2.0))
    flair = addVolume(slicerContext.scene, array, "FLAIR", spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 4.0))
    image, _ = mrml_io.readVolumes([t1, flair], resample=True)
    # RAS z = +4 mm = 2 slices: T1 slice k sees FLAIR slice k - 2; outside the FLAIR it is 0
    np.testing.assert_allclose(image[1, 2:], array[:-2], rtol=1e-6)
    assert np.all(image[1, :2] == 0)


def test_non_linear_transform_is_refused(slicerContext):
    node = addVolume(slicerContext.scene, _voxels(), "T1")
    grid = slicerContext.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(ValueError, match="non-linear transform 'warp'; harden"):
        mrml_io.volumeGeometry(node)


def test_sheared_grid_is_refused():
    shear = np.eye(4)
    shear[0, 1] = 0.3
    with pytest.raises(ValueError, match="voxel axes are not orthogonal"):
        mrml_io.geometryFromIJKToRAS(shear, (3, 3, 3))


def test_empty_volume_is_refused(slicerContext):
    node = slicerContext.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="volume 'empty' has no voxels"):
        mrml_io.volumeGeometry(node)


def test_geometry_roundtrip_through_ijk_to_ras():
    geometry = Geometry((5, 6, 7), (0.5, 1.5, 2.0), (10.0, -3.0, 8.0),
                        tuple(rotation("x", 31.0).reshape(-1)))
    back = mrml_io.geometryFromIJKToRAS(mrml_io.ijkToRASFromGeometry(geometry), geometry.size)
    assert back.differences(geometry, tol=1e-12) == []
