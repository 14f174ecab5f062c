"""'Add to training set': write a corrected case into a dataset folder, never overwriting anything.

A dataset folder made here follows the project's dataset contract (nnU-Net raw layout): its
``dataset.json`` names exactly the joint labels the user declared as annotated, with their joint values,
and the sidecar ``ace_dataset.json`` records the full label space. One folder holds one annotation
mode, since the labels a dataset annotates are a property of the dataset (the ACE loss relies on it):
adding a "lesion only" case to an "all labels" folder is refused with a clear message.

Labels that are not annotated are written as background (0): for the ACE loss, background in such a
dataset means "background or any label this dataset does not annotate".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ACELib.data.contract import (
    DATASET_JSON,
    Case,
    DatasetError,
    list_cases,
    read_dataset_info,
    write_case,
    write_dataset_info,
)
from ACELib.data.task_builder import SIDECAR, write_sidecar
from ACELib.io.atomic import atomic_write_text
from ACELib.io.image import Geometry
from ACELib.labels import JointLabel, check_joint_values
from ACESegmentationLib.terminology import labelKind

ANNOTATION_MODES = {
    "all": "all labels were checked",
    "tissue": "tissue only (CSF, GM, WM and any other non-lesion label)",
    "lesion": "lesions only (WMH, edema, tumour)",
}
LESION_KINDS = frozenset({"wmh", "edema", "tumor"})
SOURCE = "ACESegmentation (3D Slicer)"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def annotatedLabels(labels: Sequence[JointLabel], mode: str) -> tuple[JointLabel, ...]:
    """The non-background joint labels a case annotates under an annotation ``mode``.

    Raises:
        ValueError: unknown mode, or a mode that leaves no label annotated.
    """
    if mode not in ANNOTATION_MODES:
        raise ValueError(f"annotation mode must be one of {list(ANNOTATION_MODES)}, got {mode!r}")
    foreground = [lab for lab in labels if lab.value != 0]
    if mode == "all":
        chosen = foreground
    else:
        isLesion = [labelKind(lab.name) in LESION_KINDS for lab in foreground]
        chosen = [lab for lab, les in zip(foreground, isLesion) if les == (mode == "lesion")]
    if not chosen:
        raise ValueError(f"annotation mode {mode!r} leaves no label of {[lab.name for lab in foreground]} annotated")
    return tuple(chosen)


def safeCaseName(name: str) -> str:
    """A case name usable in file names: runs of other characters become ``_``."""
    safe = _UNSAFE.sub("_", name.strip()).strip("_.")
    if not safe:
        raise ValueError(f"case name {name!r} has no usable character (letters, digits, '_', '.', '-')")
    return safe


def freeCaseName(folder: str | Path, name: str) -> str:
    """``name`` made safe, with ``_2``, ``_3``... appended until no case of that name is in ``folder``."""
    base = safeCaseName(name)
    folder = Path(folder)
    existing = set()
    if (folder / DATASET_JSON).is_file() and (folder / "imagesTr").is_dir():
        existing = {c.name for c in list_cases(folder)}
    candidate, k = base, 2
    while candidate in existing:
        candidate, k = f"{base}_{k}", k + 1
    return candidate


def _checkFolder(folder: Path, modalities: Sequence[str], labelsJson: dict[str, int]) -> bool:
    """True if ``folder`` is an existing dataset compatible with this case; False if it is new or empty."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return False
    if not folder.is_dir():
        raise DatasetError(f"{str(folder)!r} is a file, not a dataset folder")
    if not (folder / DATASET_JSON).is_file():
        raise DatasetError(
            f"{str(folder)!r} is not empty and has no {DATASET_JSON}: choose an empty or new folder, "
            "or a dataset folder made before"
        )
    info = read_dataset_info(folder)
    if list(info.channel_names) != list(modalities):
        raise DatasetError(f"{str(folder)!r} holds modalities {list(info.channel_names)}, this case has "
                           f"{list(modalities)}: choose another dataset folder")
    if dict(info.labels) != labelsJson:
        raise DatasetError(
            f"{str(folder)!r} annotates {sorted(n for n in info.labels if n != 'background')}, this case "
            f"annotates {sorted(n for n in labelsJson if n != 'background')}: a dataset folder holds one "
            "set of annotated labels; choose another folder for this case"
        )
    return True


def exportCase(folder: str | Path, caseName: str, image: np.ndarray, geometry: Geometry, labelMap: np.ndarray,
               labels: Sequence[JointLabel], modalities: Sequence[str], mode: str = "all",
               fileEnding: str = ".nii.gz") -> Case:
    """Write one case (images and its label map) into a dataset folder.

    Args:
        folder: dataset folder; created when missing. An existing one must be compatible.
        caseName: case identifier (made file-safe); a case of that name must not exist yet.
        image: ``(C, D, H, W)`` channels in ``modalities`` order; geometry: their world geometry.
        labelMap: ``(D, H, W)`` joint label values on the same grid.
        labels: the joint labels (``labels[0]`` is background); modalities: channel names.
        mode: which labels the user checked: ``"all"``, ``"tissue"`` or ``"lesion"``.

    Returns:
        The written :class:`Case`.

    Raises:
        FileExistsError: the case exists already (nothing is written).
        DatasetError: the folder holds other modalities or another set of annotated labels.
        ValueError: bad shapes, channel count, label values or mode.
    """
    folder = Path(folder)
    image = np.asarray(image)
    labelMap = np.asarray(labelMap)
    if image.ndim != 4 or image.shape[0] != len(modalities):
        raise ValueError(f"image must be (C, D, H, W) with C = {len(modalities)} channels {list(modalities)}, "
                         f"got shape {image.shape}")
    if labelMap.shape != image.shape[1:] or tuple(labelMap.shape) != geometry.shape:
        raise ValueError(f"label map of shape {labelMap.shape} does not fit image {image.shape[1:]} and geometry "
                         f"{geometry.shape} (D, H, W)")
    check_joint_values(labelMap, labels)
    annotated = annotatedLabels(labels, mode)
    labelsJson = {"background": 0, **{lab.name: lab.value for lab in annotated}}
    caseName = safeCaseName(caseName)
    existing = _checkFolder(folder, modalities, labelsJson)
    keep = np.isin(labelMap, [lab.value for lab in annotated])
    written = np.where(keep, labelMap, 0).astype(np.uint8)
    if not existing:
        folder.mkdir(parents=True, exist_ok=True)
        write_dataset_info(folder, modalities, labelsJson, num_training=0, file_ending=fileEnding,
                           name=folder.name)
        write_sidecar(folder, [lab.name for lab in annotated], labels, source=SOURCE)
    info = read_dataset_info(folder)
    case = write_case(folder, caseName, image.astype(np.float32), geometry, written, file_ending=info.file_ending,
                      overwrite=False)
    _updateNumTraining(folder, len(list_cases(folder, info)))
    return case


def _updateNumTraining(folder: Path, count: int) -> None:
    """Set ``numTraining`` in ``dataset.json``, keeping every other key as it was."""
    path = folder / DATASET_JSON
    data = json.loads(path.read_text(encoding="utf-8"))
    data["numTraining"] = int(count)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


__all__ = ["ANNOTATION_MODES", "SIDECAR", "annotatedLabels", "exportCase", "freeCaseName", "safeCaseName"]
