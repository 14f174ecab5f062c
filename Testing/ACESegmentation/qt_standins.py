"""Stand-ins for the Qt objects the module's panels use, behaving like PythonQt where it matters.

* ``QProcess.readAllStandardOutput()`` returns a :class:`QByteArray` that, like PythonQt's wrapper,
  refuses ``bytes()`` and offers ``.data()``.
* ``QProcess`` runs a real process (``subprocess``) and emits ``readyReadStandardOutput()``,
  ``finished(int,QProcess::ExitStatus)`` and ``errorOccurred(QProcess::ProcessError)`` (a program that
  cannot start gives ``errorOccurred`` only, never ``finished``) from :func:`processEvents`.
* ``terminate()`` sends SIGTERM to the started process only, as Qt does (not to its children).
* ``QTimer`` fires from :func:`processEvents` when its interval has passed.

Only what the module uses is here. :func:`install` puts the stand-in ``qt`` module into ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import types

_timers: list = []
_processes: list = []


class QByteArray:
    def __init__(self, data: bytes = b""):
        self._data = bytes(data)

    def data(self) -> bytes:
        return self._data

    def __bytes__(self):
        raise TypeError("cannot convert 'QByteArray' object to bytes")  # as PythonQt's wrapper

    def __len__(self) -> int:
        return len(self._data)


class _Signal:
    def __init__(self):
        self.slots = []

    def connect(self, slot):
        self.slots.append(slot)

    def emit(self, *args):
        for slot in list(self.slots):
            slot(*args)


class QTimer:
    def __init__(self):
        self.interval = 0
        self.active = False
        self.timeout = _Signal()
        self._due = 0.0
        _timers.append(self)

    def setInterval(self, ms):
        self.interval = ms

    def start(self):
        self.active, self._due = True, time.monotonic() + self.interval / 1000

    def stop(self):
        self.active = False

    def isActive(self):
        return self.active

    @staticmethod
    def singleShot(ms, slot):
        timer = QTimer()
        timer.setInterval(ms)
        timer.single = True
        timer.timeout.connect(slot)
        timer.start()

    def _fire(self, now):
        if self.active and now >= self._due:
            if getattr(self, "single", False):
                self.active = False
            else:
                self._due = now + self.interval / 1000
            self.timeout.emit()


class QProcessEnvironment:
    def __init__(self):
        self.values = {}

    def insert(self, key, value):
        self.values[key] = value


class QProcess:
    NotRunning, Starting, Running = 0, 1, 2
    FailedToStart, Crashed = 0, 1
    NormalExit, CrashExit = 0, 1
    MergedChannels = 1

    def __init__(self):
        self._signals = {}
        self._env = None
        self._popen = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._program = ""
        self._error = ""
        self._finished = False

    def connect(self, signature, slot):
        self._signals.setdefault(signature, _Signal()).connect(slot)

    def _emit(self, signature, *args):
        if signature in self._signals:
            self._signals[signature].emit(*args)

    def setProcessEnvironment(self, env):
        self._env = env

    def setProcessChannelMode(self, mode):
        self.mode = mode

    def program(self):
        return self._program

    def errorString(self):
        return self._error

    def start(self, program, arguments):
        self._program = program
        env = dict(self._env.values) if self._env is not None else None
        try:
            self._popen = subprocess.Popen([program, *arguments], env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT)
        except OSError as error:
            self._error = str(error)
            self._emit("errorOccurred(QProcess::ProcessError)", QProcess.FailedToStart)
            return
        threading.Thread(target=self._read, daemon=True).start()
        _processes.append(self)

    def _read(self):
        for chunk in iter(lambda: self._popen.stdout.read1(4096), b""):
            with self._lock:
                self._buffer += chunk

    def readAllStandardOutput(self):
        with self._lock:
            data, self._buffer = bytes(self._buffer), bytearray()
        return QByteArray(data)

    def processId(self):
        return self._popen.pid if self._popen is not None else 0

    def state(self):
        return QProcess.Running if self._popen is not None and not self._finished else QProcess.NotRunning

    def terminate(self):
        if self._popen is not None:
            self._popen.terminate()

    def kill(self):
        if self._popen is not None:
            self._popen.kill()

    def waitForFinished(self, ms=30000):
        if self._popen is None:
            return False
        try:
            self._popen.wait(ms / 1000)
        except subprocess.TimeoutExpired:
            return False
        self._pump()
        return True

    def _pump(self):
        with self._lock:
            pending = bool(self._buffer)
        if pending:
            self._emit("readyReadStandardOutput()")
        if not self._finished and self._popen.poll() is not None:
            time.sleep(0.05)  # let the reader thread take the last output
            with self._lock:
                pending = bool(self._buffer)
            if pending:
                self._emit("readyReadStandardOutput()")
            self._finished = True
            _processes.remove(self)
            code = self._popen.returncode
            self._emit("finished(int,QProcess::ExitStatus)", code if code >= 0 else 0,
                       QProcess.NormalExit if code >= 0 else QProcess.CrashExit)


def processEvents() -> None:
    """One turn of the event loop: process output and ends, then due timers."""
    for process in list(_processes):
        process._pump()
    now = time.monotonic()
    for timer in list(_timers):
        timer._fire(now)


def runUntil(condition, timeout: float, step: float = 0.05) -> bool:
    """Process events until ``condition()`` is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processEvents()
        if condition():
            return True
        time.sleep(step)
    return condition()


def reset() -> None:
    """Forget the timers and processes of a previous test (kill what still runs)."""
    for process in list(_processes):
        process.kill()
    _timers.clear()
    _processes.clear()


def install(monkeypatch) -> types.ModuleType:
    """Put a stand-in ``qt`` module into ``sys.modules`` (undone by ``monkeypatch``)."""
    reset()
    qt = types.ModuleType("qt")
    for cls in (QByteArray, QTimer, QProcess, QProcessEnvironment):
        setattr(qt, cls.__name__, cls)
    qt.QFileDialog = types.SimpleNamespace(getExistingDirectory=lambda *a: "")
    monkeypatch.setitem(sys.modules, "qt", qt)
    return qt
