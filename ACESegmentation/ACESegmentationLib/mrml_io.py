"""Volume nodes <-> numpy arrays and ACELib geometries: the only place MRML axes are converted.

Conventions, stated once:

* A volume node's voxel array is ``(D, H, W)`` = ``(K, J, I)``: exactly the order of
  ``slicer.util.arrayFromVolume`` and of ITK's ``GetArrayFromImage``, so no axis is swapped.
* An :class:`ACELib.io.image.Geometry` is in ITK's LPS physical space; Slicer works in RAS.
  ``RAS = diag(-1, -1, 1) @ LPS``, so the IJK-to-LPS matrix is ``F @ IJKToRAS`` with
  ``F = diag(-1, -1, 1, 1)``.
* The geometry of a node is its *world* geometry: its IJK-to-RAS matrix composed with its parent
  linear transforms (what the user sees). Non-linear parent transforms must be hardened first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import slicer
import slicer.util
import vtk

from ACELib.io.image import Geometry, resample_like

_RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class GeometryMismatchError(ValueError):
    """Input volumes do not share a voxel grid (and resampling was not requested)."""


def _numpyFromVtkMatrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def _vtkMatrixFromNumpy(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def localIJKToRAS(volumeNode) -> np.ndarray:
    """``(4, 4)`` IJK-to-RAS matrix of ``volumeNode`` in its own (parent) coordinate frame."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return _numpyFromVtkMatrix(matrix)


def parentToWorld(node) -> np.ndarray:
    """``(4, 4)`` matrix from ``node``'s coordinate frame to world RAS (identity without transform).

    Raises:
        ValueError: a parent transform is not linear (harden it, or resample the volume, first).
    """
    transformNode = node.GetParentTransformNode()
    if transformNode is None:
        return np.eye(4)
    if not transformNode.IsTransformToWorldLinear():
        raise ValueError(
            f"volume {node.GetName()!r} is under the non-linear transform {transformNode.GetName()!r}; "
            "harden the transform (Data module, right-click > Harden transform) and try again"
        )
    matrix = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToWorld(matrix)
    return _numpyFromVtkMatrix(matrix)


def geometryFromIJKToRAS(ijkToRAS: np.ndarray, size: Sequence[int], name: str = "volume") -> Geometry:
    """The ACELib (LPS) geometry of a voxel grid given its IJK-to-RAS matrix and size ``(I, J, K)``.

    Raises:
        ValueError: the matrix shears the grid (its columns are not orthogonal) or is singular.
    """
    ijkToLPS = _RAS_FROM_LPS @ np.asarray(ijkToRAS, dtype=np.float64)  # F is its own inverse
    axes = ijkToLPS[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"{name}: the IJK-to-RAS matrix is singular (voxel spacing {tuple(spacing)})")
    direction = axes / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6):
        raise ValueError(
            f"{name}: the voxel axes are not orthogonal (a sheared grid, e.g. from a shearing parent "
            "transform); resample the volume with the Resample Scalar/Vector/DWI Volume module first"
        )
    return Geometry(
        size=tuple(int(s) for s in size),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in ijkToLPS[:3, 3]),
        direction=tuple(float(d) for d in direction.reshape(-1)),
    )


def ijkToRASFromGeometry(geometry: Geometry) -> np.ndarray:
    """``(4, 4)`` IJK-to-RAS matrix of an ACELib (LPS) geometry."""
    return _RAS_FROM_LPS @ geometry.index_to_physical()


def volumeGeometry(volumeNode) -> Geometry:
    """World geometry (parent linear transforms included) of a scalar volume node, in LPS.

    Raises:
        ValueError: no image data, a non-linear parent transform, or a sheared grid.
    """
    image = volumeNode.GetImageData() if volumeNode is not None else None
    if not _hasVoxels(image):
        name = volumeNode.GetName() if volumeNode is not None else "None"
        raise ValueError(f"volume {name!r} has no voxels (image data is empty{_dimensionsText(image)})")
    world = parentToWorld(volumeNode) @ localIJKToRAS(volumeNode)
    return geometryFromIJKToRAS(world, image.GetDimensions(), name=volumeNode.GetName())


