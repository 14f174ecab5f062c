"""The training panel (gui_training.TrainingPanel) run on Qt stand-ins that behave like PythonQt, with
``ace train`` started the way Slicer starts it: through a launcher that ignores and forwards no signal.

What the real application adds (its event loop, CTK's real launcher) is not here; what broke inside it
is: ``bytes(QByteArray)``, Stop by signal, no ``errorOccurred`` handler, a loss plot whose nodes went
with the scene, and errors re-raised by ``tryWithErrorDisplay``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")
import qt_standins  # noqa: E402
from ACESegmentationLib import export, processes, training_process  # noqa: E402
from ACESegmentationLib.logic import ACESegmentationLogic, TrainingPlan  # noqa: E402
from factory import WMH_LABELS  # noqa: E402
from launcher_standin import installLauncher  # noqa: E402

from ACELib.io.image import Geometry  # noqa: E402
from ACELib.training import control  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the launcher stand-in is a POSIX script")

SHAPE = (12, 14, 13)
TINY = "--base-channels 2 --depth 2 --patch-size 8 --batch-size 2 --threads 1 --val-interval 100000"
INFO = {"modalities": ["T1", "FLAIR"],
        "labels": [{"name": lab.name, "value": lab.value, "color": "#" + bytes(lab.color).hex()} for lab in WMH_LABELS]}


class Widget:
    """A widget stand-in with what PythonQt widgets offer to the panel."""

    def __init__(self, **values):
        self.__dict__.update(values)
        self.enabled, self.lines, self.items, self.currentRow, self.value, self.maximum = True, [], [], -1, 0, 100

    def connect(self, signal, slot):
        pass

    def appendPlainText(self, text):
        self.lines.append(text)

    def clear(self):
        self.items = []

    def addItems(self, items):
        self.items += list(items)

    def addItem(self, item):
        self.items.append(item)

    @property
    def count(self):
        return len(self.items)

    def layout(self):
        return types.SimpleNamespace(addWidget=lambda widget: None)


class ModuleWidget:
    """The module widget, as far as the training panel uses it."""

    def __init__(self, folders, runDir):
        names = ["addDatasetFolderButton", "removeDatasetFolderButton", "trainButton", "resumeButton",
                 "stopTrainingButton", "datasetFoldersList", "trainingProgressBar", "trainingLog", "lossPlotFrame"]
        self.ui = types.SimpleNamespace(**{n: Widget() for n in names})
        self.logic = ACESegmentationLogic()
        self.parent = None
        self._parameterNode = types.SimpleNamespace(datasetFolders=[str(f) for f in folders], runFolder=str(runDir),
                                                    loss="ace", iterations=100000)
        self.refreshed, self.buttonUpdates = [], 0

    def currentModelInfo(self):
        return INFO

    def torchDevice(self):
        return "cpu"

    def updateButtons(self):
        self.buttonUpdates += 1

    def refreshModelList(self, select=None):
        self.refreshed.append(select)


class PlotWidget:
    def setMRMLScene(self, scene):
        pass

    def setMRMLPlotViewNode(self, node):
        self.view = node

    def setParent(self, parent):
        pass


@pytest.fixture
def shown(monkeypatch, slicerContext):
    """Qt stand-ins installed, Slicer's GUI helpers replaced; returns the errors shown to the user."""
    qt_standins.install(monkeypatch)
    errors = []

    @contextlib.contextmanager
    def tryWithErrorDisplay(message="", waitCursor=False):  # as Slicer's: shows the error, then re-raises
        try:
            yield
        except Exception as error:
            errors.append(f"{message} {error}")
            raise

    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", tryWithErrorDisplay, raising=False)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *a, **k: True, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", slicerContext.scene, raising=False)
    monkeypatch.setattr(slicer, "qMRMLPlotWidget", PlotWidget, raising=False)
    for name in ("ACESegmentationLib.gui_segmentation", "ACESegmentationLib.gui_training"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield errors
    qt_standins.reset()


def _panel(tmp_path, folders=()):
    gui = importlib.import_module("ACESegmentationLib.gui_training")
    widget = ModuleWidget(folders, tmp_path / "run")
    return gui.TrainingPanel(widget), widget


def _folders(tmp_path):
    rng = np.random.default_rng(0)
    geometry = Geometry(tuple(reversed(SHAPE)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    for mode in ("tissue", "lesion"):
        labels = rng.integers(0, 5, SHAPE).astype(np.uint8)
        image = np.stack([labels * 20.0 + rng.normal(0, 1, SHAPE), labels * 10.0]).astype(np.float32)
        export.exportCase(tmp_path / mode, f"{mode}0", image, geometry, labels, WMH_LABELS, ("T1", "FLAIR"), mode)
    return [tmp_path / "tissue", tmp_path / "lesion"]


@pytest.fixture
def launcher(monkeypatch, tmp_path):
    """``PythonSlicer`` on PATH is the launcher stand-in (the Logic picks it as Slicer's Python)."""
    path = installLauncher(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ACE_TEST_EXTRA_ARGS", TINY)
    return path


def _treeOf(panel, minimum=2, timeout=30.0):
    assert qt_standins.runUntil(lambda: len(panel.run.scanProcesses(force=True)) >= minimum, timeout)
    return list(panel.run.pids)


def test_qbytearray_standin_refuses_bytes_like_pythonqt():
    data = qt_standins.QByteArray(b"step 1")
    with pytest.raises(TypeError, match="QByteArray"):
        bytes(data)
    assert data.data() == b"step 1"


def test_stop_through_a_launcher_stops_the_trainer_and_leaves_no_process(shown, launcher, tmp_path):
    panel, widget = _panel(tmp_path, _folders(tmp_path))
    panel.onTrain(resume=False)
    assert shown == [] and panel.running and panel.process.program() == str(launcher)
    ui = widget.ui
    assert qt_standins.runUntil(lambda: ui.trainingProgressBar.value >= 2, 120), ui.trainingLog.lines
    assert ui.trainingProgressBar.maximum == 100000
    assert any("train" in line and "/100000" in line for line in ui.trainingLog.lines)  # the console, via .data()
    tree = _treeOf(panel)  # the launcher and the trainer under it
    panel.onStopTraining()
    assert control.stop_file(panel.run.runDir).is_file()
    panel.run.poll()
    stepAtStop = panel.run.step
    assert qt_standins.runUntil(lambda: not panel.running, 60), ui.trainingLog.lines
    assert panel.run.status == "stopped", ui.trainingLog.lines
    assert panel.run.end["step"] <= stepAtStop + 1  # the step in progress, no more
    assert training_process.canResume(panel.run.runDir) and not control.stop_file(panel.run.runDir).exists()
    assert [p for p in tree if processes.isAlive(p)] == []
    assert ui.trainingLog.lines[-1].startswith("Stopped at step")


def test_a_run_that_ignores_stop_has_its_whole_tree_killed(shown, launcher, tmp_path, monkeypatch):
    monkeypatch.setattr(training_process, "STOP_GRACE_S", 0.5)
    sleeper = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    panel, widget = _panel(tmp_path)
    run = tmp_path / "run"
    plan = TrainingPlan([str(launcher), "-c", sleeper], training_process.processEnvironment(tmp_path), run, run)
    widget.logic.prepareTraining = lambda *a, **k: plan
    panel.onTrain(resume=False)
    tree = _treeOf(panel)
    panel.onStopTraining()
    assert qt_standins.runUntil(lambda: not panel.running, 30), widget.ui.trainingLog.lines
    assert [p for p in tree if processes.isAlive(p)] == []
    assert any("did not stop in time" in line for line in widget.ui.trainingLog.lines)


def test_a_program_that_cannot_start_ends_the_run(shown, tmp_path):
    panel, widget = _panel(tmp_path)
    run = tmp_path / "run"
    plan = TrainingPlan([str(tmp_path / "no" / "PythonSlicer"), "-m", "x"], {}, run, run)
    widget.logic.prepareTraining = lambda *a, **k: plan
    panel.onTrain(resume=False)
    assert not panel.running and not panel.pollTimer.isActive()
    assert any(line.startswith("Could not start") for line in widget.ui.trainingLog.lines)


def test_a_failed_start_is_shown_and_leaves_the_panel_usable(shown, tmp_path):
    panel, widget = _panel(tmp_path, [tmp_path / "not-a-dataset"])
    panel.onTrain(resume=False)  # tryWithErrorDisplay re-raises: the panel must not
    assert len(shown) == 1 and "Could not start training." in shown[0]
    assert not panel.running and widget.buttonUpdates >= 1


def test_loss_plot_comes_back_after_a_scene_close(shown, slicerContext, tmp_path):
    panel, _ = _panel(tmp_path)
    panel.runDir = tmp_path / "run"
    panel.runDir.mkdir()
    (panel.runDir / "log.csv").write_text("step,loss\n1,0.9\n2,0.7\n")
    panel.updateLossPlot()
    slicerContext.scene.Clear(0)
    panel.updateLossPlot()
    tables = list(slicerContext.scene.GetNodesByClass("vtkMRMLTableNode"))
    assert len(tables) == 1 and tables[0].GetTable().GetNumberOfRows() == 2
