"""The module's self-test workflow: synthetic scan -> tiny model -> segmentation -> export -> import -> task.

``ACESegmentationTest`` runs it inside Slicer ("Reload and Test", or ``slicer_add_python_unittest``);
the project's ``pytest`` suite runs the same function on a ``slicer-core`` scene, so it is checked on
every ``make test``. It needs torch (a tiny untrained network, a few seconds on a CPU).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import slicer.util
import vtk

from ACELib.labels import JointLabel
from ACESegmentationLib import mrml_io, segmentation

LABELS = (
    JointLabel("background", 0, (0, 0, 0)),
    JointLabel("CSF", 1, (70, 130, 180)),
    JointLabel("GM", 2, (220, 180, 140)),
    JointLabel("WM", 3, (245, 245, 245)),
    JointLabel("WMH", 4, (255, 50, 50)),
)
MODALITIES = ("T1", "FLAIR")
SHAPE = (14, 18, 16)  # (D, H, W)


class SelfTestError(AssertionError):
    """A step of the self-test produced something other than expected."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SelfTestError(message)


def syntheticVolumes(scene) -> list:
    """A T1 and a FLAIR "brain" (nested ellipsoids and a lesion) on an oblique grid under a transform."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    tissue = np.select([r < 0.45, r < 0.7, r < 0.85], [3, 2, 1], 0)
    lesion = (x - 0.15) ** 2 + y ** 2 + z ** 2 < 0.04
    t1 = np.choose(tissue, [0.0, 30.0, 60.0, 90.0]) + np.where(lesion, -20.0, 0.0)
    flair = np.choose(tissue, [0.0, 20.0, 70.0, 55.0]) + np.where(lesion, 60.0, 0.0)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "ACE self-test transform")
    matrix = vtk.vtkMatrix4x4()
    angle = np.deg2rad(12.0)
    matrix.SetElement(0, 0, np.cos(angle))
    matrix.SetElement(0, 1, -np.sin(angle))
    matrix.SetElement(1, 0, np.sin(angle))
    matrix.SetElement(1, 1, np.cos(angle))
    matrix.SetElement(0, 3, 3.5)
    transform.SetMatrixTransformToParent(matrix)
    volumes = []
    for name, array in (("selftest_T1", t1), ("selftest_FLAIR", flair)):
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        slicer.util.updateVolumeFromArray(node, array.astype(np.float32))
        node.SetSpacing(1.0, 1.2, 2.0)
        node.SetOrigin(-8.0, 10.0, 4.0)
        node.SetAndObserveTransformNodeID(transform.GetID())
        volumes.append(node)
    return volumes


def runSelfTest(logic, workDir: str | Path | None = None) -> dict:
    """Run the whole workflow with ``logic`` on its scene; raise :class:`SelfTestError` on a mismatch.

    Returns:
        A small report: segment names, voxels per label, the exported case and the training command.
    """
    from ACELib.inference import create_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workDir) if workDir is not None else Path(tmp)
        scene = logic.scene
        volumes = syntheticVolumes(scene)
        matched = logic.matchVolumes(MODALITIES, list(reversed(volumes)))
        _check([matched[m] for m in MODALITIES] == volumes, "volumes were not matched to modalities by name")

        modelPath = work / "tiny.safetensors"
        create_model(LABELS, MODALITIES, base_channels=4, depth=2, seed=0).save(modelPath)
        model = logic.loadModel(modelPath, device="cpu")
        node = logic.segment(volumes, model)
        names = [node.GetSegmentation().GetNthSegment(i).GetName()
                 for i in range(node.GetSegmentation().GetNumberOfSegments())]
        _check(names == [lab.name for lab in LABELS[1:]], f"segment names {names}")
        _check(node.GetTransformNodeID() == volumes[0].GetTransformNodeID(), "segmentation not under the input's transform")
        labelMap = segmentation.labelArrayFromSegmentation(scene, node, volumes[0], LABELS, logic.segmentationsLogic)
        direct = model.predict(np.stack([mrml_io.arrayFromVolumeNode(v) for v in volumes]).astype(np.float32),
                               geometry=mrml_io.volumeGeometry(volumes[0])).labels
        _check(np.array_equal(labelMap, direct), "segments differ from the model's label map")

        folder = work / "Dataset_selftest"
        case = logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "selftest case", "all")
        loaded, loadedNode = logic.importCase(folder, case.name, LABELS)
        back = segmentation.labelArrayFromSegmentation(scene, loadedNode, loaded[0], LABELS, logic.segmentationsLogic)
        _check(np.array_equal(back, labelMap), "exported and re-imported labels differ")
        _check(np.array_equal(mrml_io.arrayFromVolumeNode(loaded[1]),
                              mrml_io.arrayFromVolumeNode(volumes[1]).astype(np.float32)), "exported FLAIR differs")

        plan = logic.prepareTraining([folder], LABELS, work / "run", iterations=2, python="python")
        _check(plan.taskPath.is_file() and "--task" in plan.command, "no training task written")
        return {"segments": names, "voxels": {int(v): int((labelMap == v).sum()) for v in np.unique(labelMap)},
                "case": case.name, "command": plan.command}
