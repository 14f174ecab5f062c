"""First-use dependencies (with stand-ins for Slicer's installers) and background jobs."""

from __future__ import annotations

import threading
import types

import pytest
from ACESegmentationLib import dependencies as deps
from ACESegmentationLib.background import BackgroundJob


def test_never_installs_what_slicer_ships():
    names = {req.split(">")[0].split("=")[0].lower() for req in deps.PIP_REQUIREMENTS.values()}
    assert names.isdisjoint({"numpy", "simpleitk", "torch"})
    assert deps.missingPackages() == []  # this test environment has everything


def test_missing_pip_package_is_installed_after_asking(monkeypatch):
    monkeypatch.setattr(deps, "PIP_REQUIREMENTS", {"ace_not_a_real_package": "ace-not-a-real-package>=1"})
    asked, installed = [], []
    with pytest.raises(deps.DependencyError, match="could not be installed"):
        deps.ensurePipPackages(lambda msg: asked.append(msg) or True, installed.append)
    assert installed == [["ace-not-a-real-package>=1"]] and "ace-not-a-real-package>=1" in asked[0]
    with pytest.raises(deps.DependencyError, match="were not installed \\(cancelled\\)"):
        deps.ensurePipPackages(lambda msg: False, installed.append)
    assert len(installed) == 1


def test_torch_comes_from_the_pytorch_extension(monkeypatch):
    calls = []

    class Logic:
        def installTorch(self, askConfirmation=False, torchVersionRequirement=None):
            calls.append((askConfirmation, torchVersionRequirement))
            return None  # the user declined

    monkeypatch.setattr(deps, "isInstalled", lambda name: name != "torch")
    with pytest.raises(deps.DependencyError, match="PyTorch was not installed"):
        deps.ensureTorch(types.SimpleNamespace(PyTorchUtilsLogic=Logic))
    assert calls == [(True, deps.TORCH_REQUIREMENT)]
    monkeypatch.setattr(deps.importlib, "import_module", lambda name: (_ for _ in ()).throw(ModuleNotFoundError(name)))
    with pytest.raises(deps.DependencyError, match="install the 'PyTorch' extension from the Extensions Manager"):
        deps.ensureTorch()


def test_job_reports_progress_notices_and_result():
    gate, reported = threading.Event(), threading.Event()

    def work(progress, cancel, notify):
        progress(1, 4, "window 1")
        notify("fell back to CPU")
        reported.set()
        gate.wait(5)
        return 42

    job = BackgroundJob(work).start()
    assert reported.wait(5)
    status = job.poll()
    assert (status.state, status.done, status.total, status.message) == ("running", 1, 4, "window 1")
    assert status.notices == ["fell back to CPU"] and job.poll().notices == []
    gate.set()
    final = job.wait(5)
    assert final.state == "finished" and final.result == 42 and final.isDone


def test_job_failure_and_cancel():
    def fails(progress, cancel, notify):
        raise ValueError("bad spacing")

    status = BackgroundJob(fails).start().wait(5)
    assert status.state == "failed" and str(status.error) == "bad spacing"

    def loops(progress, cancel, notify):
        while not cancel():
            pass
        raise RuntimeError("stopped")

    job = BackgroundJob(loops).start()
    job.cancel()
    assert job.wait(5).state == "cancelled" and job.cancelRequested
