"""Process trees: find the descendants of a process, tell whether they live, kill them all.

Inside Slicer, ``PythonSlicer`` is CTK's application launcher: the process the module starts is the
launcher, and the Python that trains is its child, to which the launcher forwards no signal. Killing
the launcher alone leaves the trainer running, so a last-resort kill takes the whole tree.

psutil is used when it can be imported (Slicer ships it); otherwise ``ps`` on POSIX and
``taskkill /T /F`` on Windows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def _psutil():
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _parentMap() -> dict[int, list[int]]:
    """parent pid -> child pids, from ``ps`` (Linux and macOS)."""
    out = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True,
                         check=False).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            children.setdefault(int(parts[1]), []).append(int(parts[0]))
    return children


def descendantPids(pid: int) -> list[int]:
    """Pids of all the descendants of ``pid`` (children first), empty if it has none or is gone."""
    psutil = _psutil()
    if psutil is not None:
        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    if sys.platform == "win32":
        return []  # taskkill /T finds them itself
    children, found, queue = _parentMap(), [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            if child not in found:
                found.append(child)
                queue.append(child)
    return found


def isAlive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, finished but not yet reaped, counts as gone)."""
    psutil = _psutil()
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and sys.platform.startswith("linux"):
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    if sys.platform == "win32":
        out = subprocess.run(["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True,
                             check=False).stdout
        return str(pid) in out.split()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def killProcessTree(pid: int, also: list[int] | tuple[int, ...] = ()) -> list[int]:
    """Kill ``pid``, all its descendants and the pids in ``also`` (e.g. descendants seen earlier, whose
    parent may have died since). The tree is listed before anything is killed.

    Returns:
        The pids that were alive and were sent the kill.
    """
    targets = list(dict.fromkeys([pid, *descendantPids(pid), *also]))
    targets = [p for p in targets if isAlive(p)]
    psutil = _psutil()
    if psutil is not None:
        processes = []
        for p in targets:
            try:
                process = psutil.Process(p)
                process.kill()
                processes.append(process)
            except psutil.Error:
                pass
        psutil.wait_procs(processes, timeout=5)
        return targets
    for p in targets:
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(p)], capture_output=True, check=False)
        else:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return targets
