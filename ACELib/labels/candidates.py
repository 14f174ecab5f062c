"""Candidate sets: which joint labels a voxel of a dataset may truly have, given its dataset label.

For dataset ``d`` and a voxel whose dataset label maps to joint index ``t``:

* ``t`` is a label ``d`` annotates (not background): candidates = ``{t}`` plus any label the task
  *widens* ``t`` to (e.g. WM -> {WM, WMH}: lesions hide inside tissue labels of anatomy datasets);
* ``t`` is background: candidates = background plus every joint label ``d`` does not annotate.

These are stored per dataset as a ``(C, C)`` bool *candidate table*: row ``t`` is the candidate set of
a voxel with joint target ``t``. Rows of labels the dataset never produces are the singleton ``{t}``.

A dataset value mapped to ``"ignore"`` (nnU-Net's ignore label) has every joint label as candidate.
It gets no row: joint label maps hold :data:`IGNORE_INDEX` there, and every loss, the patch sampler
and validation Dice leave those voxels out.
"""

from __future__ import annotations

import numpy as np

from ACELib.labels.space import BACKGROUND, IGNORE, DatasetSpec, Task

IGNORE_INDEX = 255
"""Joint index of ignore voxels in joint label maps (uint8 on disk and in memory, int64 in batches):
no loss, no gradient, never a patch centre, not scored. Joint indices proper are ``< 255``."""


def annotated_mask(task: Task, ds: DatasetSpec) -> np.ndarray:
    """Which joint labels ``ds`` annotates.

    Returns:
        ``(C,)`` bool; background is always annotated.
    """
    names = ds.annotated_names
    return np.array([lab.name in names for lab in task.labels], dtype=bool)


def candidate_table(task: Task, ds: DatasetSpec) -> np.ndarray:
    """Candidate sets of every joint target for dataset ``ds``.

    Returns:
        ``(C, C)`` bool: ``table[t, j]`` is True when a voxel of ``ds`` with joint target ``t`` may
        truly be joint label ``j``.
    """
    c = task.num_classes
    table = np.eye(c, dtype=bool)
    annotated = annotated_mask(task, ds)
    table[0] = ~annotated
    table[0, 0] = True
    for name, extra in ds.widen.items():
        t = task.label_index(name)
        for e in extra:
            table[t, task.label_index(e)] = True
    return table


def candidate_labels(task: Task, ds: DatasetSpec, dataset_value: int) -> tuple[str, ...]:
    """Joint label names a voxel with ``dataset_value`` in dataset ``ds`` may truly have."""
    t = dataset_value_to_joint_index(task, ds)
    if dataset_value in ds.ignore_values:
        return task.label_names
    if dataset_value not in t:
        raise ValueError(
            f"dataset {ds.name!r} declares no label value {dataset_value}; "
            f"its values are {sorted([*t, *ds.ignore_values])}"
        )
    row = candidate_table(task, ds)[t[dataset_value]]
    return tuple(lab.name for lab, ok in zip(task.labels, row) if ok)


def dataset_value_to_joint_index(task: Task, ds: DatasetSpec) -> dict[int, int]:
    """Mapping dataset label value -> joint label index (0 -> 0); values mapped to ``"ignore"`` are left
    out (:func:`to_joint` maps them to :data:`IGNORE_INDEX`)."""
    mapping = {0: 0}
    for value, name in ds.labels.items():
        if name != IGNORE:
            mapping[value] = task.label_index(name)
    return mapping


def to_joint(task: Task, ds: DatasetSpec, label_map: np.ndarray, source: str = "label map") -> tuple[np.ndarray, np.ndarray]:
    """Convert a dataset's label map to joint label indices.

    Args:
        label_map: integer array of any shape holding dataset label values.
        source: how to name the input in error messages (e.g. its file name).

    Returns:
        ``(joint, annotated)``: ``joint`` int64 of the same shape, joint indices (:data:`IGNORE_INDEX`
        at values the dataset maps to ``"ignore"``); ``annotated`` ``(C,)`` bool, the labels the
        dataset annotates.

    Raises:
        ValueError: the map holds a value the dataset does not declare.
    """
    mapping = dataset_value_to_joint_index(task, ds)
    mapping.update({v: IGNORE_INDEX for v in ds.ignore_values})
    arr = np.asarray(label_map)
    if not np.issubdtype(arr.dtype, np.integer):
        rounded = np.rint(arr)
        if not np.array_equal(rounded, arr):
            raise ValueError(f"{source}: label values must be integers, got non-integer values")
        arr = rounded.astype(np.int64)
    present = np.unique(arr)
    unknown = [int(v) for v in present if int(v) not in mapping]
    if unknown:
        raise ValueError(
            f"{source}: values {unknown} are not declared for dataset {ds.name!r} "
            f"(declared: {sorted(mapping)})"
        )
    lut = np.zeros(int(max(present.max(initial=0), max(mapping))) + 1, dtype=np.int64)
    for v, j in mapping.items():
        lut[v] = j
    return lut[arr.astype(np.int64)], annotated_mask(task, ds)


def joint_values(task: Task) -> np.ndarray:
    """``(C,)`` int64: the output value of each joint index (for writing label maps)."""
    return np.array([lab.value for lab in task.labels], dtype=np.int64)


def check_joint_values(value_map: np.ndarray, labels, source: str = "label map") -> None:
    """Raise ``ValueError`` unless every value of ``value_map`` is the value of one of ``labels``
    (``JointLabel`` objects, e.g. ``task.labels`` or a model's labels)."""
    known = {int(lab.value) for lab in labels}
    unknown = sorted(int(v) for v in np.unique(value_map) if int(v) not in known)
    if unknown:
        raise ValueError(f"{source} values {unknown} are not joint label values {sorted(known)}")


def joint_index_from_values(task: Task, value_map: np.ndarray, source: str = "label map") -> np.ndarray:
    """Map a label map holding joint *values* (a joint ground truth or a prediction) to joint indices."""
    check_joint_values(value_map, task.labels, source)
    lut = np.zeros(int(joint_values(task).max()) + 1, dtype=np.int64)
    for i, v in enumerate(joint_values(task)):
        lut[v] = i
    return lut[np.asarray(value_map).astype(np.int64)]


__all__ = [
    "BACKGROUND",
    "IGNORE",
    "IGNORE_INDEX",
    "annotated_mask",
    "candidate_labels",
    "candidate_table",
    "check_joint_values",
    "dataset_value_to_joint_index",
    "joint_index_from_values",
    "joint_values",
    "to_joint",
]
