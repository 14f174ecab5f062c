"""What the Logic leaves in the scene (node counts by class), and the parameter node after a scene close.

Inside Slicer, ``vtkMRMLScene.RemoveNode`` leaves a node's display nodes behind, and exporting segments
to a labelmap without a User colour table creates a ``<name>_ColorTable`` node that is saved with the
scene. Each action must leave exactly its intended output.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")
from ACESegmentationLib.logic import ACESegmentationLogic  # noqa: E402
from ACESegmentationLib.selftest import runSelfTest  # noqa: E402
from factory import WMH_LABELS  # noqa: E402
from mrml_helpers import addVolume, obliqueTransform  # noqa: E402

from ACELib.inference import create_model  # noqa: E402

LABELS = WMH_LABELS
MODALITIES = ("T1", "FLAIR")
SHAPE = (7, 9, 8)


def nodeCounts(scene) -> Counter:
    """Number of nodes in ``scene`` by class name (singletons included)."""
    nodes = scene.GetNodes()
    return Counter(nodes.GetItemAsObject(i).GetClassName() for i in range(nodes.GetNumberOfItems()))


def added(before: Counter, after: Counter) -> dict:
    """Classes whose count changed, with the change."""
    return {k: after[k] - before[k] for k in set(before) | set(after) if after[k] != before[k]}


@pytest.fixture
def logic(slicerContext):
    return ACESegmentationLogic(slicerContext.scene, slicerContext.segmentationsLogic,
                                slicerContext.terminologiesLogic)


@pytest.fixture
def volumes(slicerContext):
    rng = np.random.default_rng(0)
    t = obliqueTransform()
    return [addVolume(slicerContext.scene, rng.normal(50, 9, SHAPE).astype(np.float32), f"s_{m}", transform=t)
            for m in MODALITIES]


@pytest.fixture(scope="module")
def tinyModel():
    return create_model(LABELS, MODALITIES, base_channels=2, depth=2, seed=0)


def test_segment_leaves_only_the_segmentation(slicerContext, logic, volumes, tinyModel):
    scene = slicerContext.scene
    before = nodeCounts(scene)
    node = logic.segment(volumes, tinyModel)
    assert added(before, nodeCounts(scene)) == {"vtkMRMLSegmentationNode": 1, "vtkMRMLSegmentationDisplayNode": 1}
    before = nodeCounts(scene)
    logic.segment(volumes, tinyModel, segmentationNode=node, replace=True)  # reuse: nothing new at all
    assert added(before, nodeCounts(scene)) == {}


def test_add_to_training_set_leaves_nothing(slicerContext, logic, volumes, tinyModel, tmp_path):
    scene = slicerContext.scene
    node = logic.segment(volumes, tinyModel)
    before = nodeCounts(scene)
    logic.addToTrainingSet(tmp_path / "ds", volumes, node, LABELS, MODALITIES, "c1", "all")
    assert added(before, nodeCounts(scene)) == {}
    assert not [n for n in scene.GetNodesByClass("vtkMRMLColorTableNode") if n.GetName().endswith("_ColorTable")]


def test_import_case_leaves_its_volumes_and_segmentation(slicerContext, logic, volumes, tinyModel, tmp_path):
    scene = slicerContext.scene
    node = logic.segment(volumes, tinyModel)
    case = logic.addToTrainingSet(tmp_path / "ds", volumes, node, LABELS, MODALITIES, "c1", "all")
    before = nodeCounts(scene)
    logic.importCase(tmp_path / "ds", case.name, LABELS)
    assert added(before, nodeCounts(scene)) == {
        "vtkMRMLScalarVolumeNode": 2, "vtkMRMLScalarVolumeDisplayNode": 2,
        "vtkMRMLSegmentationNode": 1, "vtkMRMLSegmentationDisplayNode": 1}


def test_self_test_leaves_only_its_inputs_and_outputs(slicerContext, logic, tmp_path):
    scene = slicerContext.scene
    before = nodeCounts(scene)
    runSelfTest(logic, tmp_path)
    assert added(before, nodeCounts(scene)) == {
        "vtkMRMLLinearTransformNode": 1,  # the synthetic inputs: two volumes under a transform
        "vtkMRMLScalarVolumeNode": 4,  # and the imported case's two volumes, with display nodes
        "vtkMRMLScalarVolumeDisplayNode": 2,
        "vtkMRMLSegmentationNode": 2, "vtkMRMLSegmentationDisplayNode": 2}  # segmented, imported


def test_clear_keeps_the_parameter_node_but_wipes_its_parameters(slicerContext):
    """What the widget must cope with after File > Close scene: the same singleton node, no parameters
    (so the model choice must be written back from the panel; see ACESegmentationWidget.syncModelSelector)."""
    scene = slicerContext.scene
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    node.SetSingletonTag("ACESegmentation")
    node.SetParameter("modelPath", "/models/wmh.safetensors")
    scene.Clear(0)
    kept = scene.GetSingletonNode("ACESegmentation", "vtkMRMLScriptedModuleNode")
    assert kept is not None and kept.GetParameter("modelPath") == ""
