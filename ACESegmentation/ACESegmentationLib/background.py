"""Run a function off the GUI thread, with progress, messages, cancellation and its result.

The function runs in a Python thread (torch releases the GIL while it computes, so Slicer's GUI stays
responsive); the GUI polls :meth:`BackgroundJob.poll` from a timer. Nothing here touches Qt or MRML:
the function must not touch the scene either (read inputs before, write outputs after, on the GUI
thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class JobStatus:
    """A snapshot of a job, safe to read on the GUI thread.

    Attributes:
        state: ``"running"``, ``"finished"``, ``"failed"`` or ``"cancelled"``.
        done, total, message: the latest progress report.
        notices: messages for the user reported since the previous poll (e.g. a fallback to the CPU).
        result: the function's return value once finished; error: its exception once failed.
    """

    state: str = "running"
    done: int = 0
    total: int = 0
    message: str = ""
    notices: list[str] = field(default_factory=list)
    result: object = None
    error: BaseException | None = None
    elapsed: float = 0.0

    @property
    def isDone(self) -> bool:
        return self.state != "running"


class BackgroundJob:
    """Call ``function(progress=..., cancel=..., notify=...)`` in a daemon thread.

    ``progress(done, total, message)``, ``cancel() -> bool`` and ``notify(message)`` are handed to the
    function. An exception whose class is named ``Cancelled`` (or any exception raised after
    :meth:`cancel`) ends the job in state ``"cancelled"``.

    Example::

        job = BackgroundJob(lambda progress, cancel, notify: model.predict(x, progress=progress, cancel=cancel))
        job.start()
        ...  # from a QTimer: status = job.poll(); update the progress bar; if status.isDone: ...
    """

    def __init__(self, function: Callable[..., object], name: str = "ACE job"):
        self._function = function
        self._lock = threading.Lock()
        self._status = JobStatus()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._start = 0.0

    def start(self) -> BackgroundJob:
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the function to stop at its next ``cancel()`` check."""
        self._cancel.set()

    @property
    def cancelRequested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job ends (for scripts and tests), then poll."""
        self._thread.join(timeout)
        return self.poll()

    def poll(self) -> JobStatus:
        """The current status; notices are handed out once."""
        with self._lock:
            status = JobStatus(self._status.state, self._status.done, self._status.total, self._status.message,
                               list(self._status.notices), self._status.result, self._status.error,
                               time.perf_counter() - self._start)
            self._status.notices.clear()
        return status

    # ------------------------------------------------------------------ worker thread
    def _progress(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._status.done, self._status.total, self._status.message = int(done), int(total), str(message)

    def _notify(self, message: str) -> None:
        with self._lock:
            self._status.notices.append(str(message))

    def _run(self) -> None:
        try:
            result = self._function(progress=self._progress, cancel=self._cancel.is_set, notify=self._notify)
        except BaseException as exc:  # reported to the GUI thread, which shows it
            cancelled = type(exc).__name__ == "Cancelled" or self._cancel.is_set()
            with self._lock:
                self._status.state = "cancelled" if cancelled else "failed"
                self._status.error = exc
            return
        with self._lock:
            self._status.state = "finished"
            self._status.result = result
