"""Building synthetic MRML content for the tests: volumes with oblique grids and parent transforms."""

from __future__ import annotations

import numpy as np
import slicer.util
import vtk


def addVolume(scene, array: np.ndarray, name: str = "T1", spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
              directions=None, transform: np.ndarray | None = None):
    """A scalar volume node with the given voxels ``(D, H, W)`` and local IJK-to-RAS geometry."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array))
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    if directions is not None:
        m = vtk.vtkMatrix4x4()
        for r in range(3):
            for c in range(3):
                m.SetElement(r, c, float(directions[r][c]))
        node.SetIJKToRASDirectionMatrix(m)
    if transform is not None:
        tnode = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", f"{name} transform")
        m = vtk.vtkMatrix4x4()
        for r in range(4):
            for c in range(4):
                m.SetElement(r, c, float(transform[r, c]))
        tnode.SetMatrixTransformToParent(m)
        node.SetAndObserveTransformNodeID(tnode.GetID())
    node.CreateDefaultDisplayNodes()
    return node


def rotation(axis: str, degrees: float) -> np.ndarray:
    """A 3x3 rotation about ``axis`` (x, y or z)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def obliqueTransform() -> np.ndarray:
    """A rigid 4x4 transform (rotation about two axes plus a translation)."""
    t = np.eye(4)
    t[:3, :3] = rotation("z", 17.0) @ rotation("x", -9.0)
    t[:3, 3] = (4.5, -3.25, 7.0)
    return t
