"""Build a task from dataset folders whose ``dataset.json`` labels are named after joint labels.

This is how datasets made by the Slicer module (or by hand) become trainable without writing a task
file: each folder is one partially labelled dataset, and its ``dataset.json`` declares exactly the
labels it annotates, by joint label *name* (``{"background": 0, "WMH": 4}`` annotates WMH only;
every other joint label may hide in its background). Values need not equal the joint values.

An optional sidecar ``ace_dataset.json`` beside ``dataset.json`` records how the folder was made::

    {"annotated": ["WMH"],                 # must equal the dataset.json label names
     "joint_labels": [{"name": "background", "value": 0, "color": "#000000"}, ...],
     "widen": {"WM": ["WMH"]},             # optional: lesions that may hide inside a tissue label
     "source": "ACESegmentation (3D Slicer)"}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ACELib.data.contract import DatasetError, read_dataset_info
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import BACKGROUND, IGNORE, DatasetSpec, JointLabel, Task

SIDECAR = "ace_dataset.json"


def write_sidecar(folder: str | os.PathLike, annotated: Sequence[str], joint_labels: Sequence[JointLabel],
                  widen: Mapping[str, Sequence[str]] | None = None, source: str = "") -> Path:
    """Write ``ace_dataset.json`` (atomically) and return its path."""
    data = {
        "annotated": list(annotated),
        "joint_labels": [lab.to_dict() for lab in joint_labels],
    }
    if widen:
        data["widen"] = {k: list(v) for k, v in widen.items()}
    if source:
        data["source"] = source
    path = Path(folder) / SIDECAR
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def read_sidecar(folder: str | os.PathLike) -> dict | None:
    """The content of ``ace_dataset.json``, or None when the folder has none.

    Raises:
        DatasetError: the sidecar is not a JSON object.
    """
    path = Path(folder) / SIDECAR
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def dataset_from_folder(folder: str | os.PathLike, joint_labels: Sequence[JointLabel],
                        name: str | None = None) -> DatasetSpec:
    """Describe one dataset folder whose label names are joint label names.

    Raises:
        DatasetError: ``dataset.json`` is missing or invalid, names a label that is not a joint label,
            or disagrees with its sidecar.
    """
    folder = Path(folder).resolve()
    info = read_dataset_info(folder)
    joint_names = [lab.name for lab in joint_labels]
    by_lower = {n.lower(): n for n in joint_names}
    labels: dict[int, str] = {}
    unknown = []
    for label_name, value in info.labels.items():
        if value == 0:
            if label_name.lower() != BACKGROUND:
                raise DatasetError(f"{str(folder)!r}: value 0 must be 'background', got {label_name!r}")
            continue
        if label_name.lower() == IGNORE:  # nnU-Net's ignore label: may be any joint label
            labels[int(value)] = IGNORE
            continue
        joint = by_lower.get(label_name.lower())
        if joint is None:
            unknown.append(label_name)
        else:
            labels[int(value)] = joint
    if unknown:
        raise DatasetError(
            f"{str(folder)!r}: dataset.json labels {unknown} are not joint labels of the model "
            f"{[n for n in joint_names if n != BACKGROUND]}; rename them in dataset.json (label names "
            "must be joint label names) or write a task file that maps them"
        )
    widen: dict[str, tuple[str, ...]] = {}
    sidecar = read_sidecar(folder)
    if sidecar is not None:
        declared = sorted(str(n) for n in sidecar.get("annotated", []))
        annotated = sorted(n for n in labels.values() if n != IGNORE)
        if declared != annotated:
            raise DatasetError(
                f"{str(folder)!r}: {SIDECAR} declares annotated labels {declared} but dataset.json "
                f"declares {annotated}"
            )
        widen = {str(k): tuple(str(x) for x in v) for k, v in sidecar.get("widen", {}).items()}
    return DatasetSpec(name=name or folder.name, path=str(folder), modalities=info.channel_names,
                       labels=labels, widen=widen)


def task_from_dataset_folders(folders: Sequence[str | os.PathLike], joint_labels: Sequence[JointLabel],
                              name: str = "slicer", modalities: Sequence[str] | None = None) -> Task:
    """A task made of dataset folders whose ``dataset.json`` label names are joint label names.

    Args:
        folders: dataset folders (nnU-Net raw layout), one partially labelled dataset each.
        joint_labels: the joint label space (``joint_labels[0]`` is background), e.g. a model's labels.
        name: task name.
        modalities: the model's input modalities; by default those common to all folders.

    Returns:
        A validated :class:`Task`; dataset names are the folder names (made unique).

    Raises:
        ValueError: no folder given.
        DatasetError: a folder is not a dataset or names labels that are not joint labels.
        TaskError: the resulting task is invalid (e.g. the folders share no modality).
    """
    if not folders:
        raise ValueError("folders: at least one dataset folder is needed, got none")
    task = Task(name=name, labels=tuple(joint_labels), datasets=tuple(_datasets(folders, joint_labels)),
                modalities=tuple(modalities or ()))
    return task.validate()


def _datasets(folders: Sequence[str | os.PathLike], joint_labels: Sequence[JointLabel]) -> list[DatasetSpec]:
    """:func:`dataset_from_folder` of each folder, named after the folder (made unique)."""
    datasets, used = [], set()
    for folder in folders:
        base = Path(folder).resolve().name
        unique, k = base, 2
        while unique in used:
            unique, k = f"{base}_{k}", k + 1
        used.add(unique)
        datasets.append(dataset_from_folder(folder, joint_labels, name=unique))
    return datasets


_KNOWN_COLORS = {
    "background": (0, 0, 0), "csf": (70, 130, 180), "gm": (220, 180, 140), "wm": (245, 245, 245),
    "wmh": (255, 50, 50), "edema": (80, 200, 80), "tumor": (230, 50, 30), "tumour": (230, 50, 30),
}
_PALETTE = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
            (204, 121, 167), (153, 153, 153), (128, 0, 128), (0, 128, 128))


def joint_labels_from_folders(folders: Sequence[str | os.PathLike]) -> tuple[JointLabel, ...]:
    """The joint labels of dataset folders, matched by name: labels with the same name (compared
    case-insensitively; the first spelling is kept) are one joint label, value 0 is the shared
    background, and ``"ignore"`` (nnU-Net's ignore label) is no joint label.

    Joint values: folders are visited from the one declaring most labels to the one declaring fewest
    (ties in the given order), and each new name keeps its value there unless an earlier name holds
    it, else takes the smallest free value. So a joint test set passed along fixes the values.

    Returns:
        ``(background, *labels)``, background first, then in order of value.

    Raises:
        ValueError: no folder given.
        DatasetError: a folder is not a dataset, or its labels clash: value 0 not called background,
            background under a value other than 0, or two names of one folder that are the same joint
            label (they differ only in case).
    """
    if not folders:
        raise ValueError("folders: at least one dataset folder is needed, got none")
    declared = []
    for folder in folders:
        folder = Path(folder)
        info = read_dataset_info(folder)
        seen: dict[str, str] = {}
        own = []
        for label_name, value in sorted(info.labels.items(), key=lambda kv: kv[1]):
            key = label_name.lower()
            if (value == 0) != (key == BACKGROUND):
                raise DatasetError(f"{str(folder)!r}: label {label_name!r} has value {value}; value 0 must be "
                                   "'background' and 'background' must be 0")
            if key in seen:
                raise DatasetError(
                    f"{str(folder)!r}: labels {seen[key]!r} and {label_name!r} would be the same joint label "
                    "(label names match across datasets case-insensitively); rename one of them in dataset.json"
                )
            seen[key] = label_name
            if value != 0 and key != IGNORE:
                own.append((label_name, int(value)))
        declared.append(own)
    spelling: dict[str, str] = {}
    for own in declared:
        for label_name, _ in own:
            spelling.setdefault(label_name.lower(), label_name)
    values: dict[str, int] = {}
    for own in sorted(declared, key=len, reverse=True):
        for label_name, value in own:
            key = label_name.lower()
            if key in values:
                continue
            if value in values.values() or value > 255:
                value = min(set(range(1, 256)) - set(values.values()))
            values[key] = value
    labels = [JointLabel(BACKGROUND, 0, (0, 0, 0))]
    for i, (key, value) in enumerate(sorted(values.items(), key=lambda kv: kv[1])):
        color = _KNOWN_COLORS.get(key, _PALETTE[i % len(_PALETTE)])
        labels.append(JointLabel(spelling[key], value, color))
    return tuple(labels)


def task_from_folders(train: Sequence[str | os.PathLike], test: Sequence[str | os.PathLike] = (),
                      name: str = "task", modalities: Sequence[str] | None = None,
                      relative_to: str | os.PathLike | None = None) -> Task:
    """A task made of dataset folders, joint labels matched by name (:func:`joint_labels_from_folders`).

    Args:
        train: dataset folders to train on (nnU-Net raw layout), one partially labelled dataset each.
        test: dataset folders with role ``"test"`` (never trained on; their labels join the joint space).
        name: task name.
        modalities: the single model's input modalities; by default those common to all ``train`` folders.
        relative_to: write dataset paths relative to this folder (the task file's); absolute otherwise.

    Returns:
        A validated :class:`Task`.

    Raises:
        ValueError: no training folder.
        DatasetError: a folder is not a dataset, or its labels clash (see :func:`joint_labels_from_folders`).
        TaskError: the resulting task is invalid (e.g. the training folders share no modality).
    """
    if not train:
        raise ValueError("train: at least one training dataset folder is needed, got none")
    folders = [*train, *test]
    joint = joint_labels_from_folders(folders)
    datasets = []
    for i, ds in enumerate(_datasets(folders, joint)):
        path = os.path.relpath(ds.path, Path(relative_to).resolve()) if relative_to is not None else ds.path
        datasets.append(replace(ds, path=path, role="train" if i < len(train) else "test"))
    root = str(Path(relative_to).resolve()) if relative_to is not None else "."
    task = Task(name=name, labels=joint, datasets=tuple(datasets), modalities=tuple(modalities or ()), root=root)
    return task.validate()
