"""Joint label space: task description, candidate sets, label map conversion."""

from ACELib.labels.candidates import (
    IGNORE_INDEX,
    annotated_mask,
    candidate_labels,
    candidate_table,
    check_joint_values,
    dataset_value_to_joint_index,
    joint_index_from_values,
    joint_values,
    to_joint,
)
from ACELib.labels.space import (
    BACKGROUND,
    IGNORE,
    DatasetSpec,
    JointLabel,
    Task,
    TaskError,
    load_task,
    save_task,
)

__all__ = [
    "BACKGROUND",
    "DatasetSpec",
    "IGNORE",
    "IGNORE_INDEX",
    "JointLabel",
    "Task",
    "TaskError",
    "annotated_mask",
    "candidate_labels",
    "candidate_table",
    "check_joint_values",
    "dataset_value_to_joint_index",
    "joint_index_from_values",
    "joint_values",
    "load_task",
    "save_task",
    "to_joint",
]
