"""Evaluation tables: per case and label metrics, per folder rows, CSV files and a mean ± std summary.

Flat, like nnU-Net's evaluation: voxel counts (:mod:`ACELib.metrics.masks`) -> one dict of metrics
per case and label (:func:`evaluate_case`) -> rows for a folder of cases (:func:`evaluate_folders`)
-> CSV files (:func:`write_evaluation`). Label maps on disk hold joint *values*
(``JointLabel.value``); background (value 0) is not evaluated. The edge-case policy (empty masks)
is the one of :mod:`ACELib.metrics.masks`; :func:`summarize` averages finite values only and counts
the others.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ACELib.io.atomic import atomic_write_text
from ACELib.io.image import read_image
from ACELib.io.image_checks import integer_labels
from ACELib.metrics.masks import (
    avd_from_volumes,
    check_spacing,
    dice_from_counts,
    hd95,
    mask_counts,
    voxel_volume_ml,
)
from ACELib.progress import Progress

log = logging.getLogger(__name__)

METRICS = ("dice", "hd95", "avd", "vol_pred_ml", "vol_gt_ml")
SUMMARY_METRICS = ("dice", "hd95", "avd")
COLUMNS = ("case", "label", *METRICS)
_TITLES = {"dice": "Dice", "hd95": "HD95 (mm)", "avd": "AVD (%)"}


def _foreground(labels: Sequence) -> list:
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty; expected the task's JointLabel list")
    for lab in labels:
        if not hasattr(lab, "name") or not hasattr(lab, "value"):
            raise TypeError(f"labels must be JointLabel objects (name, value), got {lab!r}")
    return [lab for lab in labels if lab.value != 0]


def evaluate_case(pred_values: np.ndarray, gt_values: np.ndarray, labels: Sequence, spacing: Sequence[float],
                  source: str = "case") -> dict[str, dict[str, float]]:
    """Metrics of every foreground label of one case.

    Args:
        pred_values, gt_values: ``(D, H, W)`` integer label maps of joint values.
        labels: the task's ``JointLabel`` list (``Task.labels``); value 0 (background) is skipped.
        spacing: voxel size in mm, ``(x, y, z)`` order (``Geometry.spacing``).
        source: how to name the case in error messages.

    Returns:
        label name -> ``{"dice", "hd95", "avd", "vol_pred_ml", "vol_gt_ml"}`` floats.

    Raises:
        ValueError: shapes differ, maps are not 3D, or a map holds a value that is no label's value.
    """
    pred, gt = np.asarray(pred_values), np.asarray(gt_values)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"{source}: prediction {pred.shape} and reference {gt.shape} must be 3D maps of one shape")
    sp = check_spacing(spacing)
    foreground = _foreground(labels)
    known = {0} | {int(lab.value) for lab in foreground}
    for what, arr in (("prediction", pred), ("reference", gt)):
        unknown = sorted(int(v) for v in np.unique(arr) if int(v) not in known)
        if unknown:
            raise ValueError(f"{source}: {what} holds values {unknown} that are no label's value {sorted(known)}")
    unit = voxel_volume_ml(sp)
    out: dict[str, dict[str, float]] = {}
    for lab in foreground:
        p, g = pred == lab.value, gt == lab.value
        counts = mask_counts(p, g)
        v_pred, v_gt = counts.n_pred * unit, counts.n_ref * unit
        out[lab.name] = {
            "dice": dice_from_counts(counts),
            "hd95": hd95(p, g, sp),
            "avd": avd_from_volumes(v_pred, v_gt),
            "vol_pred_ml": v_pred,
            "vol_gt_ml": v_gt,
        }
    return out


def _read_labels(path: Path) -> tuple[np.ndarray, object]:
    arr, geom = read_image(path, dtype=np.float64)
    return integer_labels(arr, path), geom


def _cases(folder: Path, file_ending: str) -> dict[str, Path]:
    return {p.name[: -len(file_ending)]: p for p in sorted(folder.iterdir())
            if p.is_file() and p.name.endswith(file_ending) and not p.name.startswith(".")}


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, labels: Sequence,
                     file_ending: str = ".nii.gz",
                     progress: Progress | None = None) -> list[dict]:
    """Evaluate every reference case of ``gt_dir`` against the file of the same name in ``pred_dir``.

    Args:
        pred_dir, gt_dir: folders of label maps ``{case}{file_ending}`` holding joint values.
        labels: the task's ``JointLabel`` list.
        file_ending: e.g. ``".nii.gz"``.
        progress: optional callback ``progress(done, total, case)``.

    Returns:
        One row per case and foreground label, ``{"case", "label", "dice", "hd95", "avd",
        "vol_pred_ml", "vol_gt_ml"}``, cases sorted by name, labels in task order.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: no reference case, predictions missing (all listed), a geometry mismatch
            (naming the file), or values that are no label's value.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for name, folder in (("pred_dir", pred_dir), ("gt_dir", gt_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{name} {str(folder)!r} is not a folder")
    gt_cases, pred_cases = _cases(gt_dir, file_ending), _cases(pred_dir, file_ending)
    if not gt_cases:
        raise ValueError(f"gt_dir {str(gt_dir)!r} holds no '*{file_ending}' file")
    missing = [c for c in gt_cases if c not in pred_cases]
    if missing:
        raise ValueError(
            f"pred_dir {str(pred_dir)!r} lacks predictions for {len(missing)} of {len(gt_cases)} cases: "
            + ", ".join(f"{c}{file_ending}" for c in missing)
        )
    extra = sorted(set(pred_cases) - set(gt_cases))
    if extra:
        log.warning("ignoring %d predictions without a reference: %s", len(extra), ", ".join(extra))
    rows: list[dict] = []
    for i, (case, gt_path) in enumerate(gt_cases.items()):
        gt, gt_geom = _read_labels(gt_path)
        pred, pred_geom = _read_labels(pred_cases[case])
        diff = gt_geom.differences(pred_geom)
        if diff:
            raise ValueError(
                f"prediction {str(pred_cases[case])!r} does not share the geometry of its reference "
                f"{str(gt_path)!r}: " + "; ".join(diff)
            )
        result = evaluate_case(pred, gt, labels, gt_geom.spacing, source=str(pred_cases[case]))
        rows.extend({"case": case, "label": name, **metrics} for name, metrics in result.items())
        if progress is not None:
            progress(i + 1, len(gt_cases), case)
    return rows


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, len(values)
    arr = np.asarray(finite, dtype=np.float64)
    return float(arr.mean()), float(arr.std()), len(values) - len(finite)


