"""Label volumes: voxel counts and millilitres per joint label, and their CSV table."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from ACELib.io.atomic import atomic_write_text

VOLUME_COLUMNS = ("case", "label", "value", "voxels", "volume_ml")


def label_volumes(labels: np.ndarray, spacing: Sequence[float], joint_labels: Sequence, case: str = "",
                  include_background: bool = False) -> list[dict]:
    """Voxels and volume of each joint label in a label map.

    Args:
        labels: ``(D, H, W)`` integer map of joint label *values*.
        spacing: voxel spacing ``(x, y, z)`` in mm.
        joint_labels: the joint labels (``ACELib.labels.JointLabel``; ``[0]`` is background).
        case: written in each row's ``case`` column.

    Returns:
        One row per label (background only when ``include_background``), in label order:
        ``{"case", "label", "value", "voxels", "volume_ml"}``; a label absent from the map has 0 voxels.

    Raises:
        ValueError: ``labels`` is not 3D or ``spacing`` not three positive numbers.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (D, H, W) map, got shape {labels.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (x, y, z), got {spacing}")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    values, counts = np.unique(labels, return_counts=True)
    count_of = dict(zip(values.tolist(), counts.tolist()))
    rows = []
    for lab in joint_labels[0 if include_background else 1:]:
        n = int(count_of.get(lab.value, 0))
        rows.append({"case": case, "label": lab.name, "value": int(lab.value), "voxels": n, "volume_ml": n * voxel_ml})
    return rows


def write_volumes(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Write volume rows (see :func:`label_volumes`) as CSV, atomically; ``volume_ml`` to 0.001 mL."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(VOLUME_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**{k: r[k] for k in VOLUME_COLUMNS}, "volume_ml": f"{float(r['volume_ml']):.3f}"})
    atomic_write_text(path, buf.getvalue())
