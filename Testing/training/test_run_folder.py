"""Run folders: one writer at a time, resume only the same run, and a failed start never blocks a rerun."""

import json
import os
import subprocess
import sys
import time

import pytest
from factory import make_tiny_task

from ACELib.cli.main import main
from ACELib.io.image import read_image, write_image
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train
from ACELib.training.lock import LOCK_NAME, RunLock, RunLockedError

CFG = TrainConfig(loss="ace+dice", iterations=2, batch_size=2, patch_size=8, base_channels=2, depth=2,
                  validation_interval=2, checkpoint_interval=2, device="cpu")
TINY = ["--iterations", "2", "--batch-size", "2", "--patch-size", "8", "--base-channels", "2", "--depth", "2",
        "--val-interval", "2", "--checkpoint-interval", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def task_path(tmp_path_factory):
    return make_tiny_task(tmp_path_factory.mktemp("run"), n_anatomy=2, n_lesion=2, n_test=0, shape=(10, 10, 10))


def _hold_lock(run):
    """A second process holding the run folder's lock (as a running `ace train` does)."""
    code = ("import sys, time; from ACELib.training.lock import RunLock\n"
            f"with RunLock({str(run)!r}):\n    print('locked', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_on_a_run_folder_is_refused(task_path, tmp_path, capsys):
    run = tmp_path / "run"
    train(load_task(task_path), run, CFG)
    log_before = (run / "log.csv").read_text()
    holder = _hold_lock(run)
    try:
        with pytest.raises(RunLockedError, match=rf"is in use by process {holder.pid}"):
            train(load_task(task_path), run, CFG.with_changes(iterations=4), resume=True)
        capsys.readouterr()
        assert main(["train", "--task", str(task_path), "--out", str(run), *TINY, "--iterations", "4",
                     "--resume"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err and err.count("\n") == 1
    finally:
        holder.kill()
        holder.wait()
    assert (run / "log.csv").read_text() == log_before
    # the holder died without releasing: its lock is stale and taken over
    assert (run / LOCK_NAME).exists()
    result = train(load_task(task_path), run, CFG.with_changes(iterations=4), resume=True)
    assert result.steps == {"joint": 4} and not (run / LOCK_NAME).exists()


def test_lock_is_released_when_training_fails(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path), pytest.raises(RunLockedError, match="in use by process"):
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": os.uname().nodename}))
        RunLock(tmp_path).__enter__()


@pytest.mark.parametrize("change, message", [
    ("label_meaning", r"cannot resume .* with another task: datasets: run has"),
    ("new_label", r"cannot resume .* with another task: labels: run has"),
])
def test_resume_with_a_changed_task_is_refused(task_path, tmp_path, change, message):
    run = tmp_path / "run"
    train(load_task(task_path), run, CFG)
    saved = (run / "task.json").read_text()
    data = json.loads(task_path.read_text())
    if change == "label_meaning":
        data["datasets"][0]["labels"] = {"1": "GM", "2": "CSF", "3": "WM"}
    else:
        data["labels"].append({"name": "tumour", "value": 9, "color": "#00ff00"})
    other = task_path.with_name(f"other_{change}.json")
    other.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        train(load_task(other), run, CFG.with_changes(iterations=4), resume=True)
    assert (run / "task.json").read_text() == saved


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_resume_without_a_run_says_so(task_path, tmp_path, capsys, folder):
    run = tmp_path / "run"
    if folder == "empty":
        run.mkdir()
    assert main(["train", "--task", str(task_path), "--out", str(run), *TINY, "--resume"]) == 2
    assert "holds no training run to resume (no config.json); drop --resume" in capsys.readouterr().err
    assert not run.exists() or not any(run.iterdir())


@pytest.mark.parametrize("bad", [["--lr", "nan"], ["--lr", "inf"], ["--lr", "-1"], ["--iterations", "0"],
                                 "nan_image"])
def test_failed_start_writes_nothing_and_never_blocks_the_rerun(tmp_path, capsys, bad):
    task_path = make_tiny_task(tmp_path / "data", n_anatomy=2, n_lesion=2, n_test=0, shape=(10, 10, 10))
    image = task_path.parent / "anatomy/imagesTr/anatomy_000_0000.nii.gz"
    arr, geom = read_image(image)
    if bad == "nan_image":
        broken = arr.copy()
        broken[1, 1, 1] = float("nan")
        write_image(image, broken, geom)
    run = tmp_path / "run"
    args = ["train", "--task", str(task_path), "--out", str(run), *TINY]
    assert main([*args, *(bad if isinstance(bad, list) else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ace train: error:") and ("NaN or Inf" in err or bad[0].lstrip("-") in err)
    assert not run.exists()
    write_image(image, arr, geom)
    assert main(args) == 0


def test_diverging_loss_names_the_learning_rate(task_path, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--task", str(task_path), "--out", str(run), *TINY, "--iterations", "30",
            "--checkpoint-interval", "30", "--val-interval", "30"]
    start = time.perf_counter()
    assert main([*args, "--lr", "1e30"]) == 2
    err = capsys.readouterr().err
    assert "the loss diverged" in err and "lower --lr (e.g. to 1e+29)" in err and "Traceback" not in err, err
    assert time.perf_counter() - start < 60
    assert main(args) == 0  # no checkpoint was reached: the corrected rerun starts afresh
