"""The 'Train on your cases' panel (Qt, used by the widget only): dataset folders, the training process,
its live log, progress and loss plot, Stop and Resume.

Training runs ``ace train`` in a separate process (QProcess), so Slicer stays responsive and a failure
there cannot take Slicer down. Inside Slicer that process is CTK's launcher (``PythonSlicer``), which
forwards no signal to the Python that trains, so nothing here relies on signals: progress is read from
``RUN/progress.jsonl``, Stop writes ``RUN/STOP`` (``ace train`` finishes its step, writes a checkpoint and
exits), and only a run that does not stop within ``STOP_GRACE_S`` (or a second press of Stop) has its
whole process tree killed. See :class:`ACESegmentationLib.training_process.TrainingRun`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import qt
import slicer

from ACESegmentationLib import dependencies, models, training_process
from ACESegmentationLib.gui_segmentation import showErrors
from ACESegmentationLib.i18n import _

POLL_MS = 500
#: how long closing the module (or Slicer) waits for a stopped run to write its checkpoint
EXIT_WAIT_MS = 15000


class TrainingPanel:
    """Drives the training widgets of the module panel.

    Args:
        widget: the module widget (its ``ui``, ``logic``, parameter node and model list are used).
    """

    def __init__(self, widget):
        self.widget = widget
        self.ui = widget.ui
        self.process = None
        self.run = None
        self.runDir = None
        self.plot = None
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(POLL_MS)
        self.pollTimer.timeout.connect(self.poll)
        self._polls = 0
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

    def log(self, text: str) -> None:
        self.ui.trainingLog.appendPlainText(text)

    def cleanup(self) -> None:
        """Module closed or Slicer exiting: ask the run to stop, give it time for its checkpoint, then
        make sure no process of the tree is left."""
        self.pollTimer.stop()
        process, run = self.process, self.run
        if process is None:
            return
        run.requestStop()
        if not process.waitForFinished(EXIT_WAIT_MS) or run.leftovers():
            run.killAll()
        self.process = None

    def showFolders(self) -> None:
        self.ui.datasetFoldersList.clear()
        self.ui.datasetFoldersList.addItems(list(self.parameters.datasetFolders))

    def addFolder(self, folder: str) -> None:
        if folder and folder not in self.parameters.datasetFolders:
            self.parameters.datasetFolders = [*self.parameters.datasetFolders, folder]
            self.ui.datasetFoldersList.addItem(folder)
        self.widget.updateButtons()

    def onAddDatasetFolder(self) -> None:
        self.addFolder(qt.QFileDialog.getExistingDirectory(self.widget.parent, _("Dataset folder")))

    def onRemoveDatasetFolder(self) -> None:
        row = self.ui.datasetFoldersList.currentRow
        if row >= 0:
            self.ui.datasetFoldersList.takeItem(row)
            self.parameters.datasetFolders = [f for i, f in enumerate(self.parameters.datasetFolders) if i != row]
            self.widget.updateButtons()

    def onTrain(self, resume: bool) -> None:
        with showErrors(_("Could not start training.")):
            self.startTraining(resume)
        self.widget.updateButtons()

    def startTraining(self, resume: bool) -> None:
        p = self.parameters
        dependencies.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
        info = self.widget.currentModelInfo()
        if info is None:
            raise ValueError(_("choose a model first: the new model learns its labels"))
        if not str(p.runFolder or "").strip():
            p.runFolder = str(models.defaultRunsRoot() / time.strftime("run-%Y%m%d-%H%M%S"))
        plan = self.widget.logic.prepareTraining(
            list(p.datasetFolders), models.jointLabelsOf(info), Path(p.runFolder), loss=p.loss,
            iterations=p.iterations, resume=resume, device=self.widget.torchDevice())
        process = qt.QProcess()
        environment = qt.QProcessEnvironment()
        for key, value in plan.environment.items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.setProcessChannelMode(qt.QProcess.MergedChannels)
        process.connect("readyReadStandardOutput()", self.onOutput)
        process.connect("finished(int,QProcess::ExitStatus)", self.onFinished)
        process.connect("errorOccurred(QProcess::ProcessError)", self.onProcessError)
        self.process, self.runDir = process, plan.runDir
        self.run = training_process.TrainingRun(plan.runDir)
        self.ui.trainingProgressBar.value = 0
        self.log(" ".join(plan.command))
        process.start(plan.command[0], plan.command[1:])
        if self.process is process:  # errorOccurred may have ended it already
            self.run.attach(process.processId())
            self.pollTimer.start()
        self.widget.updateButtons()

    def onOutput(self) -> None:
        """The console output of ``ace train``, shown as it is (PythonQt hands a QByteArray: ``.data()``)."""
        if self.process is None:
            return
        text = self.process.readAllStandardOutput().data().decode("utf-8", errors="replace")
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                self.log(line)

    def poll(self) -> None:
        """Progress from ``progress.jsonl``, the loss plot from ``log.csv``, and the Stop deadline."""
        if self.run is None:
            return
        self.run.poll()
        if self.run.total:
            self.ui.trainingProgressBar.maximum = self.run.total
            self.ui.trainingProgressBar.value = self.run.step
        self._polls += 1
        if self._polls % 4 == 0:
            self.updateLossPlot()
        if self.process is not None and self.run.stopOverdue():
            self.killRun(_("The run did not stop in time: killing its processes."))

    def onStopTraining(self) -> None:
        if self.process is None or self.run is None:
            return
        if self.run.stopRequestedAt is not None:  # pressed again: do not wait
            self.killRun(_("Stopping now: killing the training processes."))
            return
        self.run.requestStop()
        self.log(_("Stopping after the current step, then writing a checkpoint ... (press Stop again to kill "
                   "the run at once)"))

    def killRun(self, message: str) -> None:
        self.log(message)
        killed = self.run.killAll()
        if killed:
            self.log(_("Killed processes {pids}.").format(pids=", ".join(str(p) for p in killed)))

    def onProcessError(self, error) -> None:
        """QProcess could not start the program (or lost it); ``finished`` may never come."""
        if error == qt.QProcess.FailedToStart:
            program = self.process.program() if self.process is not None else ""
            self.log(_("Could not start {program}: {error}").format(
                program=program, error=self.process.errorString() if self.process is not None else error))
            self.endRun(None)

    def onFinished(self, exitCode, exitStatus) -> None:
        self.endRun(exitCode)

    def endRun(self, exitCode) -> None:
        run = self.run
        self.pollTimer.stop()
        if run is not None:
            self.poll()
            if run.leftovers():  # the launcher ended but the trainer did not (it was killed alone)
                self.log(_("The training process outlived its launcher: killing it."))
                run.killAll()
            self.log(run.summary(exitCode))
            model = training_process.trainedModel(run.runDir)
            if run.status == "finished" and model is not None:
                self.widget.refreshModelList(select=str(model))
        self.updateLossPlot()
        self.process = None
        self.widget.updateButtons()

    def updateLossPlot(self) -> None:
        rows = training_process.readTrainingLog(self.runDir) if self.runDir is not None else []
        if not rows:
            return
        if self.plot is not None and not self.plot.isInScene():  # the scene was closed: nodes are gone
            self.plot.close()
            self.plot = None
        if self.plot is None:
            self.plot = LossPlot(self.ui.lossPlotFrame)
        self.plot.update(rows)


class LossPlot:
    """Training loss against step, drawn by Slicer's plot widget from a hidden table node."""

    def __init__(self, frame):
        scene = slicer.mrmlScene
        self.table = scene.AddNewNodeByClass("vtkMRMLTableNode", _("ACE training loss"))
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

    def isInScene(self) -> bool:
        return self.table.GetScene() is not None

    def close(self) -> None:
        """Remove the plot widget from the panel (its nodes went with the scene)."""
        self.widget.setParent(None)

    def update(self, rows) -> None:
        slicer.util.updateTableFromArray(self.table, np.array(rows, dtype=float), ["step", "loss"])
