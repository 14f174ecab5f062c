"""Checks every command runs on its outputs before doing any work: never over an input, always writable.

A command that writes a file first calls :func:`check_outputs`: an output that is one of the
command's own inputs is refused (even with ``overwrite``), an existing output is refused unless
``overwrite``, and an output whose folder cannot be created or written is refused, so that a long
inference or evaluation never ends in a lost result.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (hard links and symbolic links included)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def check_not_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None]) -> None:
    """Raise ``ValueError`` when an output path is one of the inputs.

    Raises:
        ValueError: naming the output and the input it would replace.
    """
    inputs = [Path(p) for p in inputs if p is not None]
    for out in outputs:
        for inp in inputs:
            if same_file(out, inp):
                raise ValueError(f"output {str(out)!r} is the input {str(inp)!r}: it would be destroyed; "
                                 "choose another output path")


def check_writable(path: str | os.PathLike) -> None:
    """Raise unless ``path`` can be created or replaced (its nearest existing ancestor is a writable folder).

    Raises:
        NotADirectoryError: a parent of ``path`` is a file.
        PermissionError: the folder that would hold ``path`` is not writable.
        IsADirectoryError: ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output {str(path)!r} is a folder; expected a file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"output {str(path)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"output {str(path)!r}: the folder {str(parent)!r} is not writable")


def check_outputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None] = (),
                  overwrite: bool = False) -> None:
    """All output checks at once: not an input, not existing (unless ``overwrite``), writable.

    Raises:
        ValueError: an output is an input. FileExistsError: an output exists and ``overwrite`` is False.
        OSError: an output cannot be written (see :func:`check_writable`).
    """
    outputs = [Path(p) for p in outputs]
    check_not_inputs(outputs, inputs)
    for p in outputs:
        check_writable(p)
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(repr(p) for p in existing)} exists; pass overwrite=True "
                              "(--overwrite) to replace it")
