"""Training from Slicer: the ``ace train`` command line, its progress, its log, Stop and its model.

Training runs in a separate Python process (Slicer's own Python: ``PythonSlicer`` or
``sys.executable``), so a crash or an out-of-memory error never takes Slicer down. ``PythonSlicer`` is
CTK's launcher, which forwards no signal to the Python it starts, so Stop is a file: the panel writes
``RUN/STOP``, ``ace train`` finishes its step, writes a checkpoint, exits and removes the file; only if
that takes longer than :data:`STOP_GRACE_S` is the whole process tree killed. Progress is read from
``RUN/progress.jsonl`` (JSON lines), never parsed from the console output. See :class:`TrainingRun`.

Run folder (written by ``ace train``): ``task.json``, ``config.json``, ``log.csv``, ``curves.png``,
``progress.jsonl``, ``checkpoint.safetensors``, ``model_last.safetensors`` and, once finished,
``model.safetensors``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ACELib.data.task_builder import task_from_dataset_folders
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import JointLabel, save_task
from ACELib.losses.names import LOSSES as LIBRARY_LOSSES
from ACELib.training import control
from ACELib.training.curves import log_series, read_log
from ACESegmentationLib import processes

TASK_FILE = "slicer_task.json"
MODEL_FILES = ("model.safetensors", "model_last.safetensors")
#: loss names of ``ace train --loss``, ACE first: ACELib's list, which needs no torch, so the
#: GUI lists them before torch is installed.
LOSSES = tuple(LIBRARY_LOSSES)
#: seconds a stop request may take (the current step, a validation if one is due, the checkpoint)
#: before the panel kills the process tree.
STOP_GRACE_S = 120.0


class TrainingRun:
    """One ``ace train`` process as the panel sees it, without Qt: progress, stop request, last-resort kill.

    ``ace train`` reports into ``progress.jsonl`` and obeys the ``STOP`` file of its run folder
    (:mod:`ACELib.training.control`), so nothing here depends on signals reaching the trainer through
    Slicer's launcher. The pids of the process tree are remembered while it runs, so that a trainer
    whose launcher has gone can still be found and killed.

    Args:
        runDir: the run folder.
        graceSeconds: how long a stop request may take (the current step, plus the checkpoint) before
            :meth:`stopOverdue` says to kill the tree.
        clock: seconds, monotonic (a stand-in in tests).
    """

    def __init__(self, runDir: str | os.PathLike, graceSeconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.runDir = Path(runDir)
        self.graceSeconds = float(STOP_GRACE_S if graceSeconds is None else graceSeconds)
        self.clock = clock
        self.pid: int | None = None
        self.pids: list[int] = []
        self.stopRequestedAt: float | None = None
        self.step = 0
        self.total = 0
        self.end: dict | None = None
        self._progress = control.progress_file(self.runDir)
        self._offset = self._progress.stat().st_size if self._progress.is_file() else 0
        self._lastScan = -math.inf
        control.clear_stop(self.runDir)  # a request left by a run that was killed must not stop this one

    def attach(self, pid: int | None) -> None:
        """The pid of the started process (the launcher, inside Slicer)."""
        self.pid = int(pid) if pid else None
        self.scanProcesses()

    def scanProcesses(self, force: bool = False) -> list[int]:
        """Remember the process and its descendants (at most every 5 s unless ``force``); returns the
        pids known."""
        now = self.clock()
        if self.pid is not None and (force or now - self._lastScan >= 5.0):
            self._lastScan = now
            seen = [self.pid, *processes.descendantPids(self.pid)]
            self.pids = list(dict.fromkeys([*self.pids, *seen]))
        return self.pids

    def poll(self) -> list[dict]:
        """New progress events (``{"event": "start" | "step" | "end", ...}``) since the last poll."""
        self.scanProcesses()
        events, self._offset = control.read_progress(self._progress, self._offset)
        for event in events:
            if event["event"] == "step":
                self.step, self.total = int(event.get("step", 0)), int(event.get("total", 0))
            elif event["event"] == "start":
                self.total = int(event.get("total", 0))
            elif event["event"] == "end":
                self.end = event
        return events

    @property
    def status(self) -> str | None:
        """``"finished"``, ``"stopped"`` or ``"failed"`` once ``ace train`` reported its end, else None."""
        return self.end.get("status") if self.end else None

    def requestStop(self) -> None:
        """Ask ``ace train`` to stop after its current step (writes ``RUN/STOP``)."""
        control.request_stop(self.runDir, "stop requested from Slicer")
        if self.stopRequestedAt is None:
            self.stopRequestedAt = self.clock()

    def stopOverdue(self) -> bool:
        """True when a stop was requested more than ``graceSeconds`` ago."""
        return self.stopRequestedAt is not None and self.clock() - self.stopRequestedAt > self.graceSeconds

    def leftovers(self) -> list[int]:
        """Known pids of the tree that still run."""
        return [p for p in self.pids if processes.isAlive(p)]

    def killAll(self) -> list[int]:
        """Kill the process tree (launcher, trainer, its workers); returns the pids killed."""
        if self.pid is None:
            return []
        killed = processes.killProcessTree(self.pid, also=self.pids)
        control.clear_stop(self.runDir)
        return killed

    def summary(self, exitCode: int | None = None) -> str:
        """One line for the log once the process has ended."""
        if self.status == "finished":
            return f"Finished: {self.end.get('model', trainedModel(self.runDir))}"
        if self.status == "stopped":
            return f"Stopped at step {self.end.get('step', self.step)}; Resume continues from the checkpoint."
        if self.status == "failed":
            return f"Training failed: {self.end.get('error', '')}"
        return (f"Training ended without a report (exit code {exitCode}); Resume continues from the last "
                "checkpoint, if one was written.")


def readTrainingLog(runDir: str | os.PathLike) -> list[tuple[int, float]]:
    """``(step, loss)`` rows of the run's ``log.csv`` so far (a Multi-UNet's first member's; empty if there
    is none yet), read by ACELib's log reader; rows without a finite loss are left out."""
    paths = sorted(Path(runDir).glob("log.csv")) or sorted(Path(runDir).glob("members/*/log.csv"))
    try:
        rows = read_log(paths[0]) if paths else []
    except OSError:
        return []
    return list(zip(*log_series(rows, "loss")))


