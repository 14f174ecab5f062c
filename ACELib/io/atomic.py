"""Atomic writes: write to a temporary file in the destination folder, then rename over the target.

A reader (or a crash) never sees a half-written file, and an existing good file is only replaced
by a complete new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes); rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the result the usual umask permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_DETACHED = {".mhd": re.compile(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", re.M),
             ".nhdr": re.compile(r"^\s*data ?file\s*:\s*(.+?)\s*$", re.M | re.I)}


@contextlib.contextmanager
def atomic_image_path(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path`, for image writers that may add a data file beside a header.

    A detached header (``.mhd``, ``.nhdr``) names its data file after itself, so the writer gets the
    final file name inside a private temporary folder beside ``path``; on success the data file is
    moved into place first and the header last, and a data file of the header being replaced that
    the new one no longer uses is removed. Other formats use :func:`atomic_path`.
    """
    path = Path(path)
    suffix = next((s for s in _DETACHED if path.name.lower().endswith(s)), None)
    if suffix is None:
        with atomic_path(path) as tmp:
            yield tmp
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    old_data = _data_file(path, suffix)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp_dir / path.name
        for f in sorted(tmp_dir.iterdir()):
            if f.name != path.name:
                os.chmod(f, 0o666 & ~_umask())
                os.replace(f, path.parent / f.name)
        os.chmod(tmp_dir / path.name, 0o666 & ~_umask())
        os.replace(tmp_dir / path.name, path)
        new_data = _data_file(path, suffix)
        if old_data is not None and old_data != new_data and old_data.parent == path.parent.resolve() and old_data.is_file():
            old_data.unlink()
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _data_file(header: Path, suffix: str) -> Path | None:
    """The data file a detached header names (None: no header, or data in the header itself)."""
    if not header.is_file():
        return None
    try:
        text = header.read_text(errors="replace")[:65536]
    except OSError:
        return None
    match = _DETACHED[suffix].search(text)
    if match is None or match.group(1).strip() in ("LOCAL", "LIST"):
        return None
    return (header.parent / match.group(1).strip()).resolve()


def _umask() -> int:
    """The process umask (read without changing it where /proc allows: os.umask is process-wide)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
