"""Label maps <-> segmentation nodes: names, colours, SNOMED CT terminology and reference geometry.

A label map of joint label *values* becomes one segment per joint label (background excluded),
imported through a colour table so that each segment gets its label's name and colour, then tagged
with the label's SNOMED CT terminology (codes from ``Resources/Terminology/ACESegmentation.term.json``,
the same codes as Slicer's own terminology lists). The segmentation lives in the coordinate frame of
its reference volume (same parent transform, same grid), so no voxel is ever resampled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import slicer
import slicer.util
import vtk

from ACELib.labels import JointLabel, check_joint_values
from ACESegmentationLib.mrml_io import copyGridOf
from ACESegmentationLib.terminology import TERMINOLOGY_CONTEXT, terminologyFilePath, terminologyForLabel

logger = logging.getLogger(__name__)


def loadTerminology(terminologyLogic) -> str:
    """Load the ACE terminology context into a terminologies logic (once) and return its name."""
    names = vtk.vtkStringArray()
    terminologyLogic.GetLoadedTerminologyNames(names)
    if TERMINOLOGY_CONTEXT not in [names.GetValue(i) for i in range(names.GetNumberOfValues())]:
        loaded = terminologyLogic.LoadTerminologyFromFile(str(terminologyFilePath()))
        if loaded != TERMINOLOGY_CONTEXT:
            raise RuntimeError(f"loading {terminologyFilePath()} gave context {loaded!r}, expected {TERMINOLOGY_CONTEXT!r}")
    return TERMINOLOGY_CONTEXT


def addColorTable(scene, labels: Sequence[JointLabel], name: str = "ACE labels"):
    """A colour table node whose entry ``label.value`` has the label's name and colour."""
    size = max(label.value for label in labels) + 1
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    table.SetTypeToUser()
    table.SetNumberOfColors(size)
    for label in labels:
        r, g, b = (c / 255.0 for c in label.color)
        table.SetColor(label.value, label.name, r, g, b, 0.0 if label.value == 0 else 1.0)
    return table


def removeNodes(scene, *nodes) -> None:
    """Remove nodes together with their display and storage nodes (``RemoveNode`` leaves those behind)."""
    for node in nodes:
        if node is None or node.GetScene() is None:
            continue
        owned = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())] if hasattr(
            node, "GetNumberOfDisplayNodes") else []
        owned += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())] if hasattr(
            node, "GetNumberOfStorageNodes") else []
        scene.RemoveNode(node)
        for other in owned:
            if other is not None and other.GetScene() is not None:
                scene.RemoveNode(other)


def temporaryLabelmap(scene, labels: Sequence[JointLabel], name: str):
    """A hidden labelmap node whose display node uses a temporary colour table of ``labels``.

    With that User colour table in place, ``ExportSegmentsToLabelmapNode`` does not create (and leave in
    the scene) a ``<name>_ColorTable`` node of its own. Remove both with :func:`removeNodes`.

    Returns:
        ``(labelmapNode, colorTableNode)``.
    """
    colorTable = addColorTable(scene, labels, name="ACE temporary colours")
    labelmapNode = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    for node in (labelmapNode, colorTable):
        node.SetHideFromEditors(True)
        node.SetSaveWithScene(False)
    labelmapNode.CreateDefaultDisplayNodes()
    labelmapNode.GetDisplayNode().SetAndObserveColorNodeID(colorTable.GetID())
    return labelmapNode, colorTable


def _segmentIds(segmentationNode) -> list[str]:
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def setSegmentsFromLabelArray(scene, segmentationNode, labelArray: np.ndarray, labels: Sequence[JointLabel],
                              referenceVolume, segmentationsLogic=None) -> list[str]:
    """Replace all segments of ``segmentationNode`` by one segment per non-background joint label.

    Args:
        labelArray: ``(D, H, W)`` integer map of joint label *values* on ``referenceVolume``'s grid.
        labels: the joint labels (``labels[0]`` is background, value 0).
        referenceVolume: the input volume; it becomes the reference geometry, and the segmentation
            gets its parent transform.

    Returns:
        Segment IDs, in label order. Labels absent from the map get an empty segment, so that a user can
        still paint them in the Segment Editor.

    Raises:
        ValueError: the map does not fit the reference grid, or holds values that are not joint labels.
    """
    labelArray = np.asarray(labelArray)
    dims = referenceVolume.GetImageData().GetDimensions()
    if labelArray.shape != tuple(reversed(dims)):
        raise ValueError(f"label map of shape {labelArray.shape} does not fit the grid of "
                         f"{referenceVolume.GetName()!r}, shape {tuple(reversed(dims))} (D, H, W)")
    check_joint_values(labelArray, labels)
    segLogic = segmentationsLogic or slicer.vtkSlicerSegmentationsModuleLogic
    labelmapNode, colorTable = temporaryLabelmap(scene, labels, "ACE temporary labelmap")
    try:
        slicer.util.updateVolumeFromArray(labelmapNode, np.ascontiguousarray(labelArray.astype(np.uint8)))
        copyGridOf(referenceVolume, labelmapNode)
        segmentationNode.SetAndObserveTransformNodeID(referenceVolume.GetTransformNodeID())
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
        segmentation = segmentationNode.GetSegmentation()
        segmentation.RemoveAllSegments()
        labelmapName = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
        setSource = (getattr(segmentation, "SetSourceRepresentationName", None)  # Slicer >= 5.4
                     or segmentation.SetMasterRepresentationName)
        setSource(labelmapName)  # voxels are the truth, whatever the node held before
        if not segLogic.ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode):
            raise RuntimeError(f"importing the label map into {segmentationNode.GetName()!r} failed")
        byName = {segmentation.GetSegment(sid).GetName(): sid for sid in _segmentIds(segmentationNode)}
        ordered = []
        for label in labels[1:]:
            sid = byName.get(label.name)
            if sid is None:
                sid = segmentation.AddEmptySegment("", label.name, [c / 255.0 for c in label.color])
            segment = segmentation.GetSegment(sid)
            segment.SetColor(*(c / 255.0 for c in label.color))
            terminology = terminologyForLabel(label.name)
            if terminology:
                segment.SetTerminology(terminology)
            ordered.append(sid)
        for index, sid in enumerate(ordered):
            segmentation.SetSegmentIndex(sid, index)
        return ordered
    finally:
        removeNodes(scene, labelmapNode, colorTable)


