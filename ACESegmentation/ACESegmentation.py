"""ACE Segmentation: brain tissue (CSF, GM, WM) and lesions in one click, corrected and retrained in Slicer.

This file holds what Slicer requires of a scripted module: the module description, the widget (GUI
only) and the self-test. The work is done by :class:`ACESegmentationLogic` (``ACESegmentationLib``,
Qt-free, tested with the ``slicer-core`` wheel) on top of ``ACELib``.
"""

import logging
import sys
from pathlib import Path

import ctk
import qt
import slicer
import vtk
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

# Checked before the rest of the module is imported: this file must import on Slicer 5.8 (Python 3.9)
# to say clearly that it needs a newer Slicer (so: no "X | Y" annotation is evaluated in this file).
from ACESegmentationLib.compat import unsupportedReason  # noqa: E402
from ACESegmentationLib.i18n import _  # noqa: E402

UNSUPPORTED = unsupportedReason()
if UNSUPPORTED is None:
    from ACESegmentationLib import models, training_process  # noqa: E402
    from ACESegmentationLib.export import freeCaseName  # noqa: E402
    from ACESegmentationLib.gui_segmentation import SegmentationPanel, showErrors  # noqa: E402
    from ACESegmentationLib.gui_training import TrainingPanel  # noqa: E402
    from ACESegmentationLib.logic import ACESegmentationLogic  # noqa: E402,F401  (re-exported for scripts)
    from ACESegmentationLib.parameters import DEVICES, ACESegmentationParameterNode  # noqa: E402
    from ACESegmentationLib.selftest import runSelfTest  # noqa: E402

    from ACELib.inference.model_schema import ANY_CONTRAST  # noqa: E402

MAX_INPUTS = 4