def summarize(rows: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> list[dict]:
    """Mean and standard deviation of each metric per label, over the finite values only.

    The standard deviation is the population one (``numpy.std``, ``ddof=0``). ``{metric}_excluded``
    counts the values left out (``inf`` or ``nan``, e.g. HD95 of a missed structure).

    Returns:
        One dict per label in order of first appearance: ``{"label", "n", "{m}_mean", "{m}_std",
        "{m}_excluded"}`` for every metric ``m``.
    """
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    out = []
    for label, group in by_label.items():
        entry: dict = {"label": label, "n": len(group)}
        for m in metrics:
            mean, std, excluded = _mean_std([float(r[m]) for r in group])
            entry.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_excluded": excluded})
        out.append(entry)
    return out


def format_summary(summary: Sequence[dict], metrics: Sequence[str] = SUMMARY_METRICS) -> str:
    """A markdown table ``label | n | Dice | HD95 (mm) | AVD (%)`` with ``mean ± std`` cells."""
    head = ["label", "n", *(_TITLES.get(m, m) for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["label"], str(s["n"])]
        for m in metrics:
            digits = 3 if m == "dice" else 2
            cell = f"{s[f'{m}_mean']:.{digits}f} ± {s[f'{m}_std']:.{digits}f}"
            if s[f"{m}_excluded"]:
                cell += f" ({s[f'{m}_excluded']} not finite)"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(float(v)) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()})
    return buf.getvalue()


def summary_paths(out_csv: str | os.PathLike) -> tuple[Path, Path]:
    """Where :func:`write_evaluation` puts the summary: ``{stem}_summary.csv`` and ``{stem}_summary.md``."""
    out_csv = Path(out_csv)
    stem = out_csv.name[: -len(".csv")] if out_csv.name.endswith(".csv") else out_csv.name
    return out_csv.with_name(f"{stem}_summary.csv"), out_csv.with_name(f"{stem}_summary.md")


def write_evaluation(rows: Sequence[dict], out_csv: str | os.PathLike) -> list[dict]:
    """Write the per case and label table to ``out_csv`` and its summary beside it (atomically).

    Files: ``out_csv`` (columns ``case, label, dice, hd95, avd, vol_pred_ml, vol_gt_ml``; floats
    at full precision, ``inf``/``nan`` as such), ``{stem}_summary.csv`` and ``{stem}_summary.md``.

    Returns:
        The summary (see :func:`summarize`).
    """
    if not rows:
        raise ValueError("rows is empty: nothing to write")
    missing = [c for c in COLUMNS if c not in rows[0]]
    if missing:
        raise ValueError(f"rows lack the columns {missing}; expected {list(COLUMNS)}")
    summary = summarize(rows)
    summary_csv, summary_md = summary_paths(out_csv)
    atomic_write_text(out_csv, _csv_text(rows, COLUMNS))
    atomic_write_text(summary_csv, _csv_text(summary, list(summary[0])))
    atomic_write_text(summary_md, format_summary(summary))
    return summary


def read_evaluation(path: str | os.PathLike) -> list[dict]:
    """Read a table written by :func:`write_evaluation`: rows with float metrics.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file lacks a needed column or holds a non-numeric metric (row named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"evaluation table {str(path)!r} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("case", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{str(path)!r}: lacks the columns {missing} (has {reader.fieldnames})")
        metrics = [c for c in reader.fieldnames if c not in ("case", "label")]
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict = {"case": raw["case"], "label": raw["label"]}
            for m in metrics:
                try:
                    row[m] = float(raw[m])
                except (TypeError, ValueError):
                    raise ValueError(f"{str(path)!r} line {line}: {m} = {raw[m]!r} is not a number") from None
            rows.append(row)
    return rows
