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
from pathlib import Path

from ACELib.data.contract import DatasetError, read_dataset_info
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import BACKGROUND, DatasetSpec, JointLabel, Task

SIDECAR = "ace_dataset.json"


def write_sidecar(folder: str | os.PathLike, annotated: Sequence[str], joint_labels: Sequence[JointLabel],
                  widen: Mapping[str, Sequence[str]] | None = None, source: str = "") -> Path:
    """Write ``ace_dataset.json`` (atomically) and return its path."""
    data = {
        "annotated": list(annotated),
        "joint_labels": [{"name": lab.name, "value": lab.value, "color": lab.hex_color} for lab in joint_labels],
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
        data = json.loads(path.read_text())
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
        if declared != sorted(labels.values()):
            raise DatasetError(
                f"{str(folder)!r}: {SIDECAR} declares annotated labels {declared} but dataset.json "
                f"declares {sorted(labels.values())}"
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
    datasets, used = [], set()
    for folder in folders:
        base = Path(folder).resolve().name
        unique, k = base, 2
        while unique in used:
            unique, k = f"{base}_{k}", k + 1
        used.add(unique)
        datasets.append(dataset_from_folder(folder, joint_labels, name=unique))
    task = Task(name=name, labels=tuple(joint_labels), datasets=tuple(datasets),
                modalities=tuple(modalities or ()))
    return task.validate()
