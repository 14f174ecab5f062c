"""ACESegmentationLogic: the module's work on MRML nodes and plain values, without Qt.

It is usable from the Python console, from scripts and from tests (with the ``slicer-core`` wheel)::

    logic = ACESegmentationLogic()
    model = logic.loadModel("/path/model.safetensors")
    seg = logic.segment([t1Node, flairNode], model)          # one segment per joint label

Progress is reported through ``progress(done, total, message)`` callbacks, user-facing notices through
``notify(message)``, and bad input raises ``ValueError`` (the Widget shows the message).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer

from ACELib.data.contract import Case, list_cases, read_dataset_info
from ACELib.inference.model_schema import ANY_CONTRAST
from ACELib.io.image import Geometry
from ACELib.labels import JointLabel
from ACELib.progress import Progress
from ACESegmentationLib import export, mrml_io, segmentation, training_process, volumes

try:
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic as _LogicBase
except ImportError:  # the slicer-core wheel has no scripted-module base classes

    class _LogicBase:  # type: ignore[no-redef]
        def __init__(self):
            pass


logger = logging.getLogger(__name__)


#: modality name (upper case) -> words that identify it in a volume name.
MODALITY_HINTS = {
    "T1": ("t1", "mprage", "spgr", "bravo", "tfe"),
    "T1CE": ("t1ce", "t1c", "t1gd", "gad", "post", "contrast"),
    "T2": ("t2",),
    "FLAIR": ("flair",),
    "PD": ("pd", "proton"),
}


@dataclass(frozen=True)
class TrainingPlan:
    """What the GUI needs to start ``ace train`` as a separate process."""

    command: list[str]
    environment: dict[str, str]
    runDir: Path
    taskPath: Path


def isOutOfMemory(error: BaseException) -> bool:
    """True for a GPU out-of-memory error (torch raises several kinds)."""
    oom = getattr(getattr(sys.modules.get("torch"), "cuda", None), "OutOfMemoryError", None)
    return (oom is not None and isinstance(error, oom)) or "out of memory" in str(error).lower()


def checkExportKeepsLabels(ownVolumeMm3: float, labelArray: np.ndarray, geometry: Geometry, segmentationName: str,
                           volumeName: str, notify: Callable[[str], None] | None = None,
                           tolerance: float = 0.05) -> None:
    """Refuse an export that keeps none of the labelled voxels; warn when it loses more than ``tolerance``.

    Args:
        ownVolumeMm3: labelled volume of the segmentation on its own grid.
        labelArray: ``(D, H, W)`` the segmentation rasterised onto the reference volume.
    """
    kept = float(np.count_nonzero(labelArray)) * float(np.prod(geometry.spacing))
    if ownVolumeMm3 > 0 and kept == 0:
        raise ValueError(f"segmentation {segmentationName!r} does not overlap volume {volumeName!r}: none of its "
                         f"{ownVolumeMm3:.0f} mm^3 of labels lie inside the volume (a segmentation of another "
                         "subject?); choose the volumes it was drawn on")
    if ownVolumeMm3 > 0 and kept < (1 - tolerance) * ownVolumeMm3:
        message = (f"segmentation {segmentationName!r} extends beyond volume {volumeName!r}: the exported case "
                   f"keeps {kept:.0f} of its {ownVolumeMm3:.0f} mm^3 of labels ({100 * kept / ownVolumeMm3:.0f}%)")
        logger.warning(message)
        if notify is not None:
            notify(message)


def pythonExecutable() -> str:
    """The Python to run ACELib in a separate process: Slicer's ``PythonSlicer`` launcher when present."""
    return shutil.which("PythonSlicer") or sys.executable


def _nameTokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


