"""Check a task's datasets against the contract, reporting every problem at once and writing nothing.

Problems found in the headers: missing folders, ``dataset.json`` or files; channel names that disagree
with the task; channel and label images that disagree in size, spacing, origin or direction; images that
are not 3D; a modality the model needs that a dataset lacks; datasets without cases. In the voxels
(``values=True``, ``ace check``): truncated files; NaN/Inf voxels; blank (constant) images; label values
the dataset does not declare; empty label maps. ``ace train`` checks the headers here and the voxels in
its one loading pass (:func:`ACELib.data.case.load_case`, with :func:`image_value_problems` and
:func:`label_value_problems`), so every image is decoded once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ACELib.data.contract import Case, DatasetError, DatasetInfo, list_cases, read_dataset_info
from ACELib.io.image import Geometry, check_3d, read_image_header, read_sitk
from ACELib.io.image_checks import check_voxels, constant_value
from ACELib.labels import IGNORE, DatasetSpec, Task
from ACELib.progress import Progress

log = logging.getLogger(__name__)


def _read(path: Path, problems: list[str], values: bool) -> tuple[np.ndarray | None, Geometry | None]:
    """The voxels (native dtype; None unless ``values``) and geometry of an image, or ``(None, None)``
    with the problem recorded.

    With ``values``, reads through :func:`ACELib.io.image.read_sitk`, which refuses truncated files and
    NaN/Inf voxels; else reads the header alone (:func:`ACELib.io.image.read_image_header`).
    """
    if not path.is_file():
        problems.append(f"{path}: missing file")
        return None, None
    try:
        if not values:
            return None, read_image_header(path)
        img = read_sitk(path)
        check_3d(img, path)
        arr = sitk.GetArrayViewFromImage(img).copy()
        check_voxels(arr, path)
    except ValueError as exc:
        problems.append(str(exc))
        return None, None
    return arr, Geometry.from_sitk(img)


def image_value_problems(image: np.ndarray, path: Path) -> list[str]:
    """What the voxels of one channel file make unusable: a blank (constant) image."""
    blank = constant_value(image)
    return [] if blank is None else [f"{path}: blank image (every voxel is {blank:g})"]


def label_value_problems(label: np.ndarray, path: Path, ds: DatasetSpec,
                         declared: Mapping[str, int] | Callable[[], Mapping[str, int]]) -> list[str]:
    """What the values of a label map make unusable: values the task does not map for ``ds`` (with
    advice when ``dataset.json`` calls one ``"ignore"``), or nothing but background.

    Args:
        declared: the labels of the dataset's ``dataset.json`` (name -> value), or a function that reads
            them (called only when there are undeclared values, so a clean case costs no read).
    """
    values = set(np.unique(label).tolist())
    allowed = {0, *ds.labels}
    extra = sorted(v for v in values if v not in allowed)
    out = []
    if extra:
        declared = declared() if callable(declared) else declared
        out.append(f"{path}: label values {extra} are not declared for dataset {ds.name!r} "
                   f"(declared: {sorted(allowed)})" + _ignore_hint(declared, extra))
    if values <= {0}:
        out.append(f"{path}: empty label map (background only)")
    return out


def _contract_problems(ds: DatasetSpec, info: DatasetInfo, modalities: Sequence[str], where: str) -> list[str]:
    """Disagreements between ``dataset.json`` and the task: channels, needed modalities, label values."""
    problems = []
    if tuple(info.channel_names) != tuple(ds.modalities):
        problems.append(f"{where}: dataset.json channels {list(info.channel_names)} differ from the task's "
                        f"modalities {list(ds.modalities)} for this dataset")
    needed = [m for m in modalities if m not in info.channel_names]
    if needed:
        problems.append(f"{where}: modality {needed} needed by the model is missing "
                        f"(the dataset has {list(info.channel_names)})")
    undeclared_in_json = sorted(set(ds.labels) - set(info.labels.values()))
    if undeclared_in_json:
        problems.append(f"{where}: the task maps label values {undeclared_in_json} that dataset.json does not declare")
    return problems


def _case_problems(ds: DatasetSpec, info: DatasetInfo, case: Case, where: str, values: bool) -> list[str]:
    """Problems of one case's files: missing, unreadable, not on one grid and, with ``values``, their voxels."""
    problems: list[str] = []
    geoms = []
    for p in case.image_paths:
        arr, geom = _read(p, problems, values)
        if arr is not None:
            problems.extend(image_value_problems(arr, p))
        if geom is not None:
            geoms.append((p, geom))
    if case.label_path is None:
        problems.append(f"{where}: case {case.name!r} has no labelsTr folder / label file")
    else:
        arr, geom = _read(case.label_path, problems, values)
        if geom is not None:
            geoms.append((case.label_path, geom))
        if arr is not None:
            problems.extend(label_value_problems(arr, case.label_path, ds, info.labels))
    if geoms:
        p0, g0 = geoms[0]
        for p, g in geoms[1:]:
            diff = g0.differences(g)
            if diff:
                problems.append(f"{p}: geometry differs from {p0.name}: " + "; ".join(diff))
    return problems


def check_dataset(task: Task, ds: DatasetSpec, modalities: Sequence[str] | None = None,
                  progress: Progress | None = None, values: bool = True) -> list[str]:
    """Problems of one dataset of ``task`` (empty list when it is usable).

    Args:
        modalities: modalities the dataset must have.
        values: also read every voxel (truncated data, NaN/Inf, blank images, label values, empty label
            maps); False reads the headers only (files, dimensions, geometry), as training does before
            its loading pass, which checks the values (:func:`ACELib.data.case.load_case`).
    """
    folder = task.dataset_path(ds)
    where = f"dataset {ds.name!r} ({folder})"
    if not folder.is_dir():
        return [f"{where}: folder does not exist"]
    try:
        info = read_dataset_info(folder)
        cases = list_cases(folder, info)
    except DatasetError as exc:
        return [f"{where}: {exc}"]
    problems = _contract_problems(ds, info, modalities or (), where)
    if not cases:
        problems.append(f"{where}: no cases in imagesTr")
    for i, case in enumerate(cases):
        problems.extend(_case_problems(ds, info, case, where, values))
        if progress:
            progress(i + 1, len(cases), f"checking {ds.name}/{case.name}")
    return problems


def _ignore_hint(declared: Mapping[str, int], values) -> str:
    """Advice when undeclared ``values`` hold nnU-Net's ignore label of ``dataset.json``."""
    value = declared.get(IGNORE)
    if value is None or value not in values:
        return ""
    return f"; dataset.json calls {value} {IGNORE!r}: map it in the task file ({{\"{value}\": \"{IGNORE}\"}})"


def data_error(problems: Sequence[str]) -> DatasetError:
    """One error listing every problem of a task's data (as ``ace train`` reports them)."""
    return DatasetError(f"the task's data has {len(problems)} problems:\n  - " + "\n  - ".join(problems))


def check_task(task: Task, modalities: Sequence[str] | None = None, include_test: bool = True,
               progress: Progress | None = None, values: bool = True) -> list[str]:
    """Every problem of every dataset of ``task``.

    Args:
        modalities: modalities each training dataset must have (default: the task's input modalities).
        include_test: also check datasets with role ``"test"``.
        values: read every voxel too (``ace check``); False checks headers only (``ace train``, whose
            loading pass checks the values), see :func:`check_dataset`.
    """
    problems = task.problems()
    if problems:
        return problems
    needed = task.input_modalities if modalities is None else modalities
    for ds in task.datasets:
        if ds.role == "test" and not include_test:
            continue
        problems.extend(check_dataset(task, ds, needed, progress, values))
    return problems
