"""The 'Segmentation' part of the panel (Qt, used by the widget only): Apply runs the model off the GUI
thread with a progress bar and Cancel, then writes the segmentation on the GUI thread."""

from __future__ import annotations

import logging

import qt
import slicer

from ACESegmentationLib import dependencies
from ACESegmentationLib.background import BackgroundJob
from ACESegmentationLib.i18n import _


def showErrors(message: str) -> _ShownErrors:
    """``slicer.util.tryWithErrorDisplay`` that does not re-raise.

    ``tryWithErrorDisplay`` shows the error and then raises it again, which would leave the panel half-way
    (Apply disabled, Cancel enabled); here the error is shown and swallowed, and the caller restores the
    panel after the ``with`` block.
    """
    return _ShownErrors(message)


class _ShownErrors:
    """Context manager: errors are shown (``slicer.util.tryWithErrorDisplay``) and then swallowed, so the
    panel's state is restored by the caller instead of being left half-way by a re-raised exception."""

    def __init__(self, message: str):
        self.message = message
        self.inner = None

    def __enter__(self):
        self.inner = slicer.util.tryWithErrorDisplay(self.message, waitCursor=True)
        self.inner.__enter__()
        return self

    def __exit__(self, kind, value, traceback):
        try:
            self.inner.__exit__(kind, value, traceback)
        except Exception:  # the error has been shown: swallow it (the caller resets the panel)
            logging.debug("ACE Segmentation: %s", self.message, exc_info=True)
        return kind is not None and issubclass(kind, Exception)


class SegmentationPanel:
    """Apply, Cancel, the progress bar and the status line.

    Args:
        widget: the module widget (its ``ui``, ``logic``, parameter node and model entries are used).
    """

    def __init__(self, widget):
        self.widget = widget
        self.ui = widget.ui
        self.logic = widget.logic
        self._job = None
        self._pending = None
        self._models = {}
        self.ui.progressBar.hide()
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.pollJob)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)

    @property
    def busy(self) -> bool:
        return self._job is not None

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def cleanup(self) -> None:
        self._timer.stop()
        self.cancel()

    def updateButtons(self) -> None:
        self.widget.updateButtons()

    def loadModel(self):
        p = self.widget._parameterNode
        entry = next((e for e in self.widget._entries if str(e.path) == p.modelPath), None)
        if entry is None:
            raise ValueError(_("choose a model first"))
        if not entry.path.is_file() and entry.url:  # a bundled model not downloaded yet
            ok = slicer.util.downloadFile(entry.url, str(entry.path),
                                          checksum=f"SHA256:{entry.sha256}" if entry.sha256 else None)
            if not ok or not entry.path.is_file():  # downloadFile returns False instead of raising
                raise RuntimeError(_("could not download the model from {url}").format(url=entry.url))
        key = (str(entry.path), self.widget.torchDevice())
        if key not in self._models:  # keep one model in memory
            self._models = {key: self.logic.loadModel(entry.path, self.widget.torchDevice(), entry.sha256)}
        return self._models[key]

    def onApply(self):
        with showErrors(_("Segmentation failed.")):
            self.startSegmentation()
        self.updateButtons()

    def startSegmentation(self):
        p = self.widget._parameterNode
        dependencies.ensureDependencies(confirm=slicer.util.confirmOkCancelDisplay)
        output = p.outputSegmentation
        replace = False
        if output is not None and output.GetSegmentation().GetNumberOfSegments():
            if not slicer.util.confirmYesNoDisplay(_("Replace the segments of '{name}'?").format(name=output.GetName())):
                return
            replace = True
        model = self.loadModel()
        names, volumes = self.logic.inputSubset(model, self.widget.inputVolumes())  # empty slots left out
        warning = model.metadata.unsupported_labels_warning(names)
        if warning and not slicer.util.confirmOkCancelDisplay(_("{warning}. Segment anyway?").format(warning=warning)):
            return
        image, geometry = self.logic.readInputs(volumes, p.resample)
        self._pending = (model.labels, volumes[0], output, replace, p.showIn3D)
        self._job = BackgroundJob(lambda progress, cancel, notify: self.logic.predictLabels(
            model, image, geometry, progress, cancel, notify, modalities=names)).start()
        self.ui.progressBar.show()
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = _("Segmenting on {device} ...").format(device=model.device)
        self._timer.start()

    def onCancel(self):
        if self._job is not None:
            self._job.cancel()
            self.ui.statusLabel.text = _("Cancelling ...")

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
        labels, reference, output, replace, showIn3D = self._pending
        self._pending = None
        if status.state == "cancelled":
            self.ui.statusLabel.text = _("Cancelled.")
        elif status.state == "failed":
            self.ui.statusLabel.text = _("Failed.")
            slicer.util.errorDisplay(_("Segmentation failed: {error}").format(error=status.error))
        elif reference.GetScene() is None or (output is not None and output.GetScene() is None):
            self.ui.statusLabel.text = _("The scene was closed: the result was discarded.")
        else:
            with showErrors(_("Could not create the segmentation.")):
                node = self.logic.writeSegmentation(status.result, labels, reference, output, replace, showIn3D)
                if self.widget._parameterNode is not None:
                    self.widget._parameterNode.outputSegmentation = node
                previous = slicer.mrmlScene.GetFirstNodeByName(f"{node.GetName()} volumes")
                table = self.logic.volumeTable(node, reference, labels, previous)  # voxels and mL per label
                self.ui.statusLabel.text = _("Done in {seconds:.1f} s. Volumes: table '{table}'.").format(
                    seconds=status.elapsed, table=table.GetName())
        self.updateButtons()

