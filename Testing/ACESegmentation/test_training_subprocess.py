"""`ace train` in a separate process on exported folders, stopped from a terminal (SIGTERM), leaving a
checkpoint to resume from. (Stopped the way the module stops it, through a launcher that forwards no
signal: test_training_panel.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ACESegmentationLib import export, training_process
from ACESegmentationLib.logic import ACESegmentationLogic
from factory import WMH_LABELS

from ACELib.io.image import Geometry
from ACELib.training import control

LABELS = WMH_LABELS
SHAPE = (12, 14, 13)
TINY = ["--base-channels", "2", "--depth", "2", "--patch-size", "8", "--batch-size", "2", "--threads", "1"]


def _folders(tmp_path):
    rng = np.random.default_rng(0)
    geometry = Geometry(tuple(reversed(SHAPE)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    for mode in ("tissue", "lesion"):
        for k in range(2):
            labels = rng.integers(0, 5, SHAPE).astype(np.uint8)
            image = np.stack([labels * 20.0 + rng.normal(0, 1, SHAPE), labels * 10.0]).astype(np.float32)
            export.exportCase(tmp_path / mode, f"{mode}{k}", image, geometry, labels, LABELS, ("T1", "FLAIR"), mode)
    return [tmp_path / "tissue", tmp_path / "lesion"]


@pytest.mark.skipif(sys.platform == "win32", reason="a terminal's Ctrl-C/SIGTERM is POSIX")
def test_sigterm_from_a_terminal_keeps_a_checkpoint_to_resume(tmp_path):
    run, folders = tmp_path / "run", _folders(tmp_path)
    plan = ACESegmentationLogic.prepareTraining(folders, LABELS, run, iterations=100000,
                                                python=sys.executable)
    process = subprocess.Popen(plan.command + TINY, env=plan.environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    events, offset = [], 0
    try:
        deadline = time.monotonic() + 120
        while not any(e["event"] == "step" for e in events) and time.monotonic() < deadline:
            more, offset = control.read_progress(control.progress_file(run), offset)
            events += more
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    events += control.read_progress(control.progress_file(run), offset)[0]
    steps = [e for e in events if e["event"] == "step"]
    assert steps and steps[0]["total"] == 100000 and "loss" in steps[0]["message"], output
    assert process.returncode == 3, output
    assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped" and events[-1]["reason"] == "signal"
    assert "stopped; checkpoint kept" in output
    assert training_process.canResume(run) and training_process.trainedModel(run) is None
    assert training_process.readTrainingLog(run)[0][0] == 1
    resume = ACESegmentationLogic.prepareTraining(folders, LABELS, run, resume=True, python=sys.executable)
    assert resume.command[-1] == "--resume"
