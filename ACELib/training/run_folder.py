"""The run folder around a training: checks before anything is written, its config and task files, and
its text log."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from ACELib.io.atomic import atomic_write_text
from ACELib.labels import Task
from ACELib.training.config import TrainConfig

TEXT_LOG = "train.log"
"""The run folder's text log: every ACELib log record of the run (INFO and above), appended per session."""


@contextlib.contextmanager
def text_log(path: Path | None):
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ACELib")
    old_level = root.level
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()



def check_run_dir(task: Task, run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Refuse a start or resume that conflicts with the run folder (reads only).

    Raises:
        FileExistsError: the folder holds a run with progress and ``resume`` is False.
        ValueError: ``resume`` without a run, or with other settings or another task than the run's.
    """
    cfg_path = run_dir / "config.json"
    if resume and not cfg_path.exists():
        raise ValueError(f"--resume: {str(run_dir)!r} holds no training run to resume (no config.json); "
                         "drop --resume to start one there")
    if not cfg_path.exists():
        return
    if not resume:
        if _has_progress(run_dir):
            raise FileExistsError(f"{str(run_dir)!r} already holds a training run; pass resume=True (--resume) "
                                  "to continue it or choose another folder")
        return  # a start that failed before its first checkpoint: it is started afresh
    saved = TrainConfig.from_dict(json.loads(cfg_path.read_text(encoding="utf-8")))
    conflicts = config.resume_conflicts(saved)
    if conflicts:
        raise ValueError(f"cannot resume {str(run_dir)!r} with other settings: " + "; ".join(conflicts))
    task_path = run_dir / "task.json"
    if task_path.exists():
        changes = task_changes(json.loads(task_path.read_text(encoding="utf-8")), _run_task_dict(task))
        if changes:
            raise ValueError(f"cannot resume {str(run_dir)!r} with another task: " + "; ".join(changes)
                             + "; the run's task is in task.json; train the new task in a new folder")


def _has_progress(run_dir: Path) -> bool:
    """Whether a run folder holds anything worth keeping: a checkpoint or a model."""
    return any(run_dir.rglob("checkpoint.safetensors")) or any(run_dir.glob("model*.safetensors"))


def _run_task_dict(task: Task) -> dict:
    task_dict = task.to_dict()
    for e, ds in zip(task_dict["datasets"], task.datasets):
        e["path"] = str(task.dataset_path(ds).resolve())
    return task_dict


def task_changes(saved: dict, new: dict) -> list[str]:
    """What differs between two task dicts, ignoring dataset paths (data may move) and descriptions."""
    def strip(d: dict) -> dict:
        d = {k: v for k, v in d.items() if k != "description"}
        d["datasets"] = [{k: v for k, v in e.items() if k != "path"} for e in d.get("datasets", [])]
        return d

    a, b = strip(saved), strip(new)
    return [f"{key}: run has {a.get(key)!r}, asked {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


def prepare_run_dir(task: Task, run_dir: Path, config: TrainConfig, resume: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    atomic_write_text(run_dir / "task.json", json.dumps(_run_task_dict(task), indent=2) + "\n")
