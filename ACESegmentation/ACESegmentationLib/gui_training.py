"""The 'Train on your cases' panel (Qt, used by the widget only): dataset folders, the training process,
its live log, progress and loss plot, Stop and Resume.

Training runs ``ace train`` in a separate process (QProcess), so Slicer stays responsive and a failure
there cannot take Slicer down. Stop sends SIGTERM: ``ace train`` writes a checkpoint and exits; Resume
continues from it. (On Windows, where console processes ignore that signal, Stop kills the process after
30 s; the checkpoint written every ``--checkpoint-interval`` steps is kept.)
"""

from __future__ import annotations

import time

import numpy as np
import qt
import slicer

from ACESegmentationLib import dependencies, models, training_process

STOP_GRACE_MS = 30000


class TrainingPanel:
    """Drives the training widgets of the module panel.

    Args:
        widget: the module widget (its ``ui``, ``logic``, parameter node and model list are used).
    """

    def __init__(self, widget):
        self.widget = widget
        self.ui = widget.ui
        self.process = None
        self.runDir = None
        self.plot = None
        self.plotTimer = qt.QTimer()
        self.plotTimer.setInterval(2000)
        self.plotTimer.timeout.connect(self.updateLossPlot)
        self.ui.addDatasetFolderButton.connect("clicked(bool)", self.onAddDatasetFolder)
        self.ui.removeDatasetFolderButton.connect("clicked(bool)", self.onRemoveDatasetFolder)
        self.ui.trainButton.connect("clicked(bool)", lambda: self.onTrain(resume=False))
        self.ui.resumeButton.connect("clicked(bool)", lambda: self.onTrain(resume=True))
        self.ui.stopTrainingButton.connect("clicked(bool)", self.onStopTraining)

    @property
    def parameters(self):
        return self.widget._parameterNode

    @property
    def running(self) -> bool:
        return self.process is not None

    def cleanup(self) -> None:
        self.plotTimer.stop()
        if self.process is not None:
            self.process.kill()

    def showFolders(self) -> None:
        self.ui.datasetFoldersList.clear()
        self.ui.datasetFoldersList.addItems(list(self.parameters.datasetFolders))

    def addFolder(self, folder: str) -> None:
        if folder and folder not in self.parameters.datasetFolders:
            self.parameters.datasetFolders = [*self.parameters.datasetFolders, folder]
            self.ui.datasetFoldersList.addItem(folder)
        self.widget.updateButtons()

    def onAddDatasetFolder(self) -> None:
        self.addFolder(qt.QFileDialog.getExistingDirectory(self.widget.parent, "Dataset folder"))

    def onRemoveDatasetFolder(self) -> None:
        row = self.ui.datasetFoldersList.currentRow
        if row >= 0:
            self.ui.datasetFoldersList.takeItem(row)
            self.parameters.datasetFolders = [f for i, f in enumerate(self.parameters.datasetFolders) if i != row]
            self.widget.updateButtons()

    def onTrain(self, resume: bool) -> None:
        p = self.parameters
        with slicer.util.tryWithErrorDisplay("Could not start training.", waitCursor=True):
            dependencies.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
            info = self.widget.currentModelInfo()
            if info is None:
                raise ValueError("choose a model first: the new model learns its labels")
            if not (p.runFolder is not None and str(p.runFolder) not in ("", ".")):
                p.runFolder = models.defaultRunsRoot() / time.strftime("run-%Y%m%d-%H%M%S")
            plan = self.widget.logic.prepareTraining(
                list(p.datasetFolders), models.jointLabelsOf(info), p.runFolder, loss=p.loss,
                iterations=p.iterations, resume=resume, device=self.widget.torchDevice())
            process = qt.QProcess()
            environment = qt.QProcessEnvironment()
            for key, value in plan.environment.items():
                environment.insert(key, value)
            process.setProcessEnvironment(environment)
            process.setProcessChannelMode(qt.QProcess.MergedChannels)
            process.connect("readyReadStandardOutput()", self.onOutput)
            process.connect("finished(int,QProcess::ExitStatus)", self.onFinished)
            self.process, self.runDir = process, plan.runDir
            self.ui.trainingProgressBar.value = 0
            self.ui.trainingLog.appendPlainText(" ".join(plan.command))
            process.start(plan.command[0], plan.command[1:])
            self.plotTimer.start()
            self.widget.updateButtons()

    def onOutput(self) -> None:
        text = bytes(self.process.readAllStandardOutput()).decode("utf-8", errors="replace")
        for line in text.replace("\r", "\n").splitlines():
            if not line.strip():
                continue
            self.ui.trainingLog.appendPlainText(line)
            event = training_process.parseTrainingLine(line)
            if event is not None and event.total:
                self.ui.trainingProgressBar.maximum = event.total
                self.ui.trainingProgressBar.value = event.step

    def onStopTraining(self) -> None:
        process = self.process
        if process is None:
            return
        self.ui.trainingLog.appendPlainText("Stopping: writing a checkpoint ...")
        process.terminate()

        def killIfRunning():
            if self.process is process and process.state() != qt.QProcess.NotRunning:
                process.kill()

        qt.QTimer.singleShot(STOP_GRACE_MS, killIfRunning)

    def onFinished(self, exitCode, exitStatus) -> None:
        self.updateLossPlot()
        self.plotTimer.stop()
        model = training_process.trainedModel(self.runDir)
        if exitCode == 0 and model is not None:
            self.ui.trainingLog.appendPlainText(f"Finished: {model}")
            self.widget.refreshModelList(select=str(model))
        else:
            self.ui.trainingLog.appendPlainText(
                f"Training ended (exit code {exitCode}). Resume continues from the last checkpoint.")
        self.process = None
        self.widget.updateButtons()

    def updateLossPlot(self) -> None:
        rows = training_process.readTrainingLog(self.runDir) if self.runDir is not None else []
        if not rows:
            return
        if self.plot is None:
            self.plot = LossPlot(self.ui.lossPlotFrame)
        self.plot.update(rows)


class LossPlot:
    """Training loss against step, drawn by Slicer's plot widget from a hidden table node."""

    def __init__(self, frame):
        scene = slicer.mrmlScene
        self.table = scene.AddNewNodeByClass("vtkMRMLTableNode", "ACE training loss")
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", "loss")
        series.SetAndObserveTableNodeID(self.table.GetID())
        series.SetXColumnName("step")
        series.SetYColumnName("loss")
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleNone)
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", "ACE training")
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        chart.SetXAxisTitle("step")
        chart.SetYAxisTitle("loss")
        view = scene.AddNewNodeByClass("vtkMRMLPlotViewNode", "ACE training view")
        view.SetPlotChartNodeID(chart.GetID())
        for node in (self.table, series, chart, view):
            node.SetHideFromEditors(True)
            node.SetSaveWithScene(False)
        self.widget = slicer.qMRMLPlotWidget()
        self.widget.setMRMLScene(scene)
        self.widget.setMRMLPlotViewNode(view)
        frame.layout().addWidget(self.widget)

    def update(self, rows) -> None:
        slicer.util.updateTableFromArray(self.table, np.array(rows, dtype=float), ["step", "loss"])