def trainedModel(runDir: str | os.PathLike) -> Path | None:
    """The model a run produced: ``model.safetensors`` once finished, else None."""
    path = Path(runDir) / MODEL_FILES[0]
    return path if path.is_file() else None


def canResume(runDir: str | os.PathLike) -> bool:
    """True when the run folder holds a checkpoint to continue from."""
    runDir = Path(runDir)
    return (runDir / "checkpoint.safetensors").is_file() or any(runDir.glob("members/*/checkpoint.safetensors"))


def writeTask(runDir: str | os.PathLike, folders: Sequence[str | os.PathLike], labels: Sequence[JointLabel],
              modalities: Sequence[str] | None = None, name: str = "slicer") -> Path:
    """Build the task of the dataset folders and save it as ``slicer_task.json`` in ``runDir``."""
    task = task_from_dataset_folders(folders, labels, name=name, modalities=modalities)
    runDir = Path(runDir)
    runDir.mkdir(parents=True, exist_ok=True)
    path = runDir / TASK_FILE
    save_task(task, path)
    return path


def trainCommand(python: str, taskPath: str | os.PathLike, runDir: str | os.PathLike, loss: str = "ace+dice",
                 iterations: int = 2000, resume: bool = False, device: str = "auto",
                 extra: Sequence[str] = ()) -> list[str]:
    """The ``ace train`` command line, run as ``python -m ACELib.cli.main train ...``.

    Raises:
        ValueError: unknown loss, or fewer than one iteration.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    command = [str(python), "-u", "-m", "ACELib.cli.main", "train", "--task", str(taskPath), "--out", str(runDir),
               "--loss", loss, "--iterations", str(int(iterations)), "--device", device]
    if resume:
        command.append("--resume")
    return command + list(extra)


def processEnvironment(acelibParent: str | os.PathLike, base: dict | None = None) -> dict[str, str]:
    """Environment for the training process: ``acelibParent`` (the folder holding ``ACELib/``) first
    on ``PYTHONPATH``, unbuffered output."""
    env = dict(os.environ if base is None else base)
    paths = [str(acelibParent)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def writeRunNote(runDir: str | os.PathLike, folders: Sequence[str | os.PathLike], command: Sequence[str]) -> None:
    """A human-readable note of how the run was started (``slicer_run.txt``)."""
    lines = ["Started from the ACE Segmentation Slicer module.", "Dataset folders:"]
    lines += [f"  {Path(f).resolve()}" for f in folders]
    lines += ["Command:", "  " + " ".join(command)]
    atomic_write_text(Path(runDir) / "slicer_run.txt", "\n".join(lines) + "\n")
