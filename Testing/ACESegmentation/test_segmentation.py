"""Label maps -> segmentation nodes (names, colours, terminology, geometry) and back."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")
import vtk  # noqa: E402
from ACESegmentationLib import segmentation as seg  # noqa: E402
from ACESegmentationLib.mrml_io import localIJKToRAS  # noqa: E402
from factory import WMH_LABELS  # noqa: E402
from mrml_helpers import addVolume, obliqueTransform, rotation  # noqa: E402

from ACELib.labels import JointLabel  # noqa: E402

WMH_LABELS = WMH_LABELS
TUMOUR_LABELS = (
    JointLabel("background", 0, (0, 0, 0)),
    JointLabel("CSF", 1, (70, 130, 180)),
    JointLabel("GM", 2, (220, 180, 140)),
    JointLabel("WM", 3, (245, 245, 245)),
    JointLabel("edema", 5, (140, 224, 228)),
    JointLabel("tumour", 7, (144, 238, 144)),
)
SHAPE = (9, 8, 11)
OBLIQUE = dict(spacing=(0.9, 1.1, 2.5), origin=(-40.0, 12.5, 3.0), directions=rotation("y", 23.0),
               transform=obliqueTransform())


def _labelMap(labels, shape=SHAPE, seed=0) -> np.ndarray:
    values = np.array([lab.value for lab in labels], dtype=np.uint8)
    return values[np.random.default_rng(seed).integers(0, len(values), size=shape)]


def _segments(node) -> list:
    s = node.GetSegmentation()
    return [s.GetNthSegment(i) for i in range(s.GetNumberOfSegments())]


def _import(ctx, labels, labelMap, grid=OBLIQUE, node=None):
    volume = addVolume(ctx.scene, np.zeros(SHAPE, np.float32), "T1", **grid)
    node = node or ctx.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ACE segmentation")
    ids = seg.setSegmentsFromLabelArray(ctx.scene, node, labelMap, labels, volume)
    return volume, node, ids


@pytest.mark.parametrize("labels", [WMH_LABELS, TUMOUR_LABELS], ids=["wmh", "tumour"])
def test_segments_have_names_colours_values_and_terminology(slicerContext, labels):
    _, node, ids = _import(slicerContext, labels, _labelMap(labels))
    segments = _segments(node)
    assert [s.GetName() for s in segments] == [lab.name for lab in labels[1:]]
    assert len(ids) == len(labels) - 1
    for segment, label in zip(segments, labels[1:]):
        np.testing.assert_allclose(segment.GetColor(), np.array(label.color) / 255.0, atol=1e-6)
        assert segment.GetLabelValue() == label.value  # in the shared labelmap layer
        assert segment.GetTerminology() == seg.terminologyForLabel(label.name)


EXPECTED_TYPES = {  # joint label name -> (category code, type code), from Slicer's terminology lists
    "CSF": ("123037004", "280371009"),
    "GM": ("123037004", "389081007"),
    "WM": ("123037004", "389080008"),
    "WMH": ("49755003", "52988006"),
    "edema": ("49755003", "79654002"),
    "tumour": ("49755003", "108369006"),
}


@pytest.mark.parametrize(("name", "codes"), EXPECTED_TYPES.items())
def test_terminology_entries_are_in_the_shipped_terminology_file(slicerContext, name, codes):
    logic = slicerContext.terminologiesLogic
    assert seg.loadTerminology(logic) == seg.TERMINOLOGY_CONTEXT
    entry = slicer.vtkSlicerTerminologyEntry()
    assert logic.DeserializeTerminologyEntry(seg.terminologyForLabel(name), entry)
    assert (entry.GetCategoryObject().GetCodeValue(), entry.GetTypeObject().GetCodeValue()) == codes
    # the same category and type exist in the loaded context, with the same meaning
    category = slicer.vtkSlicerTerminologyCategory()
    found = []
    for i in range(logic.GetNumberOfCategoriesInTerminology(seg.TERMINOLOGY_CONTEXT)):
        logic.GetNthCategoryInTerminology(seg.TERMINOLOGY_CONTEXT, i, category)
        if category.GetCodeValue() != codes[0]:
            continue
        segmentType = slicer.vtkSlicerTerminologyType()
        for j in range(logic.GetNumberOfTypesInTerminologyCategory(seg.TERMINOLOGY_CONTEXT, category)):
            logic.GetNthTypeInTerminologyCategory(seg.TERMINOLOGY_CONTEXT, category, j, segmentType)
            if segmentType.GetCodeValue() == codes[1]:
                found.append(segmentType.GetCodeMeaning())
    assert found == [entry.GetTypeObject().GetCodeMeaning()]


def test_unknown_label_names_get_no_terminology(slicerContext):
    labels = (WMH_LABELS[0], JointLabel("ventricle plexus", 1, (10, 20, 30)))
    _, node, _ = _import(slicerContext, labels, _labelMap(labels))
    assert seg.terminologyForLabel("ventricle plexus") is None
    assert _segments(node)[0].GetName() == "ventricle plexus"


def test_segment_geometry_is_the_input_geometry(slicerContext):
    """Oblique input under a parent transform: same grid, same transform, voxels unchanged."""
    labelMap = _labelMap(WMH_LABELS)
    volume, node, ids = _import(slicerContext, WMH_LABELS, labelMap)
    assert node.GetTransformNodeID() == volume.GetTransformNodeID() is not None
    for sid, label in zip(ids, WMH_LABELS[1:]):
        image = slicer.vtkOrientedImageData()
        node.GetBinaryLabelmapRepresentation(sid, image)
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        got = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        np.testing.assert_allclose(got, localIJKToRAS(volume), atol=1e-9)
        # the binary labelmap, placed in the input's voxel grid, is exactly the label's voxels
        extent = image.GetExtent()
        mask = np.zeros(SHAPE, dtype=bool)
        if extent[1] >= extent[0]:
            arr = vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
            arr = arr.reshape(extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
            mask[extent[4]:extent[5] + 1, extent[2]:extent[3] + 1, extent[0]:extent[1] + 1] = arr > 0
        np.testing.assert_array_equal(mask, labelMap == label.value)
    reference = node.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())
    assert reference is volume


@pytest.mark.parametrize("labels", [WMH_LABELS, TUMOUR_LABELS], ids=["wmh", "tumour"])
def test_label_map_roundtrip_is_bit_exact(slicerContext, labels):
    labelMap = _labelMap(labels, seed=4)
    volume, node, _ = _import(slicerContext, labels, labelMap)
    back = seg.labelArrayFromSegmentation(slicerContext.scene, node, volume, labels)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labelMap)


def test_absent_labels_get_empty_segments(slicerContext):
    labelMap = np.where(_labelMap(WMH_LABELS) == 4, 3, _labelMap(WMH_LABELS)).astype(np.uint8)  # no WMH
    volume, node, _ = _import(slicerContext, WMH_LABELS, labelMap)
    assert [s.GetName() for s in _segments(node)] == ["CSF", "GM", "WM", "WMH"]
    back = seg.labelArrayFromSegmentation(slicerContext.scene, node, volume, WMH_LABELS)
    np.testing.assert_array_equal(back, labelMap)


def test_replacing_the_segments_of_an_existing_node(slicerContext):
    volume, node, _ = _import(slicerContext, TUMOUR_LABELS, _labelMap(TUMOUR_LABELS, seed=1))
    node.GetSegmentation().AddEmptySegment("", "my notes", [0.1, 0.2, 0.3])
    second = _labelMap(WMH_LABELS, seed=2)
    seg.setSegmentsFromLabelArray(slicerContext.scene, node, second, WMH_LABELS, volume)
    assert [s.GetName() for s in _segments(node)] == ["CSF", "GM", "WM", "WMH"]
    np.testing.assert_array_equal(seg.labelArrayFromSegmentation(slicerContext.scene, node, volume, WMH_LABELS),
                                  second)
    # temporary nodes are gone
    assert slicerContext.scene.GetFirstNodeByName("ACE temporary labelmap") is None
    assert slicerContext.scene.GetFirstNodeByName("ACE temporary colours") is None


def test_bad_label_maps_are_refused(slicerContext):
    volume = addVolume(slicerContext.scene, np.zeros(SHAPE, np.float32), "T1")
    node = slicerContext.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(ValueError, match=r"label map of shape \(9, 8, 12\) does not fit the grid of 'T1'"):
        seg.setSegmentsFromLabelArray(slicerContext.scene, node, np.zeros((9, 8, 12), np.uint8), WMH_LABELS, volume)
    bad = np.full(SHAPE, 9, np.uint8)
    with pytest.raises(ValueError, match=r"label map values \[9\] are not joint label values \[0, 1, 2, 3, 4\]"):
        seg.setSegmentsFromLabelArray(slicerContext.scene, node, bad, WMH_LABELS, volume)


def test_export_refuses_segments_that_are_not_labels(slicerContext):
    volume, node, _ = _import(slicerContext, WMH_LABELS, _labelMap(WMH_LABELS))
    node.GetSegmentation().AddEmptySegment("", "Segment_7", [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"segments \['Segment_7'\] of 'ACE segmentation' are not labels"):
        seg.labelArrayFromSegmentation(slicerContext.scene, node, volume, WMH_LABELS)


def test_placed_under_the_study_of_the_input(slicerContext):
    scene = slicerContext.scene
    volume = addVolume(scene, np.zeros(SHAPE, np.float32), "T1")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "patient")
    study = sh.CreateStudyItem(patient, "study")
    sh.CreateItem(study, volume)  # done by Slicer's subject hierarchy plugins when a volume is loaded
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    seg.placeUnderStudyOf(scene, node, volume)
    assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study


def test_a_node_holding_surfaces_gets_voxels(slicerContext):
    converter = slicer.vtkSegmentationConverter
    volume = addVolume(slicerContext.scene, np.zeros(SHAPE, np.float32), "T1", **OBLIQUE)
    node = slicerContext.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "surfaces")
    node.GetSegmentation().SetSourceRepresentationName(converter.GetSegmentationClosedSurfaceRepresentationName())
    labelMap = _labelMap(WMH_LABELS, seed=5)
    seg.setSegmentsFromLabelArray(slicerContext.scene, node, labelMap, WMH_LABELS, volume)
    assert (node.GetSegmentation().GetSourceRepresentationName()
            == converter.GetSegmentationBinaryLabelmapRepresentationName())
    np.testing.assert_array_equal(seg.labelArrayFromSegmentation(slicerContext.scene, node, volume, WMH_LABELS),
                                  labelMap)
