"""The ace train command line, its output lines and run folders, as seen by the Slicer module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ACESegmentationLib import models
from ACESegmentationLib import training_process as tp
from ACESegmentationLib.models import ModelEntry, bundledModels, trainedModels

from ACELib.inference import create_model, metadata
from ACELib.labels import JointLabel
from ACELib.losses import LOSSES as LIBRARY_LOSSES
from ACELib.losses import names
from ACELib.training import curves

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_training_run_reads_progress_and_times_the_stop(tmp_path):
    from ACELib.training import control

    run = tmp_path / "run"
    control.request_stop(run)  # left by a run that was killed: must not stop the next one
    (run / "config.json").write_text("{}")  # a run folder that passed its checks
    writer = control.ProgressWriter(run)
    writer.event("start", total=9)  # an earlier run's events: not this run's
    clock = Clock()
    tr = tp.TrainingRun(run, graceSeconds=10, clock=clock)
    assert not control.stop_file(run).exists()
    assert tr.poll() == [] and tr.status is None
    writer.event("start", total=100)
    writer(3, 100, "joint loss 0.5")
    assert [e["event"] for e in tr.poll()] == ["start", "step"] and (tr.step, tr.total) == (3, 100)
    tr.requestStop()
    assert control.stop_file(run).is_file() and not tr.stopOverdue()
    clock.now = 10.5
    assert tr.stopOverdue()
    writer.event("end", status="stopped", step=4)
    tr.poll()
    assert tr.status == "stopped" and tr.summary(3).startswith("Stopped at step 4")
    assert tp.TrainingRun(tmp_path / "other").summary(1).startswith("Training ended without a report (exit code 1)")


def test_losses_are_the_library_losses():
    assert set(tp.LOSSES) == set(LIBRARY_LOSSES) and tp.LOSSES[0] == "ace"


def test_train_command():
    cmd = tp.trainCommand("py", "t.json", "run", "marginal", 50, resume=True, device="cpu")
    assert cmd == ["py", "-u", "-m", "ACELib.cli.main", "train", "--task", "t.json", "--out", "run", "--loss",
                   "marginal", "--iterations", "50", "--device", "cpu", "--resume"]
    with pytest.raises(ValueError, match="loss must be one of .*got 'cross'"):
        tp.trainCommand("py", "t.json", "run", "cross")
    with pytest.raises(ValueError, match="iterations must be >= 1, got 0"):
        tp.trainCommand("py", "t.json", "run", iterations=0)


def test_environment_puts_acelib_first():
    env = tp.processEnvironment("/x/repo", {"PYTHONPATH": os.pathsep.join(["/a", "/x/repo"]), "HOME": "/h"})
    assert env["PYTHONPATH"] == os.pathsep.join(["/x/repo", "/a"]) and env["HOME"] == "/h"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_run_folders(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    assert tp.readTrainingLog(run) == [] and tp.trainedModel(run) is None and not tp.canResume(run)
    (run / "log.csv").write_text("step,loss,patches_per_s,val_dice,elapsed_s\n1,0.9,3,,1\n2,0.7,3,0.5,2\n3,nan,3,,3\n")
    assert tp.readTrainingLog(run) == [(1, 0.9), (2, 0.7)]
    (run / "checkpoint.safetensors").write_bytes(b"x")
    assert tp.canResume(run)
    (run / "model.safetensors").write_bytes(b"x")
    assert tp.trainedModel(run) == run / "model.safetensors"
    assert trainedModels(tmp_path / "runs") == [ModelEntry("r1 (trained)", run / "model.safetensors", None, "trained")]
    assert trainedModels(tmp_path / "none") == []


def test_bundled_catalogue(tmp_path):
    (tmp_path / "catalogue.json").write_text(
        '{"models": [{"name": "WMH", "file": "wmh.safetensors", "sha256": "ab", "url": "https://x/wmh"}]}')
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "catalogue.json").write_text('{"models": [{"file": "no name"}]}')
    assert bundledModels([tmp_path, bad, tmp_path / "missing"]) == [
        ModelEntry("WMH", tmp_path / "wmh.safetensors", "ab", "bundled", "https://x/wmh")]


def test_model_headers_losses_and_logs_are_read_by_acelib(tmp_path, monkeypatch):
    labels = (JointLabel("background", 0, (0, 0, 0)), JointLabel("WMH", 4, (255, 50, 50)))
    path = tmp_path / "m.safetensors"
    create_model(labels, ("FLAIR",), base_channels=2, depth=2).save(path)
    assert models.readModelInfo(path) == metadata.read_model_metadata(path)
    assert models.jointLabelsOf(models.readModelInfo(path)) == labels
    monkeypatch.setattr(metadata, "read_model_metadata", lambda p: {"read by": "ACELib", "path": p})
    assert models.readModelInfo(path) == {"read by": "ACELib", "path": path}
    assert tp.LOSSES == tuple(names.LOSSES)
    assert tp.read_log is curves.read_log and tp.log_series is curves.log_series


def test_the_module_reads_models_and_logs_without_torch(tmp_path):
    """What the panel reads before torch is installed: model headers, the loss list, a run's log."""
    labels = (JointLabel("background", 0, (0, 0, 0)), JointLabel("WMH", 4, (255, 50, 50)))
    create_model(labels, ("T1", "FLAIR"), base_channels=2, depth=2).save(tmp_path / "m.safetensors")
    (tmp_path / "log.csv").write_text("step,loss\n1,0.9\n2,0.7\n")
    code = ("import json, sys\nsys.modules['torch'] = None\n"
            "from ACESegmentationLib import models, training_process as tp\n"
            "info = models.readModelInfo(sys.argv[1])\n"
            "print(json.dumps([info['modalities'], [lab.name for lab in models.jointLabelsOf(info)], "
            "list(tp.LOSSES), tp.readTrainingLog(sys.argv[2])]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "ACESegmentation"), str(REPO), *sys.path])}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.safetensors"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["T1", "FLAIR"], ["background", "WMH"], list(tp.LOSSES), [[1, 0.9], [2, 0.7]]]
