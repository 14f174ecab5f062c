"""Which models the module offers: bundled ones (a catalogue), trained runs, and files the user picks."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ACESegmentationLib.training_process import trainedModel

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class ModelEntry:
    """One model the user can choose.

    Attributes:
        name: shown in the model list.
        path: the model file (``.safetensors``); url: where to download it when absent (bundled models).
        sha256: expected checksum, verified when loading (bundled models).
        source: ``"bundled"``, ``"trained"`` or ``"file"``.
    """

    name: str
    path: Path
    sha256: str | None = None
    source: str = "file"
    url: str | None = None


def entryIndex(entries: list[ModelEntry], path: str | os.PathLike | None) -> int:
    """Index of the entry whose file is ``path`` (compared as strings, as the parameter node stores it),
    or -1 when none is (an empty path: a parameter node wiped by a scene close)."""
    if not path:
        return -1
    paths = [str(e.path) for e in entries]
    return paths.index(str(path)) if str(path) in paths else -1


def modelFolders() -> list[Path]:
    """Folders that may hold a model catalogue: ACELib's bundled models (``ACELib/models``, package data
    of ACELib in a source checkout, in a pip install and in the built extension alike)."""
    from ACELib.models import MODELS_DIR

    return [MODELS_DIR]


def bundledModels(folders: list[Path] | None = None) -> list[ModelEntry]:
    """The models of the catalogues in ``folders`` (default :func:`modelFolders`), read by ACELib's
    catalogue reader (``ACELib.models.read_catalogue``; the format is described there). Malformed
    catalogues are skipped with a warning."""
    from ACELib.models import read_catalogue

    entries: list[ModelEntry] = []
    for folder in folders if folders is not None else modelFolders():
        try:
            catalogue = read_catalogue(folder)
        except ValueError as exc:
            logger.warning("ignoring a model catalogue: %s", exc)
            continue
        entries.extend(ModelEntry(m.name, m.path, m.sha256, "bundled", m.info.get("url")) for m in catalogue)
    return entries


def trainedModels(runsRoot: str | os.PathLike) -> list[ModelEntry]:
    """Finished training runs under ``runsRoot`` (one sub-folder per run), newest first."""
    root = Path(runsRoot)
    if not root.is_dir():
        return []
    runs = [(trainedModel(d), d) for d in root.iterdir() if d.is_dir()]
    runs = [(m, d) for m, d in runs if m is not None]
    runs.sort(key=lambda md: md[0].stat().st_mtime, reverse=True)
    return [ModelEntry(f"{d.name} (trained)", m, None, "trained") for m, d in runs]


def defaultRunsRoot() -> Path:
    """Where training runs started from Slicer go: beside Slicer's user settings, else in the home folder."""
    try:
        import slicer

        settings = Path(slicer.app.slicerUserSettingsFilePath).parent
        return settings / "ACESegmentation" / "runs"
    except (ImportError, AttributeError):
        return Path.home() / ".ace-segmentation" / "runs"


def readModelInfo(path: str | os.PathLike) -> dict:
    """The metadata of a model file (labels, modalities...) read from its header, without torch, by
    ``ACELib.inference.metadata.read_model_metadata``.

    Returns:
        The checked ``ace_model`` JSON document: ``labels`` (``[{"name", "value", "color"}]``),
        ``modalities``, ``members``, and ``modality_subsets`` for a hetero-modal model.

    Raises:
        FileNotFoundError: no such file. ValueError: not an ACE Segmentation model file.
    """
    from ACELib.inference.metadata import read_model_metadata

    return read_model_metadata(path)


def jointLabelsOf(info: dict):
    """The joint labels (``ACELib.labels.JointLabel``) described by :func:`readModelInfo`'s result."""
    from ACELib.labels import JointLabel

    return tuple(JointLabel.from_dict(e) for e in info["labels"])
