"""A stand-in for CTK's application launcher (``PythonSlicer``): it starts the real Python as a child,
ignores SIGTERM and SIGINT, forwards no signal, and exits with the child's exit code.

``ACE_TEST_EXTRA_ARGS`` (space-separated) is appended to the child's command line: the tests use it to
make the network tiny. Installed as an executable named ``PythonSlicer`` by :func:`installLauncher`.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path


def main() -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    extra = os.environ.get("ACE_TEST_EXTRA_ARGS", "").split()
    child = subprocess.Popen([sys.executable, *sys.argv[1:], *extra],
                             preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)  # the child handles its own
                                                 for s in (signal.SIGTERM, signal.SIGINT)])
    while True:
        try:
            return child.wait()
        except InterruptedError:
            continue


def installLauncher(folder: Path) -> Path:
    """Write an executable ``folder/PythonSlicer`` that runs this launcher with the current Python."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "PythonSlicer"
    path.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text())
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main())
