"""Training started the way the module starts it: a separate `ace train` process on exported folders,
stopped with SIGTERM (the module's Stop), leaving a checkpoint to resume from."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest
from ACESegmentationLib import export, training_process
from ACESegmentationLib.logic import ACESegmentationLogic
from factory import WMH_LABELS

from ACELib.io.image import Geometry

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


@pytest.mark.skipif(sys.platform == "win32", reason="Stop relies on SIGTERM")
def test_stop_keeps_a_checkpoint_to_resume(tmp_path):
    run, folders = tmp_path / "run", _folders(tmp_path)
    plan = ACESegmentationLogic.prepareTraining(folders, LABELS, run, iterations=100000,
                                                python=sys.executable)
    process = subprocess.Popen(plan.command + TINY, env=plan.environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    events, lines = [], []
    try:
        for line in process.stdout:  # the module reads the same merged output
            lines.append(line)
            event = training_process.parseTrainingLine(line)
            if event is not None and event.step:
                events.append(event)
                process.send_signal(signal.SIGTERM)  # the module's Stop button
                break
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    lines += rest.splitlines()
    assert events and events[0].total == 100000 and events[0].loss is not None, "".join(lines)
    assert process.returncode == 3, "".join(lines)
    assert any(training_process.parseTrainingLine(x) and training_process.parseTrainingLine(x).stopped
               for x in lines)
    assert training_process.canResume(run) and training_process.trainedModel(run) is None
    assert training_process.readTrainingLog(run)[0][0] == 1
    resume = ACESegmentationLogic.prepareTraining(folders, LABELS, run, resume=True, python=sys.executable)
    assert resume.command[-1] == "--resume"