class ACESegmentation(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("ACE Segmentation")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = ["Segmentations", "Terminologies"]
        self.parent.contributors = ["ACE Segmentation contributors"]
        self.parent.helpText = _(
            "Segments brain tissue (CSF, grey matter, white matter) and lesions (white matter hyperintensities, "
            "or tumour and edema) from T1 (and FLAIR) MRI with one network, then lets you correct the result, "
            "add corrected cases to a training set, and train a model on your own partially labelled cases, "
            "all locally. See docs/slicer.md of the project for a walk-through.<br><br>"
            "<b>The bundled models were trained on simulated brains</b> (phantoms built on the MNI ICBM152 "
            "template, 3 mm voxels) by the project's own pipeline, not on patient scans: treat their output "
            "as a starting point to correct, or train a model on your own cases."
        ) + (f"<br><br><b>{UNSUPPORTED}</b>" if UNSUPPORTED else "")
        self.parent.acknowledgementText = _(
            "The method is the adaptive cross entropy (ACE) loss of N. Roulet, D. Fernandez Slezak and "
            "E. Ferrante, <i>Joint Learning of Brain Lesion and Anatomy Segmentation from Heterogeneous "
            "Datasets</i>, Medical Imaging with Deep Learning (MIDL), 2019. Please cite it when you use "
            "this module."
        )
        if UNSUPPORTED is None:  # segments of a loaded scene refer to the ACE terminology context
            slicer.app.connect("startupCompleted()", loadTerminologyAtStartup)


def loadTerminologyAtStartup():
    try:
        ACESegmentationLogic().loadTerminology()
    except Exception as error:  # never block Slicer's startup
        logging.warning("ACE Segmentation: could not load its terminology: %s", error)


def _isSet(path) -> bool:
    return path is not None and str(path).strip() not in ("", ".")


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
        self._entries = []
        self._modelInfo = (None, None)
        self.segmentation = None
        self.training = None

    # ------------------------------------------------------------------ setup
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if UNSUPPORTED is not None:
            self.layout.addWidget(qt.QLabel(UNSUPPORTED))
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ACESegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ACESegmentationLogic()
        loadTerminologyAtStartup()  # in case the module was added after startup
        for pathEdit in (self.ui.datasetFolderPathLineEdit, self.ui.runFolderPathLineEdit):
            pathEdit.filters = ctk.ctkPathLineEdit.Dirs | ctk.ctkPathLineEdit.Drives
            pathEdit.currentPath = ""
        self.segmentation = SegmentationPanel(self)
        self.ui.addModelFileButton.connect("clicked(bool)", self.onAddModelFile)
        self.ui.modelSelector.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.segmentEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.ui.addToTrainingSetButton.connect("clicked(bool)", self.onAddToTrainingSet)
        self.ui.datasetFolderPathLineEdit.connect("currentPathChanged(QString)",
                                                  lambda path: self.setFolder("datasetFolder", path))
        self.ui.runFolderPathLineEdit.connect("currentPathChanged(QString)",
                                              lambda path: self.setFolder("runFolder", path))
        self.training = TrainingPanel(self)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.initializeParameterNode()
        self.refreshModelList()

    def cleanup(self):
        self.removeObservers()
        if self.segmentation is not None:
            self.segmentation.cleanup()
        if self.training is not None:
            self.training.cleanup()

    def enter(self):
        if UNSUPPORTED is None:
            self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        self.segmentation.cancel()  # its inputs are going away with the scene
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        # Clear(0) keeps the singleton parameter node but wipes its parameters: re-read it, and give
        # it the model the panel shows (otherwise Apply and Train stay disabled).
        self.initializeParameterNode()

    def onNodeAdded(self, caller, event):
        qt.QTimer.singleShot(0, self.prefillInputs)  # once the new volume is fully loaded

    def initializeParameterNode(self):
        self.setParameterNode(ACESegmentationParameterNode(self.logic.getParameterNode()))
        self.prefillInputs()

    def setParameterNode(self, parameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
            self.training.showFolders()
            self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        """What ``connectGui`` does not bind: the model list and the two folder fields; then the buttons."""
        p = self._parameterNode
        if p is None:
            return
        self.syncModelSelector()
        for name, pathEdit in (("datasetFolder", self.ui.datasetFolderPathLineEdit),
                               ("runFolder", self.ui.runFolderPathLineEdit)):
            if pathEdit.currentPath != getattr(p, name):
                pathEdit.currentPath = getattr(p, name)
        self.updateButtons()

    def setFolder(self, name: str, path: str):
        if self._parameterNode is not None and getattr(self._parameterNode, name) != path:
            setattr(self._parameterNode, name, path)

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

    def syncModelSelector(self):
        """Parameter node -> model list when the node names a listed model; else list -> node."""
        p = self._parameterNode
        if p is None:
            return
        shown = self.ui.modelSelector.currentIndex
        index = models.entryIndex(self._entries, p.modelPath)
        if index >= 0 and index != shown:
            self.ui.modelSelector.blockSignals(True)
            self.ui.modelSelector.currentIndex = index
            self.ui.modelSelector.blockSignals(False)
            self.showModelInfo()
        elif index < 0 and shown >= 0:
            p.modelPath = str(self._entries[shown].path)  # fires Modified: the panel updates again

    def refreshModelList(self, select=None):  # a path, or None: keep the choice
        userFiles = [Path(p) for p in _settingsList("ACESegmentation/modelFiles")]
        self._entries = (models.bundledModels()
                         + models.trainedModels(models.defaultRunsRoot())
                         + [models.ModelEntry(p.name, p) for p in userFiles if p.is_file()])
        wanted = select or (self._parameterNode.modelPath if self._parameterNode else "")
        index = models.entryIndex(self._entries, wanted)
        self.ui.modelSelector.blockSignals(True)
        self.ui.modelSelector.clear()
        for entry in self._entries:
            self.ui.modelSelector.addItem(entry.name, str(entry.path))
        self.ui.modelSelector.currentIndex = index if index >= 0 else (0 if self._entries else -1)
        self.ui.modelSelector.blockSignals(False)
        self.onModelChanged()

    def onAddModelFile(self):
        path = qt.QFileDialog.getOpenFileName(self.parent, _("Model file"), "", _("ACE model (*.safetensors)"))
        if not path:
            return
        with showErrors(_("This is not a model file.")):
            models.readModelInfo(path)
            files = _settingsList("ACESegmentation/modelFiles")
            qt.QSettings().setValue("ACESegmentation/modelFiles", list(dict.fromkeys([*files, path])))
            self.refreshModelList(select=path)

    def onModelChanged(self, index: int = -1):
        shown = self.ui.modelSelector.currentIndex
        entry = self._entries[shown] if 0 <= shown < len(self._entries) else None
        if self._parameterNode:
            self._parameterNode.modelPath = str(entry.path) if entry else ""
        self.showModelInfo()
        self.prefillInputs()

    def showModelInfo(self):
        info = self.currentModelInfo()
        modalities = list(info["modalities"]) if info else []
        for i in range(1, MAX_INPUTS + 1):
            visible = i <= max(len(modalities), 1)
            getattr(self.ui, f"inputLabel{i}").visible = visible
            getattr(self.ui, f"inputVolume{i}Selector").visible = visible
            if i <= len(modalities):
                getattr(self.ui, f"inputLabel{i}").text = (_("Image (any contrast):") if modalities == [ANY_CONTRAST]
                                                            else f"{modalities[i - 1]}:")
        names = ", ".join(e["name"] for e in info["labels"][1:]) if info else ""
        self.ui.modelInfoLabel.text = (_("Inputs: {inputs}. Labels: {labels}.").format(
            inputs=", ".join(modalities), labels=names) if info else _("Choose a model, or add a model file."))

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
        busy = self.segmentation.busy
        inputs = self.inputVolumes()
        ready = bool(inputs) and all(v is not None for v in inputs)
        info = self.currentModelInfo()
        # a hetero-modal model segments with some input slots left empty (the Logic checks the subset)
        canSegment = ready or (info is not None and info.get("modality_subsets", "all") != "all"
                               and any(v is not None for v in inputs))
        self.ui.applyButton.enabled = canSegment and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.addToTrainingSetButton.enabled = (ready and self._parameterNode.outputSegmentation is not None
                                                  and _isSet(self._parameterNode.datasetFolder))
        training = self.training.running
        hasFolders = self.ui.datasetFoldersList.count > 0
        self.ui.trainButton.enabled = hasFolders and self.currentModelInfo() is not None and not training
        runFolder = self._parameterNode.runFolder
        self.ui.resumeButton.enabled = not training and _isSet(runFolder) and training_process.canResume(runFolder)
        self.ui.stopTrainingButton.enabled = training

    def torchDevice(self) -> str:
        return DEVICES[self._parameterNode.device]

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
        with showErrors(_("Could not add the case.")):
            info = self.currentModelInfo()
            if info is None:
                raise ValueError(_("choose the model whose labels the segmentation uses"))
            volumes = self.inputVolumes()
            caseName = p.caseName or freeCaseName(p.datasetFolder, volumes[0].GetName())
            case = self.logic.addToTrainingSet(p.datasetFolder, volumes, p.outputSegmentation,
                                               models.jointLabelsOf(info), info["modalities"], caseName,
                                               p.annotated, p.resample)
            self.ui.statusLabel.text = _("Added case '{case}' to {folder}.").format(case=case.name,
                                                                                     folder=p.datasetFolder)
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
