"""ACE Segmentation: brain tissue (CSF, GM, WM) and lesions in one click, corrected and retrained in Slicer.

This file holds what Slicer requires of a scripted module: the module description, the widget (GUI
only) and the self-test. The work is done by :class:`ACESegmentationLogic` (``ACESegmentationLib``,
Qt-free, tested with the ``slicer-core`` wheel) on top of ``ACELib``.
"""

import logging
import sys
from pathlib import Path
from typing import Annotated

import ctk
import qt
import slicer
import vtk
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

try:  # from a source checkout ACELib is next to this folder; in a built extension it is installed beside it
    import ACELib  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ACESegmentationLib import dependencies, models, training_process  # noqa: E402
from ACESegmentationLib.background import BackgroundJob  # noqa: E402
from ACESegmentationLib.export import ANNOTATION_MODES, freeCaseName  # noqa: E402
from ACESegmentationLib.gui_training import TrainingPanel  # noqa: E402
from ACESegmentationLib.logic import ACESegmentationLogic  # noqa: E402,F401  (re-exported for scripts)
from ACESegmentationLib.selftest import runSelfTest  # noqa: E402

DEVICES = {"auto": "auto", "GPU": "cuda", "CPU": "cpu"}
MAX_INPUTS = 4


class ACESegmentation(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ACE Segmentation"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "Terminologies"]
        self.parent.contributors = ["ACE Segmentation contributors"]
        self.parent.helpText = (
            "Segments brain tissue (CSF, grey matter, white matter) and lesions (white matter hyperintensities, "
            "or tumour and edema) from T1 (and FLAIR) MRI with one network, then lets you correct the result, "
            "add corrected cases to a training set, and train a model on your own partially labelled cases, "
            "all locally. See docs/slicer.md of the project for a walk-through.<br><br>"
            "<b>The bundled models were trained on simulated brains</b> (phantoms built on the MNI ICBM152 "
            "template, 3 mm voxels) by the project's own pipeline, not on patient scans: treat their output "
            "as a starting point to correct, or train a model on your own cases."
        )
        self.parent.acknowledgementText = (
            "The method is the adaptive cross entropy (ACE) loss of N. Roulet, D. Fernandez Slezak and "
            "E. Ferrante, <i>Joint Learning of Brain Lesion and Anatomy Segmentation from Heterogeneous "
            "Datasets</i>, Medical Imaging with Deep Learning (MIDL), 2019. Please cite it when you use "
            "this module."
        )


@parameterNodeWrapper
class ACESegmentationParameterNode:
    """Everything the panel shows, saved with the scene."""

    inputVolume1: slicer.vtkMRMLScalarVolumeNode
    inputVolume2: slicer.vtkMRMLScalarVolumeNode
    inputVolume3: slicer.vtkMRMLScalarVolumeNode
    inputVolume4: slicer.vtkMRMLScalarVolumeNode
    outputSegmentation: slicer.vtkMRMLSegmentationNode
    modelPath: str = ""
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    resample: bool = False
    showIn3D: bool = False
    datasetFolder: Path
    caseName: str = ""
    annotated: Annotated[str, Choice(list(ANNOTATION_MODES))] = "all"
    datasetFolders: list[str]
    loss: Annotated[str, Choice(list(training_process.LOSSES))] = "ace"
    iterations: Annotated[int, WithinRange(1, 1000000)] = 2000
    runFolder: Path


def _isSet(path) -> bool:
    return path is not None and str(path) not in ("", ".")


def _settingsList(key: str) -> list:
    """A list stored in Slicer's settings (QSettings returns a plain string for a one-item list)."""
    value = qt.QSettings().value(key, [])
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


class ACESegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: GUI only; every action calls the Logic and shows its errors."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._pending = None
        self._models = {}
        self._entries = []
        self._modelInfo = (None, None)
        self.training = None

    # ------------------------------------------------------------------ setup
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ACESegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ACESegmentationLogic()
        for pathEdit in (self.ui.datasetFolderPathLineEdit, self.ui.runFolderPathLineEdit):
            pathEdit.filters = ctk.ctkPathLineEdit.Dirs | ctk.ctkPathLineEdit.Drives
        self.ui.progressBar.hide()
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.pollJob)

        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.addModelFileButton.connect("clicked(bool)", self.onAddModelFile)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.segmentEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.ui.addToTrainingSetButton.connect("clicked(bool)", self.onAddToTrainingSet)
        self.training = TrainingPanel(self)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.initializeParameterNode()
        self.refreshModelList()

    def cleanup(self):
        self.removeObservers()
        if self._job is not None:
            self._job.cancel()
        if self.training is not None:
            self.training.cleanup()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onNodeAdded(self, caller, event):
        qt.QTimer.singleShot(0, self.prefillInputs)  # once the new volume is fully loaded

    def initializeParameterNode(self):
        self.setParameterNode(ACESegmentationParameterNode(self.logic.getParameterNode()))
        self.prefillInputs()

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.training.showFolders()
            self.updateButtons()

    # ------------------------------------------------------------------ models
    def currentModelInfo(self):
        """Labels and modalities of the selected model (read from its file header, cached), or None."""
        path = self._parameterNode.modelPath if self._parameterNode else ""
        try:
            key = (path, Path(path).stat().st_mtime) if path else None
        except OSError:
            key = None
        if key is None:
            return None
        if self._modelInfo[0] != key:
            try:
                self._modelInfo = (key, models.readModelInfo(path))
            except (OSError, ValueError):
                self._modelInfo = (key, None)
        return self._modelInfo[1]

    def refreshModelList(self, select: str | None = None):
        userFiles = [Path(p) for p in _settingsList("ACESegmentation/modelFiles")]
        self._entries = (models.bundledModels()
                         + models.trainedModels(models.defaultRunsRoot())
                         + [models.ModelEntry(p.name, p) for p in userFiles if p.is_file()])
        wanted = select or (self._parameterNode.modelPath if self._parameterNode else "")
        self.ui.modelSelector.blockSignals(True)
        self.ui.modelSelector.clear()
        for entry in self._entries:
            self.ui.modelSelector.addItem(entry.name, str(entry.path))
        paths = [str(e.path) for e in self._entries]
        self.ui.modelSelector.currentIndex = paths.index(wanted) if wanted in paths else (0 if paths else -1)
        self.ui.modelSelector.blockSignals(False)
        self.onModelChanged()

    def onAddModelFile(self):
        path = qt.QFileDialog.getOpenFileName(self.parent, "Model file", "", "ACE model (*.safetensors)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay("This is not a model file.", waitCursor=True):
            models.readModelInfo(path)
            files = _settingsList("ACESegmentation/modelFiles")
            qt.QSettings().setValue("ACESegmentation/modelFiles", list(dict.fromkeys([*files, path])))
            self.refreshModelList(select=path)

    def onModelChanged(self, index: int = -1):
        entry = self._entries[self.ui.modelSelector.currentIndex] if self.ui.modelSelector.currentIndex >= 0 else None
        if self._parameterNode:
            self._parameterNode.modelPath = str(entry.path) if entry else ""
        info = self.currentModelInfo()
        modalities = list(info["modalities"]) if info else []
        for i in range(1, MAX_INPUTS + 1):
            visible = i <= max(len(modalities), 1)
            getattr(self.ui, f"inputLabel{i}").visible = visible
            getattr(self.ui, f"inputVolume{i}Selector").visible = visible
            if i <= len(modalities):
                getattr(self.ui, f"inputLabel{i}").text = f"{modalities[i - 1]}:"
        names = ", ".join(e["name"] for e in info["labels"][1:]) if info else ""
        self.ui.modelInfoLabel.text = (f"Inputs: {', '.join(modalities)}. Labels: {names}." if info
                                       else "Choose a model, or add a model file.")
        self.prefillInputs()

    def prefillInputs(self):
        info = self.currentModelInfo()
        if not info or not self._parameterNode:
            return
        volumes = list(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"))
        volumes = [v for v in volumes if not v.IsA("vtkMRMLLabelMapVolumeNode")]
        for i, node in enumerate(self.logic.matchVolumes(info["modalities"], volumes).values(), 1):
            if i <= MAX_INPUTS and node is not None and getattr(self._parameterNode, f"inputVolume{i}") is None:
                setattr(self._parameterNode, f"inputVolume{i}", node)

    def inputVolumes(self) -> list:
        info = self.currentModelInfo()
        count = len(info["modalities"]) if info else 0
        return [getattr(self._parameterNode, f"inputVolume{i}") for i in range(1, count + 1)]

    def updateButtons(self, caller=None, event=None):
        if not self._parameterNode:
            return
        busy = self._job is not None
        inputs = self.inputVolumes()
        ready = bool(inputs) and all(v is not None for v in inputs)
        self.ui.applyButton.enabled = ready and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.addToTrainingSetButton.enabled = (ready and self._parameterNode.outputSegmentation is not None
                                                  and _isSet(self._parameterNode.datasetFolder))
        training = self.training.running
        hasFolders = self.ui.datasetFoldersList.count > 0
        self.ui.trainButton.enabled = hasFolders and self.currentModelInfo() is not None and not training
        runFolder = self._parameterNode.runFolder
        self.ui.resumeButton.enabled = (not training and _isSet(runFolder)
                                        and training_process.canResume(runFolder))
        self.ui.stopTrainingButton.enabled = training

    # ------------------------------------------------------------------ segmentation
    def torchDevice(self) -> str:
        return DEVICES[self._parameterNode.device]

    def loadModel(self):
        p = self._parameterNode
        entry = next((e for e in self._entries if str(e.path) == p.modelPath), None)
        if entry is None:
            raise ValueError("choose a model first")
        if not entry.path.is_file() and entry.url:  # a bundled model not downloaded yet
            slicer.util.downloadFile(entry.url, str(entry.path),
                                     checksum=f"SHA256:{entry.sha256}" if entry.sha256 else None)
        key = (str(entry.path), self.torchDevice())
        if key not in self._models:  # keep one model in memory
            self._models = {key: self.logic.loadModel(entry.path, self.torchDevice(), entry.sha256)}
        return self._models[key]

    def onApply(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Segmentation failed.", waitCursor=True):
            dependencies.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            output = p.outputSegmentation
            replace = False
            if output is not None and output.GetSegmentation().GetNumberOfSegments():
                if not slicer.util.confirmYesNoDisplay(f"Replace the segments of '{output.GetName()}'?"):
                    return
                replace = True
            volumes = self.inputVolumes()
            model = self.loadModel()
            image, geometry = self.logic.readInputs(volumes, p.resample)
            self._pending = (model.labels, volumes[0], output, replace)
            self._job = BackgroundJob(lambda progress, cancel, notify: self.logic.predictLabels(
                model, image, geometry, progress, cancel, notify)).start()
            self.ui.progressBar.show()
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = f"Segmenting on {model.device} ..."
            self._timer.start()
            self.updateButtons()

    def onCancel(self):
        if self._job is not None:
            self._job.cancel()
            self.ui.statusLabel.text = "Cancelling ..."

    def pollJob(self):
        if self._job is None:
            self._timer.stop()
            return
        status = self._job.poll()
        if status.total:
            self.ui.progressBar.maximum = status.total
            self.ui.progressBar.value = status.done
        for notice in status.notices:
            slicer.util.showStatusMessage(notice, 5000)
            self.ui.statusLabel.text = notice
        if not status.isDone:
            return
        self._timer.stop()
        self._job = None
        self.ui.progressBar.hide()
        labels, reference, output, replace = self._pending
        self._pending = None
        if status.state == "cancelled":
            self.ui.statusLabel.text = "Cancelled."
        elif status.state == "failed":
            self.ui.statusLabel.text = "Failed."
            slicer.util.errorDisplay(f"Segmentation failed: {status.error}")
        else:
            with slicer.util.tryWithErrorDisplay("Could not create the segmentation.", waitCursor=True):
                node = self.logic.writeSegmentation(status.result, labels, reference, output, replace,
                                                    self._parameterNode.showIn3D)
                self._parameterNode.outputSegmentation = node
                previous = slicer.mrmlScene.GetFirstNodeByName(f"{node.GetName()} volumes")
                table = self.logic.volumeTable(node, reference, labels, previous)  # voxels and mL per label
                self.ui.statusLabel.text = f"Done in {status.elapsed:.1f} s. Volumes: table '{table.GetName()}'."
        self.updateButtons()

    # ------------------------------------------------------------------ correction and training set
    def onOpenSegmentEditor(self):
        p = self._parameterNode
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        if p.outputSegmentation is not None:
            editor.setSegmentationNode(p.outputSegmentation)
        if p.inputVolume1 is not None:
            setSource = getattr(editor, "setSourceVolumeNode", None) or editor.setMasterVolumeNode
            setSource(p.inputVolume1)

    def onAddToTrainingSet(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not add the case.", waitCursor=True):
            info = self.currentModelInfo()
            if info is None:
                raise ValueError("choose the model whose labels the segmentation uses")
            volumes = self.inputVolumes()
            caseName = p.caseName or freeCaseName(p.datasetFolder, volumes[0].GetName())
            case = self.logic.addToTrainingSet(p.datasetFolder, volumes, p.outputSegmentation,
                                               models.jointLabelsOf(info), info["modalities"], caseName,
                                               p.annotated, p.resample)
            self.ui.statusLabel.text = f"Added case '{case.name}' to {p.datasetFolder}."
            p.caseName = ""
            self.training.addFolder(str(p.datasetFolder))

class ACESegmentationTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: a synthetic two-channel volume, a tiny untrained model, the whole workflow."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SegmentCorrectExport()

    def test_SegmentCorrectExport(self):
        self.delayDisplay("Segmenting a synthetic volume with a tiny model")
        try:
            import torch  # noqa: F401
        except ImportError:
            self.delayDisplay("PyTorch is not installed: install it (PyTorch extension) to run this test")
            return
        report = runSelfTest(ACESegmentationLogic())
        logging.info("ACE Segmentation self-test: %s", report)
        self.delayDisplay("Test passed")