def _hasVoxels(image) -> bool:
    """Whether VTK image data holds at least one voxel with scalars (a 0x0x0 image does not)."""
    if image is None or 0 in image.GetDimensions():
        return False
    pointData = image.GetPointData()
    return pointData is not None and pointData.GetScalars() is not None


def _dimensionsText(image) -> str:
    return "" if image is None else f": {'x'.join(str(d) for d in image.GetDimensions())} voxels"


def arrayFromVolumeNode(volumeNode) -> np.ndarray:
    """A copy of the voxels of a scalar volume node.

    Returns:
        ``(D, H, W)`` array of the node's scalar type.

    Raises:
        ValueError: the volume is empty or has several components per voxel.
    """
    image = volumeNode.GetImageData()
    if not _hasVoxels(image):
        raise ValueError(f"volume {volumeNode.GetName()!r} has no voxels (image data is empty{_dimensionsText(image)})")
    if image.GetNumberOfScalarComponents() != 1:
        raise ValueError(
            f"volume {volumeNode.GetName()!r} has {image.GetNumberOfScalarComponents()} components per "
            "voxel; a scalar volume is needed"
        )
    return np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)


def readVolumes(volumeNodes: Sequence, resample: bool = False) -> tuple[np.ndarray, Geometry]:
    """Stack scalar volumes into one multi-channel image on the grid of the first.

    Args:
        volumeNodes: one scalar volume node per channel, in the model's modality order.
        resample: resample volumes whose grid differs from the first's (linear interpolation);
            otherwise such volumes raise :class:`GeometryMismatchError`.

    Returns:
        ``(image, geometry)``: image ``(C, D, H, W)`` float32, world geometry of the first volume.

    Raises:
        GeometryMismatchError: a volume's grid differs from the first's and ``resample`` is False.
        ValueError: a node is missing or not a scalar volume.
    """
    if not volumeNodes or any(node is None for node in volumeNodes):
        raise ValueError(f"an input volume is missing (got {len(volumeNodes)} nodes, some None)")
    reference = volumeGeometry(volumeNodes[0])
    channels = []
    for node in volumeNodes:
        array = arrayFromVolumeNode(node).astype(np.float32, copy=False)
        geometry = volumeGeometry(node)
        differences = reference.differences(geometry)
        if differences:
            if not resample:
                raise GeometryMismatchError(
                    f"volume {node.GetName()!r} does not share the voxel grid of "
                    f"{volumeNodes[0].GetName()!r} ({'; '.join(differences)}); register and resample it, "
                    "or tick 'Resample inputs onto the first volume'"
                )
            array = resample_like(array, geometry, reference, is_label=False).astype(np.float32, copy=False)
        channels.append(array)
    return np.stack(channels), reference


def setVolumeNodeFromArray(volumeNode, array: np.ndarray, geometry: Geometry) -> None:
    """Fill ``volumeNode`` with ``array`` placed at the world ``geometry``.

    The node's own IJK-to-RAS matrix is set so that, composed with its current parent transform,
    the voxels land at ``geometry`` in world space.

    Args:
        array: ``(D, H, W)`` matching ``geometry.shape``.
    """
    array = np.asarray(array)
    if array.ndim != 3 or tuple(array.shape) != geometry.shape:
        raise ValueError(f"array of shape {array.shape} does not fit geometry of shape {geometry.shape} (D, H, W)")
    world = ijkToRASFromGeometry(geometry)
    local = np.linalg.inv(parentToWorld(volumeNode)) @ world
    slicer.util.updateVolumeFromArray(volumeNode, np.ascontiguousarray(array))
    volumeNode.SetIJKToRASMatrix(_vtkMatrixFromNumpy(local))


def addVolumeNode(scene, name: str, array: np.ndarray, geometry: Geometry, labelmap: bool = False):
    """A new scalar (or labelmap) volume node in ``scene`` holding ``array`` at ``geometry``."""
    className = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(className, name)
    setVolumeNodeFromArray(node, array, geometry)
    node.CreateDefaultDisplayNodes()
    return node


def copyGridOf(volumeNode, targetNode) -> None:
    """Give ``targetNode`` the local IJK-to-RAS matrix and parent transform of ``volumeNode``."""
    targetNode.SetIJKToRASMatrix(_vtkMatrixFromNumpy(localIJKToRAS(volumeNode)))
    targetNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
