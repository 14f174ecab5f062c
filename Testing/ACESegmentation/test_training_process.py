"""The ace train command line, its output lines and run folders, as seen by the Slicer module."""

from __future__ import annotations

import os

import pytest
from ACESegmentationLib import training_process as tp
from ACESegmentationLib.models import ModelEntry, bundledModels, trainedModels

from ACELib.losses import LOSSES as LIBRARY_LOSSES

LINES = [
    ("train [####........] 12/100  12% 3.10 step/s ETA 0:28 | joint loss 0.4321 | 21.7 patches/s",
     tp.TrainingEvent(step=12, total=100, loss=0.4321)),
    ("DEBUG step 20/100 joint loss 1.5e-01 | 3.0 patches/s | val Dice 0.812",
     tp.TrainingEvent(step=20, total=100, loss=0.15, valDice=0.812)),
    ("INFO joint step 40 validation Dice 0.7731 {1: 0.8}", tp.TrainingEvent(valDice=0.7731)),
    ("model: /runs/r1/model.safetensors (best validation Dice joint: 0.810)",
     tp.TrainingEvent(valDice=None, modelPath="/runs/r1/model.safetensors")),
    ("INFO finished: model written to /runs/r1/model.safetensors",
     tp.TrainingEvent(modelPath="/runs/r1/model.safetensors")),
    ("stopped; checkpoint kept in /runs/r1 (continue with --resume)", tp.TrainingEvent(stopped=True)),
    ("ace train: error: task file 'x.json' does not exist",
     tp.TrainingEvent(error="ace train: error: task file 'x.json' does not exist")),
    ("loss nan at step 3/10", tp.TrainingEvent(step=3, total=10, loss=float("nan"))),
    ("", None),
    ("INFO loaded 3 cases", None),
    ("spacing 1.0/2.0 mm", None),
]


@pytest.mark.parametrize(("line", "event"), LINES)
def test_parse_training_lines(line, event):
    got = tp.parseTrainingLine(line)
    if event is None or event.loss is None or event.loss == event.loss:
        assert got == event
    else:  # NaN loss
        assert got.step == event.step and got.loss != got.loss


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