def labelArrayFromSegmentation(scene, segmentationNode, referenceVolume, labels: Sequence[JointLabel],
                               segmentationsLogic=None) -> np.ndarray:
    """Rasterise the segments of ``segmentationNode`` onto ``referenceVolume``'s grid as joint values.

    Segments are matched to joint labels by name. Where segments overlap, the later one wins.

    Returns:
        ``(D, H, W)`` uint8 (or int16 for values above 255) map of joint label values.

    Raises:
        ValueError: a segment's name is not a joint label name (rename it in the Segment Editor).
    """
    names = {label.name for label in labels[1:]}
    segmentation = segmentationNode.GetSegmentation()
    ids = _segmentIds(segmentationNode)
    unknown = [segmentation.GetSegment(sid).GetName() for sid in ids
               if segmentation.GetSegment(sid).GetName() not in names]
    if unknown:
        raise ValueError(
            f"segments {unknown} of {segmentationNode.GetName()!r} are not labels of the model "
            f"{sorted(names)}; rename or delete them in the Segment Editor"
        )
    segLogic = segmentationsLogic or slicer.vtkSlicerSegmentationsModuleLogic
    labelmapNode, colorTable = temporaryLabelmap(scene, labels, "ACE temporary export")
    try:
        idArray = vtk.vtkStringArray()
        for sid in ids:
            idArray.InsertNextValue(sid)
        ok = segLogic.ExportSegmentsToLabelmapNode(segmentationNode, idArray, labelmapNode, referenceVolume,
                                                   slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, colorTable)
        if not ok:
            raise RuntimeError(f"exporting {segmentationNode.GetName()!r} to a label map failed")
        if labelmapNode.GetImageData() is None:  # no segments: an empty map
            dims = referenceVolume.GetImageData().GetDimensions()
            return np.zeros(tuple(reversed(dims)), dtype=np.uint8)
        array = np.array(slicer.util.arrayFromVolume(labelmapNode), copy=True)
        return array.astype(np.uint8 if max(label.value for label in labels) < 256 else np.int16)
    finally:
        removeNodes(scene, labelmapNode, colorTable)


def labelledVolumeMm3(segmentationNode) -> float:
    """Volume (mm^3) the segments of ``segmentationNode`` label on their own grid, before any export.

    Compared with the voxels left after rasterising onto a reference volume, it tells whether an
    export crops the segmentation (a segmentation drawn on another subject's grid, say).
    """
    from vtk.util.numpy_support import vtk_to_numpy

    total = 0.0
    for sid in _segmentIds(segmentationNode):
        image = slicer.vtkOrientedImageData()
        segmentationNode.GetBinaryLabelmapRepresentation(sid, image)
        scalars = image.GetPointData().GetScalars() if image.GetPointData() is not None else None
        if scalars is not None:
            total += np.count_nonzero(vtk_to_numpy(scalars)) * abs(float(np.prod(image.GetSpacing())))
    return total


def placeUnderStudyOf(scene, node, referenceNode) -> None:
    """Put ``node`` in the subject hierarchy under the parent (study) of ``referenceNode``."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if shNode is None:
        return
    referenceItem = shNode.GetItemByDataNode(referenceNode)
    item = shNode.GetItemByDataNode(node)
    if not referenceItem:
        return  # the input is not in the hierarchy: leave the output where Slicer put it
    parent = shNode.GetItemParent(referenceItem)
    if not item:
        shNode.CreateItem(parent, node)
    elif parent != shNode.GetItemParent(item):
        shNode.SetItemParent(item, parent)
