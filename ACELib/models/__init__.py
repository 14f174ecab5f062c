"""The bundled models: package data of ACELib, listed in one catalogue, ``catalogue.json`` in this folder.

`ace models` lists them, `ace predict --model NAME` loads one by name (its SHA-256 always verified),
and the Slicer module offers the same list. Replacing or adding a model is dropping its
``.safetensors`` file into this folder and writing its entry in ``catalogue.json``::

    {"models": [{"id": "wmh-t1-flair", "name": "Tissue + WMH (T1, FLAIR)", "file": "wmh.safetensors",
                 "sha256": "<hex>", "modalities": ["T1", "FLAIR"], "labels": ["background", ...],
                 "phantom_test_dice": {"GM": 0.82, ...}}]}

``id`` (default: the file name without ``.safetensors``), ``name`` (shown in lists), ``file`` (relative
to the catalogue) and ``sha256`` are required; the rest is shown when present. This module needs
neither torch nor SimpleITK.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
CATALOGUE = "catalogue.json"
MODEL_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class BundledModel:
    """One catalogue entry.

    Attributes:
        id: short name for ``ace predict --model``. name: the title shown in lists.
        path: the model file. sha256: its published checksum (verified before loading).
        dice: measured Dice per label (on the phantom test set), empty when not measured.
        info: the whole catalogue entry (training settings, the command that made it...).
    """

    id: str
    name: str
    path: Path
    sha256: str
    modalities: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    dice: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict, compare=False)

    @property
    def size_bytes(self) -> int | None:
        """File size, or None when the file is missing."""
        return self.path.stat().st_size if self.path.is_file() else None


def read_catalogue(folder: str | os.PathLike = MODELS_DIR) -> list[BundledModel]:
    """The entries of ``folder/catalogue.json`` (none when there is no catalogue).

    Raises:
        ValueError: a malformed catalogue, naming the file and what is wrong.
    """
    path = Path(folder) / CATALOGUE
    if not path.is_file():
        return []
    try:
        items = json.loads(path.read_text(encoding="utf-8"))["models"]
        out = []
        for i, item in enumerate(items):
            missing = [k for k in ("name", "file", "sha256") if not item.get(k)]
            if missing:
                raise ValueError(f"entry {i} lacks {missing}")
            out.append(BundledModel(
                id=str(item.get("id") or str(item["file"]).removesuffix(MODEL_SUFFIX)), name=str(item["name"]),
                path=path.parent / str(item["file"]), sha256=str(item["sha256"]).lower(),
                modalities=tuple(item.get("modalities", ())), labels=tuple(item.get("labels", ())),
                dice=dict(item.get("phantom_test_dice", {})), info=dict(item)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"model catalogue {str(path)!r} is malformed: {exc}") from None
    return out


def bundled_models() -> list[BundledModel]:
    """The models shipped with ACELib."""
    return read_catalogue(MODELS_DIR)


def find_model(name: str, models: list[BundledModel] | None = None) -> BundledModel:
    """The bundled model called ``name``: its id, its file name (with or without ``.safetensors``) or
    its title, case-insensitively.

    Raises:
        ValueError: no such model, listing the ids there are.
    """
    models = bundled_models() if models is None else models
    want = str(name).strip().lower()
    for m in models:
        if want in (m.id.lower(), m.name.lower(), m.path.name.lower(), m.path.name.lower().removesuffix(MODEL_SUFFIX)):
            return m
    raise ValueError(f"no bundled model named {name!r}; bundled models: {[m.id for m in models]} "
                     "(`ace models` lists them), or give the path of a model file")


def resolve_model(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """A model given by path or by name: ``(path, expected SHA-256)``; the checksum is None for a path.

    An existing file wins over a bundled model of the same name.

    Raises:
        FileNotFoundError: ``spec`` has a folder part and is not a file.
        ValueError: no such file here and no bundled model of that name (the message lists them).
    """
    path = Path(spec)
    if path.is_file():
        return path, None
    if path.parent != Path("."):
        raise FileNotFoundError(f"model file {str(spec)!r} does not exist")
    try:
        model = find_model(str(spec))
    except ValueError as exc:
        raise ValueError(f"{str(spec)!r} is neither a model file nor a bundled model: {exc}") from None
    return model.path, model.sha256
