"""The stop file and the JSON-lines progress of `ace train` (ACELib.training.control, cli/cmd_train)."""

from __future__ import annotations

import json

import pytest
from factory import make_tiny_task

from ACELib.cli.main import main
from ACELib.training import control
from ACELib.training.checkpoint import load_checkpoint

TINY = ["--base-channels", "2", "--depth", "2", "--patch-size", "8", "--batch-size", "2", "--threads", "1",
        "--device", "cpu", "--val-interval", "1000"]


def test_stop_watcher_sees_the_file_or_a_signal(tmp_path):
    flag = {"set": False}
    watcher = control.StopWatcher(tmp_path, lambda: flag["set"])
    assert not watcher() and watcher.reason is None
    control.request_stop(tmp_path)
    assert watcher() and watcher.reason == "stop file"
    watcher.clear()
    assert not control.stop_file(tmp_path).exists()
    assert not control.clear_stop(tmp_path)
    flag["set"] = True
    assert control.StopWatcher(tmp_path, lambda: flag["set"]).reason is None
    signalled = control.StopWatcher(tmp_path, lambda: flag["set"])
    assert signalled() and signalled.reason == "signal"


def test_progress_writer_waits_for_the_run_folder(tmp_path):
    writer = control.ProgressWriter(tmp_path)
    writer.event("start", total=5)
    assert not control.progress_file(tmp_path).exists()  # the run's checks have not passed yet
    (tmp_path / "config.json").write_text("{}")
    writer(1, 5, "joint loss 0.5")
    events, _ = control.read_progress(control.progress_file(tmp_path))
    assert [e["event"] for e in events] == ["start", "step"]


def test_progress_reader_keeps_an_unfinished_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    writer = control.ProgressWriter(tmp_path)
    writer.event("start", total=5)
    writer(1, 5, "joint loss 0.5")
    path = control.progress_file(tmp_path)
    with open(path, "a") as f:
        f.write('not json\n{"event": "step", "st')  # a foreign line, then a line being written
    events, offset = control.read_progress(path)
    assert [e["event"] for e in events] == ["start", "step"]
    assert events[1]["step"] == 1 and events[1]["total"] == 5 and events[1]["message"] == "joint loss 0.5"
    with open(path, "a") as f:
        f.write('ep": 2, "total": 5}\n')
    more, offset2 = control.read_progress(path, offset)
    assert more == [{"event": "step", "step": 2, "total": 5}] and offset2 == path.stat().st_size
    assert control.read_progress(tmp_path / "missing.jsonl", 7) == ([], 7)


@pytest.fixture(scope="module")
def taskFile(tmp_path_factory):
    return make_tiny_task(tmp_path_factory.mktemp("ctl"), n_anatomy=2, n_lesion=2, n_test=0, shape=(12, 12, 12))


def test_train_stops_on_the_stop_file_and_removes_it(taskFile, tmp_path):
    run = tmp_path / "run"
    control.request_stop(run)  # before the first step: no step is run, the checkpoint is written
    code = main(["train", "--task", str(taskFile), "--out", str(run), "--iterations", "50", *TINY])
    assert code == 3
    assert not control.stop_file(run).exists()
    assert load_checkpoint(run / "checkpoint.safetensors").step == 0
    events = [json.loads(line) for line in control.progress_file(run).read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["total"] == 50
    assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped"
    assert events[-1]["reason"] == "stop file"


def test_train_reports_every_step_and_the_model(taskFile, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--task", str(taskFile), "--out", str(run), "--iterations", "3", *TINY]) == 0
    events, _ = control.read_progress(control.progress_file(run))
    assert [e.get("step") for e in events if e["event"] == "step"] == [1, 2, 3]
    assert events[-1]["status"] == "finished" and events[-1]["model"] == str(run / "model.safetensors")
