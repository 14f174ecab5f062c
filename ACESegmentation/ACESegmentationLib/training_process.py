"""Training from Slicer: the ``ace train`` command line, its progress lines, its log and its model.

Training runs in a separate Python process (Slicer's own Python: ``PythonSlicer`` or
``sys.executable``), so a crash or an out-of-memory error never takes Slicer down, and Stop is a
signal: the process writes a checkpoint and exits, and the same run folder resumes with ``--resume``.
The GUI starts the process (QProcess) and feeds its output lines to :func:`parseTrainingLine`.

Run folder (written by ``ace train``): ``task.json``, ``config.json``, ``log.csv``, ``curves.png``,
``checkpoint.safetensors``, ``model_last.safetensors`` and, once finished, ``model.safetensors``.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ACELib.data.task_builder import task_from_dataset_folders
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import JointLabel, save_task

TASK_FILE = "slicer_task.json"
MODEL_FILES = ("model.safetensors", "model_last.safetensors")
#: loss names of ``ace train --loss`` (kept here so the GUI lists them before torch is installed; a test
#: checks they equal ``ACELib.losses.LOSSES``). The default, ACE, comes first.
LOSSES = ("ace", "ace-patch", "marginal", "ace+dice", "marginal+dice", "ce", "dice", "ce+dice")


@dataclass(frozen=True)
class TrainingEvent:
    """What one output line of ``ace train`` says (fields it does not mention are None)."""

    step: int | None = None
    total: int | None = None
    loss: float | None = None
    valDice: float | None = None
    modelPath: str | None = None
    stopped: bool = False
    error: str | None = None


_STEP = re.compile(r"(?<![\w.])(\d+)\s*/\s*(\d+)(?![\w.])")
_LOSS = re.compile(r"\bloss[\s:=]+(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf)", re.IGNORECASE)
_DICE = re.compile(r"\bval(?:idation)?[ _]dice[\s:=]+(-?\d+(?:\.\d*)?)", re.IGNORECASE)
_MODEL = re.compile(r"\bmodel(?: written to)?:?\s+(\S+\.safetensors)")
_ERROR = re.compile(r"^(?:ace train: error|error|Traceback|\w*Error\b)", re.IGNORECASE)


def parseTrainingLine(line: str) -> TrainingEvent | None:
    """Read progress, loss, validation Dice, the model path, a stop or an error from one output line.

    The parser is deliberately loose (``step/total`` anywhere, ``loss <number>``, ``val Dice <number>``,
    ``model: <path>.safetensors``, ``stopped``), so that changes in the wording of the log do not break
    the GUI. Returns None for lines that carry none of these.
    """
    text = line.strip()
    if not text:
        return None
    step = total = None
    match = _STEP.search(text)
    if match and int(match.group(2)) > 0:
        step, total = int(match.group(1)), int(match.group(2))
    loss = valDice = None
    if (m := _LOSS.search(text)) is not None:
        loss = float(m.group(1))
    if (m := _DICE.search(text)) is not None:
        valDice = float(m.group(1))
    model = (m.group(1) if (m := _MODEL.search(text)) is not None else None)
    stopped = text.lower().startswith("stopped")
    error = text if _ERROR.search(text) else None
    if step is None and loss is None and valDice is None and model is None and not stopped and error is None:
        return None
    return TrainingEvent(step, total, loss, valDice, model, stopped, error)


def readTrainingLog(runDir: str | os.PathLike) -> list[tuple[int, float]]:
    """``(step, loss)`` rows of the run's ``log.csv`` so far (empty if there is none yet)."""
    rows: list[tuple[int, float]] = []
    paths = sorted(Path(runDir).glob("log.csv")) or sorted(Path(runDir).glob("members/*/log.csv"))
    for path in paths[:1]:
        try:
            with open(path, newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        step, loss = int(row["step"]), float(row["loss"])
                    except (KeyError, TypeError, ValueError):
                        continue
                    if math.isfinite(loss):
                        rows.append((step, loss))
        except OSError:
            return rows
    return rows


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


def trainCommand(python: str, taskPath: str | os.PathLike, runDir: str | os.PathLike, loss: str = "ace",
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
