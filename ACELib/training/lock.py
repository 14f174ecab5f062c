"""An exclusive lock on a run folder: one training process at a time writes a run.

The lock is a file ``.lock`` in the run folder, created with ``O_CREAT | O_EXCL`` (atomic on local
file systems) and holding the owner's host name and pid. It is removed when the run ends, however it
ends. A lock left by a process that no longer runs on this host (killed, crashed) is stale and is
taken over with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class RunLockedError(FileExistsError):
    """Another live process holds the run folder."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(run_dir): ...`` holds ``run_dir/.lock`` for the duration of the block.

    Raises:
        RunLockedError: on entry, when a live process holds the lock (its pid is named).
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_NAME
        self._held = False

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(owner)
            self._held = True
            return self
        raise RunLockedError(f"run folder {str(self.path.parent)!r} is locked by a process that keeps "
                             f"re-creating {str(self.path)!r}")

    def _take_over_if_stale(self) -> None:
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (OSError, ValueError):
            holder = {}
        pid, host = int(holder.get("pid", -1) or -1), holder.get("host", "")
        if host and host != socket.gethostname():
            raise RunLockedError(f"run folder {str(self.path.parent)!r} is in use by process {pid} on host "
                                 f"{host!r}; wait for it to finish, or delete {str(self.path)!r} if it is gone")
        if _pid_alive(pid) and pid != os.getpid():
            raise RunLockedError(f"run folder {str(self.path.parent)!r} is in use by process {pid} (another "
                                 "`ace train`); wait for it to finish or stop it first")
        log.warning("taking over the stale lock of %s (process %s no longer runs)", self.path.parent, pid)
        self.path.unlink(missing_ok=True)

    def __exit__(self, *exc) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
