"""The dataset contract: the nnU-Net v2 raw layout that labs already use.

A dataset is a folder::

    dataset.json                    {"channel_names": {"0": "T1", "1": "FLAIR"},
                                     "labels": {"background": 0, "WMH": 1},
                                     "file_ending": ".nii.gz", "numTraining": 60}
    imagesTr/{case}_{XXXX}{ending}  one file per channel, XXXX = 0000, 0001, ...
    labelsTr/{case}{ending}         the label map (absent for unlabelled cases)

This module lists cases, reads them, and writes them (atomically, never overwriting by accident).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ACELib.io.atomic import atomic_write_text
from ACELib.io.image import IMAGE_SUFFIXES, Geometry, read_channels, read_image, write_image
from ACELib.io.image_checks import integer_labels
from ACELib.io.strict_json import loads_strict

DATASET_JSON = "dataset.json"
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


class DatasetError(ValueError):
    """A dataset folder does not follow the contract."""


SYNTH_FOLDER = "synthTr"
"""Optional folder of a dataset (beside ``labelsTr``) with each case's generator label map
(``{case}`` + file ending): every voxel's class in the phantom generator (``ACELib.phantoms.mri.CLASSES``),
read by training for domain randomisation. Not part of the nnU-Net layout; other tools ignore it."""

@dataclass(frozen=True)
class DatasetInfo:
    """The content of ``dataset.json``.

    Attributes:
        channel_names: modality names in channel order.
        labels: label name -> value, as declared (background included).
        file_ending: e.g. ``".nii.gz"``.
    """

    channel_names: tuple[str, ...]
    labels: Mapping[str, int]
    file_ending: str = ".nii.gz"
    name: str = ""


@dataclass(frozen=True)
class Case:
    """One case of a dataset: its channel files in order and its label file (or None)."""

    name: str
    image_paths: tuple[Path, ...]
    label_path: Path | None

    def read(self) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
        """Read the case.

        Returns:
            ``(image, label, geometry)``: image ``(C, D, H, W)`` float32, label ``(D, H, W)`` int64 or
            None.
        """
        image, geom = read_channels(self.image_paths)
        label = None
        if self.label_path is not None:
            lab, lgeom = read_image(self.label_path, dtype=np.float64)
            diff = geom.differences(lgeom)
            if diff:
                raise DatasetError(
                    f"{str(self.label_path)!r} does not share the geometry of {str(self.image_paths[0])!r}: "
                    + "; ".join(diff)
                )
            label = integer_labels(lab, self.label_path)
        return image, label, geom


def read_dataset_info(folder: str | os.PathLike) -> DatasetInfo:
    """Read and check ``dataset.json`` of a dataset folder."""
    path = Path(folder) / DATASET_JSON
    if not path.is_file():
        raise DatasetError(f"{str(path)!r} does not exist (a dataset folder needs a dataset.json)")
    try:
        data = loads_strict(path.read_text(encoding="utf-8"), f"{str(path)!r}")
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    if not isinstance(data, dict):
        raise DatasetError(f"{str(path)!r}: expected a JSON object, got {type(data).__name__}")
    problems = []
    channels = data.get("channel_names", data.get("modality"))
    if not isinstance(channels, dict) or not channels:
        problems.append("'channel_names' must be a non-empty object {\"0\": \"T1\", ...}")
        channels = {}
    keys = sorted(channels, key=lambda k: int(k) if str(k).isdigit() else -1)
    if channels and [str(k) for k in keys] != [str(i) for i in range(len(channels))]:
        problems.append(f"'channel_names' keys must be 0..{len(channels) - 1}, got {sorted(channels)}")
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        problems.append("'labels' must be a non-empty object {\"background\": 0, ...}")
        labels = {}
    ending = data.get("file_ending", ".nii.gz")
    if ending not in IMAGE_SUFFIXES:
        problems.append(f"'file_ending' must be one of {list(IMAGE_SUFFIXES)}, got {ending!r}")
    if problems:
        raise DatasetError(f"{str(path)!r}: " + "; ".join(problems))
    fractional = [k for k, v in labels.items() if isinstance(v, bool) or not isinstance(v, (int, float))
                  or (isinstance(v, float) and not v.is_integer())]
    if fractional:
        raise DatasetError(f"{str(path)!r}: 'labels' values must be integers, got "
                           + ", ".join(f"{k!r}: {labels[k]!r}" for k in fractional))
    label_values = {str(k): int(v) for k, v in labels.items()}
    return DatasetInfo(
        channel_names=tuple(str(channels[k]) for k in keys),
        labels=label_values,
        file_ending=ending,
        name=str(data.get("name", Path(folder).name)),
    )


def list_cases(folder: str | os.PathLike, info: DatasetInfo | None = None, subset: str = "Tr") -> list[Case]:
    """Cases of a dataset folder, sorted by name.

    Args:
        subset: ``"Tr"`` (``imagesTr``/``labelsTr``) or ``"Ts"`` (``imagesTs``/``labelsTs``).

    A case is listed when any channel file exists; missing channels or labels are reported by
    :func:`ACELib.data.check.check_dataset`, not here (paths of missing files are still returned).
    """
    folder = Path(folder)
    info = info or read_dataset_info(folder)
    labels = folder / f"labels{subset}"
    cases = list_image_cases(folder / f"images{subset}", info)
    return [Case(c.name, c.image_paths, labels / f"{c.name}{info.file_ending}" if labels.is_dir() else None)
            for c in cases]


def list_image_cases(images: str | os.PathLike, info: DatasetInfo) -> list[Case]:
    """Cases of a folder of ``{case}_{XXXX}{ending}`` channel files (no labels), sorted by name."""
    images = Path(images)
    if not images.is_dir():
        raise DatasetError(f"{str(images)!r} does not exist")
    names = set()
    for f in images.iterdir():
        if not f.name.endswith(info.file_ending):
            continue
        m = _CHANNEL_FILE.match(f.name[: -len(info.file_ending)])
        if m:
            names.add(m.group("case"))
    n_channels = len(info.channel_names)
    return [Case(name, tuple(images / f"{name}_{c:04d}{info.file_ending}" for c in range(n_channels)), None)
            for name in sorted(names)]


def write_dataset_info(folder: str | os.PathLike, channel_names: Sequence[str], labels: Mapping[str, int],
                       num_training: int, file_ending: str = ".nii.gz", name: str = "") -> Path:
    """Write ``dataset.json`` atomically and return its path."""
    path = Path(folder) / DATASET_JSON
    data = {
        "name": name or Path(folder).name,
        "channel_names": {str(i): c for i, c in enumerate(channel_names)},
        "labels": dict(labels),
        "numTraining": int(num_training),
        "file_ending": file_ending,
    }
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def write_case(folder: str | os.PathLike, case: str, image: np.ndarray, geometry: Geometry,
               label: np.ndarray | None = None, file_ending: str = ".nii.gz", overwrite: bool = False,
               subset: str = "Tr") -> Case:
    """Write one case (one file per channel, plus its label map) in the dataset layout.

    Args:
        image: ``(C, D, H, W)``.
        label: ``(D, H, W)`` integer label map, or None.
        overwrite: replace existing files of the same case; otherwise raise ``FileExistsError``.
    """
    folder = Path(folder)
    if image.ndim != 4:
        raise ValueError(f"image must be (C, D, H, W), got shape {image.shape}")
    paths = tuple(folder / f"images{subset}" / f"{case}_{c:04d}{file_ending}" for c in range(image.shape[0]))
    lab_path = folder / f"labels{subset}" / f"{case}{file_ending}" if label is not None else None
    if not overwrite:
        existing = [str(p) for p in (*paths, lab_path) if p is not None and p.exists()]
        if existing:
            raise FileExistsError(f"case {case!r} already exists in {str(folder)!r}: {existing}")
    for c, p in enumerate(paths):
        write_image(p, image[c].astype(np.float32), geometry)
    if label is not None:
        write_image(lab_path, label.astype(np.uint8 if label.max(initial=0) < 256 else np.int16), geometry)
    return Case(case, paths, lab_path)
