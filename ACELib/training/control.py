"""Controlling a training run from outside its process: a stop file, and progress as JSON lines.

Signals do not always reach a training process: Slicer's ``PythonSlicer`` (CTK's launcher) starts the
real interpreter as a child and forwards none, and on Windows a console program receives nothing a
GUI can send. So ``ace train`` also watches a file in its run folder, and reports its progress into
another one, which any front end can read without parsing terminal output:

* ``RUN/STOP``: when it appears, the run finishes its current step, writes its checkpoint, exits with
  the "stopped" status, and removes the file.
* ``RUN/progress.jsonl``: one JSON object per line, appended (a resumed run appends to the same file)::

      {"event": "start", "total": 2000, "resume": false, "time": 1718000000.0}
      {"event": "step", "step": 12, "total": 2000, "message": "joint loss 0.4321 | ...", "time": ...}
      {"event": "end", "status": "stopped", "step": 12, "time": ...}

  ``status`` is ``"finished"`` (with ``"model"``), ``"stopped"`` or ``"failed"`` (with ``"error"``).
  The loss curve itself is in ``log.csv``.

This module imports neither torch nor anything of the trainer, so front ends can use it as is.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

STOP_FILE = "STOP"
PROGRESS_FILE = "progress.jsonl"

log = logging.getLogger(__name__)


def stop_file(run_dir: str | os.PathLike) -> Path:
    """``run_dir/STOP``: the file that asks the run in ``run_dir`` to stop."""
    return Path(run_dir) / STOP_FILE


def progress_file(run_dir: str | os.PathLike) -> Path:
    """``run_dir/progress.jsonl``: the run's machine-readable progress."""
    return Path(run_dir) / PROGRESS_FILE


def request_stop(run_dir: str | os.PathLike, reason: str = "stop requested") -> Path:
    """Ask the run in ``run_dir`` to stop after its current step (creates ``run_dir/STOP``)."""
    path = stop_file(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason + "\n", encoding="utf-8")
    return path


def clear_stop(run_dir: str | os.PathLike) -> bool:
    """Remove a stop request; True if there was one."""
    try:
        stop_file(run_dir).unlink()
        return True
    except FileNotFoundError:
        return False


class StopWatcher:
    """``should_stop`` for :func:`ACELib.training.train`: True once ``run_dir/STOP`` exists, or once any
    of ``also`` (e.g. a signal flag) returns True.

    Args:
        run_dir: the run folder to watch.
        also: further ``() -> bool`` callables composed with the file check.
    """

    def __init__(self, run_dir: str | os.PathLike, *also: Callable[[], bool]):
        self.path = stop_file(run_dir)
        self.also = also
        self.reason: str | None = None

    def __call__(self) -> bool:
        if self.reason is None:
            if any(check() for check in self.also):
                self.reason = "signal"
            elif self.path.exists():
                self.reason = "stop file"
                log.info("%s found: stopping after this step", self.path)
        return self.reason is not None

    def clear(self) -> None:
        """Remove the stop file (once the run has stopped, or ended anyway)."""
        self.path.unlink(missing_ok=True)


class ProgressWriter:
    """Append progress events to ``run_dir/progress.jsonl``; usable as a ``progress(step, total, message)``
    callback. Each line is written and flushed whole, so a reader never sees half an event unless it
    reads while the line is being written (:func:`read_progress` keeps an unfinished line for later).
    Events are held back until the run folder holds its ``config.json`` (training writes it once its
    checks pass), so a start that fails its checks writes nothing.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = progress_file(run_dir)
        self._pending: list[str] = []

    def event(self, kind: str, **fields) -> None:
        record = {"event": kind, **fields, "time": round(time.time(), 3)}
        self._pending.append(json.dumps(record, allow_nan=False, default=str) + "\n")
        if not (self.path.parent / "config.json").is_file():
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(self._pending))
            f.flush()
        self._pending.clear()

    def __call__(self, step: int, total: int, message: str = "") -> None:
        self.event("step", step=int(step), total=int(total), message=str(message))


def read_progress(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int]:
    """Events appended to a ``progress.jsonl`` file since byte ``offset``.

    Returns:
        ``(events, new_offset)``: complete lines only (an unfinished last line is read next time);
        lines that are not JSON objects are skipped. A missing file gives ``([], offset)``.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(record, dict) and "event" in record:
            events.append(record)
    return events, offset + end
