"""Check a task's datasets against the contract, reporting every problem at once and writing nothing.

Problems found: missing folders, ``dataset.json`` or files; channel names that disagree with the task;
channel and label images that disagree in size, spacing, origin or direction; images that are not 3D;
truncated files; NaN/Inf voxels; blank (constant) images; label values the dataset does not declare; empty label maps; a modality the model needs
that a dataset lacks; datasets without cases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ACELib.data.contract import DatasetError, list_cases, read_dataset_info
from ACELib.io.image import Geometry, check_3d, read_sitk
from ACELib.io.image_checks import check_voxels, constant_value
from ACELib.labels import IGNORE, DatasetSpec, Task
from ACELib.progress import Progress

log = logging.getLogger(__name__)


def _read(path: Path, problems: list[str]) -> tuple[np.ndarray | None, Geometry | None]:
    """The voxels (native dtype) and geometry of an image, or ``(None, None)`` with the problem recorded.

    Reads through :func:`ACELib.io.image.read_sitk`, which refuses truncated files and NaN/Inf voxels.
    """
    if not path.is_file():
        problems.append(f"{path}: missing file")
        return None, None
    try:
        img = read_sitk(path)
        check_3d(img, path)
        arr = sitk.GetArrayViewFromImage(img).copy()
        check_voxels(arr, path)
    except ValueError as exc:
        problems.append(str(exc))
        return None, None
    return arr, Geometry.from_sitk(img)


def check_dataset(task: Task, ds: DatasetSpec, modalities: Sequence[str] | None = None,
                  progress: Progress | None = None) -> list[str]:
    """Problems of one dataset of ``task`` (empty list when it is usable)."""
    folder = task.dataset_path(ds)
    where = f"dataset {ds.name!r} ({folder})"
    if not folder.is_dir():
        return [f"{where}: folder does not exist"]
    try:
        info = read_dataset_info(folder)
        cases = list_cases(folder, info)
    except DatasetError as exc:
        return [f"{where}: {exc}"]
    problems: list[str] = []
    if tuple(info.channel_names) != tuple(ds.modalities):
        problems.append(f"{where}: dataset.json channels {list(info.channel_names)} differ from the task's "
                        f"modalities {list(ds.modalities)} for this dataset")
    needed = [m for m in (modalities or ()) if m not in info.channel_names]
    if needed:
        problems.append(f"{where}: modality {needed} needed by the model is missing "
                        f"(the dataset has {list(info.channel_names)})")
    declared = set(info.labels.values())
    undeclared_in_json = sorted(set(ds.labels) - declared)
    if undeclared_in_json:
        problems.append(f"{where}: the task maps label values {undeclared_in_json} that dataset.json does not declare")
    allowed = {0, *ds.labels}
    if not cases:
        problems.append(f"{where}: no cases in imagesTr")
    for i, case in enumerate(cases):
        case_problems: list[str] = []
        geoms = []
        for p in case.image_paths:
            arr, geom = _read(p, case_problems)
            if arr is None:
                continue
            blank = constant_value(arr)
            if blank is not None:
                case_problems.append(f"{p}: blank image (every voxel is {blank:g})")
            geoms.append((p, geom))
        if case.label_path is None:
            case_problems.append(f"{where}: case {case.name!r} has no labelsTr folder / label file")
        else:
            arr, geom = _read(case.label_path, case_problems)
            if arr is not None:
                geoms.append((case.label_path, geom))
                values = set(np.unique(arr).tolist())
                extra = sorted(v for v in values if v not in allowed)
                if extra:
                    case_problems.append(f"{case.label_path}: label values {extra} are not declared for "
                                         f"dataset {ds.name!r} (declared: {sorted(allowed)})"
                                         + _ignore_hint(info.labels, extra))
                if values <= {0}:
                    case_problems.append(f"{case.label_path}: empty label map (background only)")
        if geoms:
            p0, g0 = geoms[0]
            for p, g in geoms[1:]:
                diff = g0.differences(g)
                if diff:
                    case_problems.append(f"{p}: geometry differs from {p0.name}: " + "; ".join(diff))
        problems.extend(case_problems)
        if progress:
            progress(i + 1, len(cases), f"checking {ds.name}/{case.name}")
    return problems


def _ignore_hint(declared: dict[str, int], values) -> str:
    """Advice when undeclared ``values`` hold nnU-Net's ignore label of ``dataset.json``."""
    value = declared.get(IGNORE)
    if value is None or value not in values:
        return ""
    return f"; dataset.json calls {value} {IGNORE!r}: map it in the task file ({{\"{value}\": \"{IGNORE}\"}})"


def check_task(task: Task, modalities: Sequence[str] | None = None, include_test: bool = True,
               progress: Progress | None = None) -> list[str]:
    """Every problem of every dataset of ``task``.

    Args:
        modalities: modalities each training dataset must have (default: the task's input modalities).
        include_test: also check datasets with role ``"test"``.
    """
    problems = task.problems()
    if problems:
        return problems
    needed = task.input_modalities if modalities is None else modalities
    for ds in task.datasets:
        if ds.role == "test" and not include_test:
            continue
        problems.extend(check_dataset(task, ds, needed, progress))
    return problems