class ACESegmentationLogic(_LogicBase):
    """Segmentation, training-set export and training preparation on MRML nodes.

    Args:
        scene: the MRML scene (default ``slicer.mrmlScene``).
        segmentationsLogic, terminologiesLogic: module logics (default: those of the running Slicer).
    """

    def __init__(self, scene=None, segmentationsLogic=None, terminologiesLogic=None):
        _LogicBase.__init__(self)
        self._scene = scene
        self._segmentationsLogic = segmentationsLogic
        self._terminologiesLogic = terminologiesLogic

    @property
    def scene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    @property
    def segmentationsLogic(self):
        if self._segmentationsLogic is None:
            modules = getattr(slicer, "modules", None)
            self._segmentationsLogic = (modules.segmentations.logic() if modules is not None
                                        else slicer.vtkSlicerSegmentationsModuleLogic)
        return self._segmentationsLogic

    @property
    def terminologiesLogic(self):
        if self._terminologiesLogic is None:
            modules = getattr(slicer, "modules", None)
            terminologies = getattr(modules, "terminologies", None) if modules is not None else None
            self._terminologiesLogic = terminologies.logic() if terminologies is not None else None
        return self._terminologiesLogic

    def loadTerminology(self) -> str | None:
        """Load the ACE terminology context (once) so that ACE segments, also those of a scene loaded
        after a restart, refer to a loaded context. Returns its name, or None without a terminologies logic."""
        if self.terminologiesLogic is None:
            return None
        return segmentation.loadTerminology(self.terminologiesLogic)

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def matchVolumes(modalities: Sequence[str], volumeNodes: Sequence) -> dict[str, object]:
        """Guess which volume is which modality from the volume names (``t1``, ``flair``...).

        A model of one input of any contrast (``ANY_CONTRAST``) takes the first volume.

        Returns:
            modality -> volume node or None; a volume is used at most once, in name-match order.
        """
        if tuple(modalities) == (ANY_CONTRAST,):
            return {ANY_CONTRAST: volumeNodes[0] if len(volumeNodes) else None}
        chosen: dict[str, object] = {}
        used: set[int] = set()
        for modality in modalities:
            hints = MODALITY_HINTS.get(modality.upper(), (modality.lower(),))
            match = None
            for strict in (True, False):  # whole words first ("T1_brain"), then substrings ("t1w")
                for i, node in enumerate(volumeNodes):
                    tokens = _nameTokens(node.GetName())
                    found = any(h in tokens for h in hints) if strict else any(
                        t.startswith(h) for t in tokens for h in hints)
                    if i not in used and found:
                        match = i
                        break
                if match is not None:
                    break
            chosen[modality] = volumeNodes[match] if match is not None else None
            if match is not None:
                used.add(match)
        return chosen

    @staticmethod
    def readInputs(volumeNodes: Sequence, resample: bool = False) -> tuple[np.ndarray, Geometry]:
        """``(image (C, D, H, W) float32, world geometry)``; see :func:`mrml_io.readVolumes`."""
        return mrml_io.readVolumes(volumeNodes, resample=resample)

    # ------------------------------------------------------------------ model and prediction
    @staticmethod
    def loadModel(path: str | os.PathLike, device: str = "auto", expectedSha256: str | None = None):
        """Load a model file (imports torch: call after the dependencies are installed)."""
        from ACELib.inference import load_model

        return load_model(path, device=device, expected_sha256=expectedSha256)

    @staticmethod
    def inputSubset(model, volumeNodes: Sequence) -> tuple[tuple[str, ...], list]:
        """The modalities the user gave volumes for, and those volumes (one slot per ``model.modalities``,
        None for an empty one). A hetero-modal model takes any subset it accepts; others need every volume.

        Raises:
            ValueError: a slot count that does not fit, no volume at all, or (names the missing ones) a
                subset the model does not take.
        """
        if len(volumeNodes) != len(model.modalities):
            raise ValueError(f"the model needs {len(model.modalities)} volumes {list(model.modalities)}, "
                             f"got {len(volumeNodes)}")
        pairs = [(m, v) for m, v in zip(model.modalities, volumeNodes) if v is not None]
        names = tuple(m for m, _ in pairs)
        if model.metadata.modality_subsets == "all" and len(names) != len(model.modalities):
            missing = [m for m, v in zip(model.modalities, volumeNodes) if v is None]
            raise ValueError(f"the model needs a volume for each of {list(model.modalities)} (missing {missing})")
        model.metadata.check_modalities(names)  # empty or not accepted: the message names what is missing
        return names, [v for _, v in pairs]

    @staticmethod
    def predictLabels(model, image: np.ndarray, geometry: Geometry, progress: Progress | None = None,
                      cancel: Callable[[], bool] | None = None,
                      notify: Callable[[str], None] | None = None,
                      modalities: Sequence[str] | None = None) -> np.ndarray:
        """Run ``model`` on ``image``; safe to call off the GUI thread (no MRML access).

        On a GPU out-of-memory error the model moves to the CPU and runs again, with a notice.
        ``modalities`` names the channels of ``image`` (a subset, for a hetero-modal model; default all).

        Returns:
            ``(D, H, W)`` uint8 joint label values.

        Raises:
            ACELib.inference.Cancelled: ``cancel()`` returned True.
        """
        subset = {} if modalities is None else {"modalities": tuple(modalities)}
        try:
            return model.predict(image, geometry=geometry, progress=progress, cancel=cancel, **subset).labels
        except Exception as error:
            if getattr(model.device, "type", "cpu") == "cpu" or not isOutOfMemory(error):
                raise
        message = "The GPU ran out of memory: running on the CPU instead (slower)."
        logger.warning(message)
        if notify is not None:
            notify(message)
        model.to("cpu")
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return model.predict(image, geometry=geometry, progress=progress, cancel=cancel, **subset).labels

    # ------------------------------------------------------------------ output
    def writeSegmentation(self, labelArray: np.ndarray, labels: Sequence[JointLabel], referenceVolume,
                          segmentationNode=None, replace: bool = False, showIn3D: bool = False):
        """Put a joint label map into a segmentation node, one named, coloured, coded segment per label.

        Args:
            labelArray: ``(D, H, W)`` joint label values on ``referenceVolume``'s grid.
            segmentationNode: node to fill; a new one when None.
            replace: allow replacing the segments of a ``segmentationNode`` that has some.
            showIn3D: also build the closed-surface representation (shown in 3D views).

        Raises:
            ValueError: ``segmentationNode`` has segments and ``replace`` is False; or a bad label map.
        """
        scene = self.scene
        if segmentationNode is not None and segmentationNode.GetSegmentation().GetNumberOfSegments() and not replace:
            raise ValueError(
                f"segmentation {segmentationNode.GetName()!r} already has "
                f"{segmentationNode.GetSegmentation().GetNumberOfSegments()} segments; confirm replacing them "
                "or choose 'Create new segmentation'"
            )
        created = segmentationNode is None
        if created:
            segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                       f"{referenceVolume.GetName()} ACE segmentation")
            segmentationNode.CreateDefaultDisplayNodes()
        try:
            segmentation.setSegmentsFromLabelArray(scene, segmentationNode, labelArray, labels, referenceVolume,
                                                   self.segmentationsLogic)
        except Exception:
            if created:
                segmentation.removeNodes(scene, segmentationNode)
            raise
        self.loadTerminology()
        segmentation.placeUnderStudyOf(scene, segmentationNode, referenceVolume)
        if showIn3D:
            self.showIn3D(segmentationNode)
        return segmentationNode

    def volumeTable(self, segmentationNode, referenceVolume, labels: Sequence[JointLabel], tableNode=None):
        """A table of each label's voxels and volume (mL), from the segments as they are now (corrections too).

        Rows come from ``ACELib.metrics.volumes.label_volumes`` (what ``ace predict --volumes`` writes);
        the voxel volume is the reference volume's world spacing (parent transforms included).

        Returns:
            ``tableNode`` refilled, or a new ``vtkMRMLTableNode`` named after the segmentation.
        """
        from ACELib.metrics.volumes import label_volumes

        labelArray = segmentation.labelArrayFromSegmentation(self.scene, segmentationNode, referenceVolume, labels,
                                                             self.segmentationsLogic)
        rows = label_volumes(labelArray, mrml_io.volumeGeometry(referenceVolume).spacing, labels)
        return volumes.fillVolumeTable(self.scene, rows, tableNode, name=f"{segmentationNode.GetName()} volumes")

    @staticmethod
    def showIn3D(segmentationNode) -> None:
        """Create the closed-surface representation so that the segments appear in 3D views."""
        if segmentationNode.GetDisplayNode() is None:
            segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.CreateClosedSurfaceRepresentation()

    def segment(self, volumeNodes: Sequence, model, segmentationNode=None, replace: bool = False,
                resample: bool = False, showIn3D: bool = False, progress: Progress | None = None,
                cancel: Callable[[], bool] | None = None, notify: Callable[[str], None] | None = None):
        """Segment ``volumeNodes`` (one per ``model.modalities``, in that order; None leaves a modality
        out, for a hetero-modal model) on this thread. The first given volume is the reference grid.

        Returns:
            The segmentation node (new, or ``segmentationNode`` with its segments replaced).
        """
        names, nodes = self.inputSubset(model, volumeNodes)
        image, geometry = self.readInputs(nodes, resample=resample)
        labels = self.predictLabels(model, image, geometry, progress, cancel, notify, modalities=names)
        return self.writeSegmentation(labels, model.labels, nodes[0], segmentationNode, replace, showIn3D)

    # ------------------------------------------------------------------ training set
    def addToTrainingSet(self, folder: str | os.PathLike, volumeNodes: Sequence, segmentationNode,
                         labels: Sequence[JointLabel], modalities: Sequence[str], caseName: str,
                         mode: str = "all", resample: bool = False,
                         notify: Callable[[str], None] | None = None) -> Case:
        """Export the volumes and the (corrected) segmentation as a new case of a dataset folder.

        Args:
            folder: dataset folder (created if missing); nothing in it is overwritten.
            volumeNodes: one per modality, in ``modalities`` order; the first is the reference grid.
            labels: the joint labels (segment names must be among them).
            mode: ``"all"``, ``"tissue"`` or ``"lesion"``: which labels the user checked.
            notify: told (besides the log) when the reference grid crops away labelled voxels.

        Raises:
            FileExistsError: the case exists; DatasetError: incompatible folder; ValueError: bad input, or
                a segmentation that does not overlap the reference volume at all.
        """
        if segmentationNode is None:
            raise ValueError("no segmentation selected: segment the case (Apply) or choose a segmentation")
        if len(volumeNodes) != len(modalities) or any(v is None for v in volumeNodes):
            raise ValueError(f"one volume per modality {list(modalities)} is needed")
        image, geometry = self.readInputs(volumeNodes, resample=resample)
        labelArray = segmentation.labelArrayFromSegmentation(self.scene, segmentationNode, volumeNodes[0], labels,
                                                            self.segmentationsLogic)
        checkExportKeepsLabels(segmentation.labelledVolumeMm3(segmentationNode), labelArray, geometry,
                               segmentationNode.GetName(), volumeNodes[0].GetName(), notify)
        return export.exportCase(folder, caseName, image, geometry, labelArray, labels, modalities, mode)

    def importCase(self, folder: str | os.PathLike, caseName: str, labels: Sequence[JointLabel]):
        """Load a case of a dataset folder: its volumes and its label map as a segmentation.

        Dataset label values are matched to ``labels`` by name (``dataset.json``).

        Returns:
            ``(volumeNodes, segmentationNode)``; segmentationNode is None for an unlabelled case.
        """
        info = read_dataset_info(folder)
        cases = {c.name: c for c in list_cases(folder, info)}
        if caseName not in cases:
            raise ValueError(f"no case {caseName!r} in {str(folder)!r}; cases: {sorted(cases)}")
        image, label, geometry = cases[caseName].read()
        volumes = [mrml_io.addVolumeNode(self.scene, f"{caseName} {m}", image[c], geometry)
                   for c, m in enumerate(info.channel_names)]
        if label is None:
            return volumes, None
        byName = {lab.name.lower(): lab.value for lab in labels}
        unknown = [n for n in info.labels if n.lower() not in byName]
        if unknown:
            raise ValueError(f"{str(folder)!r}: labels {unknown} are not joint labels {[lab.name for lab in labels]}")
        lut = np.zeros(max(info.labels.values()) + 1, dtype=np.uint8)
        for name, value in info.labels.items():
            lut[value] = byName[name.lower()]
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{caseName} labels")
        node.CreateDefaultDisplayNodes()
        self.writeSegmentation(lut[label], labels, volumes[0], node)
        return volumes, node

    # ------------------------------------------------------------------ training
    @staticmethod
    def prepareTraining(folders: Sequence[str | os.PathLike], labels: Sequence[JointLabel],
                        runDir: str | os.PathLike, modalities: Sequence[str] | None = None, loss: str = "ace+dice",
                        iterations: int = 2000, resume: bool = False, device: str = "auto",
                        python: str | None = None) -> TrainingPlan:
        """Write the task of the dataset folders into ``runDir`` and build the ``ace train`` command.

        Raises:
            ValueError: no folder, a folder that is not a dataset or whose labels are not joint labels,
                bad settings, or ``resume`` without a checkpoint in ``runDir``.
        """
        runDir = Path(runDir)
        if resume and not training_process.canResume(runDir):
            raise ValueError(f"{str(runDir)!r} holds no checkpoint to resume from")
        taskPath = training_process.writeTask(runDir, folders, labels, modalities)
        command = training_process.trainCommand(python or pythonExecutable(), taskPath, runDir, loss, iterations,
                                                resume, device)
        import ACELib

        env = training_process.processEnvironment(Path(ACELib.__file__).resolve().parent.parent)
        training_process.writeRunNote(runDir, folders, command)
        return TrainingPlan(command, env, runDir, taskPath)
