"""Per case and per folder evaluation, CSV tables and their summary."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest

from ACELib.io.image import Geometry, write_image
from ACELib.metrics import (
    evaluate_case,
    evaluate_folders,
    read_evaluation,
    summarize,
    summary_paths,
    write_evaluation,
)

SHAPE = (6, 8, 7)  # (D, H, W)
GEOM = Geometry(size=(7, 8, 6), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))


def joint_map(seed: int) -> np.ndarray:
    """Joint values of the WMH task: CSF=1, GM=2, WM=3, WMH=4 (slabs along y), a WMH blob."""
    m = np.zeros(SHAPE, dtype=np.uint8)
    m[:, 1:3], m[:, 3:5], m[:, 5:7] = 1, 2, 3
    m[2:4, 5:7, 2 + seed % 3 : 4 + seed % 3] = 4
    return m


def test_evaluate_case_hand_computed(wmh_task):
    gt = joint_map(0)
    pred = gt.copy()
    pred[:, 1] = 2  # half of CSF (2 of its 4 rows... per column) predicted as GM
    result = evaluate_case(pred, gt, wmh_task.labels, (1.0, 1.0, 2.0))
    assert list(result) == ["CSF", "GM", "WM", "WMH"]  # background is not evaluated
    n_csf = 6 * 2 * 7
    assert result["CSF"]["dice"] == pytest.approx(2 * (n_csf / 2) / (n_csf / 2 + n_csf))
    assert result["CSF"]["vol_gt_ml"] == pytest.approx(n_csf * 2.0 / 1000)
    assert result["CSF"]["avd"] == pytest.approx(50.0)
    assert result["GM"]["avd"] == pytest.approx(50.0)  # GM gained as many voxels as CSF lost
    assert result["WM"] == {"dice": 1.0, "hd95": 0.0, "avd": 0.0,
                            "vol_pred_ml": result["WM"]["vol_gt_ml"], "vol_gt_ml": result["WM"]["vol_gt_ml"]}


def test_evaluate_case_perfect_and_missing_label(wmh_task):
    gt = joint_map(1)
    pred = gt.copy()
    pred[pred == 4] = 3  # the lesion is missed
    perfect = evaluate_case(gt, gt, wmh_task.labels, (1, 1, 1))
    assert all(m["dice"] == 1.0 and m["hd95"] == 0.0 and m["avd"] == 0.0 for m in perfect.values())
    missed = evaluate_case(pred, gt, wmh_task.labels, (1, 1, 1))["WMH"]
    assert (missed["dice"], missed["hd95"], missed["avd"]) == (0.0, math.inf, 100.0)


BAD_CASES = [
    (np.zeros((3, 3, 3)), np.zeros((3, 3, 4)), r"case: prediction \(3, 3, 3\) and reference \(3, 3, 4\)"),
    (np.full((3, 3, 3), 7), np.zeros((3, 3, 3)), r"prediction holds values \[7\] that are no label's value \[0, 1, 2, 3, 4\]"),
    (np.zeros((3, 3, 3)), np.full((3, 3, 3), 9), r"reference holds values \[9\]"),
]


@pytest.mark.parametrize("pred, gt, message", BAD_CASES)
def test_evaluate_case_bad_inputs(wmh_task, pred, gt, message):
    with pytest.raises(ValueError, match=message):
        evaluate_case(pred, gt, wmh_task.labels, (1, 1, 1))


def make_folders(tmp_path, cases=("c1", "c2", "c3"), shift=1):
    """References and predictions (WMH blob shifted by ``shift`` voxels in c2)."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for i, case in enumerate(cases):
        gt = joint_map(i)
        pred = joint_map(i + shift) if case == "c2" else gt
        write_image(gt_dir / f"{case}.nii.gz", gt, GEOM)
        write_image(pred_dir / f"{case}.nii.gz", pred, GEOM)
    return pred_dir, gt_dir


def test_evaluate_folders_rows_and_files(tmp_path, wmh_task):
    pred_dir, gt_dir = make_folders(tmp_path)
    calls = []
    rows = evaluate_folders(pred_dir, gt_dir, wmh_task.labels, progress=lambda d, t, c: calls.append((d, t, c)))
    assert calls == [(1, 3, "c1"), (2, 3, "c2"), (3, 3, "c3")]
    assert [(r["case"], r["label"]) for r in rows[:5]] == [("c1", "CSF"), ("c1", "GM"), ("c1", "WM"),
                                                          ("c1", "WMH"), ("c2", "CSF")]
    assert len(rows) == 12
    c2 = {r["label"]: r for r in rows if r["case"] == "c2"}
    assert c2["WMH"]["dice"] == pytest.approx(0.5)  # 2x2x2 blob shifted by one of its 2 voxels along x
    assert c2["WMH"]["hd95"] == pytest.approx(1.0)  # x spacing 1 mm
    assert all(r["dice"] == 1.0 for r in rows if r["case"] != "c2")

    out = tmp_path / "res" / "results.csv"
    summary = write_evaluation(rows, out)
    with out.open(newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["case", "label", "dice", "hd95", "avd", "vol_pred_ml", "vol_gt_ml"]
    assert len(table) == 12
    back = read_evaluation(out)
    assert back == rows  # floats written at full precision
    s_csv, s_md = summary_paths(out)
    assert s_csv.name == "results_summary.csv" and s_md.name == "results_summary.md"
    assert "| WMH | 3 | 0.833 ± 0.236 |" in s_md.read_text()
    wmh = next(s for s in summary if s["label"] == "WMH")
    assert wmh["dice_mean"] == pytest.approx(np.mean([1.0, 0.5, 1.0]))
    assert wmh["dice_std"] == pytest.approx(np.std([1.0, 0.5, 1.0]))
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no temporary file left


def test_summary_skips_non_finite_values_and_counts_them():
    rows = [
        {"case": "a", "label": "WMH", "dice": 0.0, "hd95": math.inf, "avd": 100.0},
        {"case": "b", "label": "WMH", "dice": 0.8, "hd95": 2.0, "avd": 10.0},
        {"case": "c", "label": "WMH", "dice": 0.6, "hd95": 4.0, "avd": math.inf},
    ]
    (s,) = summarize(rows)
    assert s["n"] == 3
    assert (s["hd95_mean"], s["hd95_std"], s["hd95_excluded"]) == (3.0, 1.0, 1)
    assert (s["avd_mean"], s["avd_excluded"]) == (55.0, 1)
    assert s["dice_mean"] == pytest.approx(1.4 / 3) and s["dice_excluded"] == 0
    (only_inf,) = summarize(rows[:1], metrics=("hd95",))
    assert math.isnan(only_inf["hd95_mean"]) and only_inf["hd95_excluded"] == 1


def test_missing_predictions_are_listed(tmp_path, wmh_task):
    pred_dir, gt_dir = make_folders(tmp_path)
    (pred_dir / "c1.nii.gz").unlink()
    (pred_dir / "c3.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"lacks predictions for 2 of 3 cases: c1.nii.gz, c3.nii.gz"):
        evaluate_folders(pred_dir, gt_dir, wmh_task.labels)


def test_geometry_mismatch_names_the_file(tmp_path, wmh_task):
    pred_dir, gt_dir = make_folders(tmp_path)
    moved = Geometry(GEOM.size, GEOM.spacing, (5.0, 0.0, 0.0))
    write_image(pred_dir / "c2.nii.gz", joint_map(1), moved)
    with pytest.raises(ValueError, match=r"c2.nii.gz' does not share the geometry .*origin"):
        evaluate_folders(pred_dir, gt_dir, wmh_task.labels)


def test_extra_predictions_are_ignored_with_a_warning(tmp_path, wmh_task, caplog):
    pred_dir, gt_dir = make_folders(tmp_path)
    write_image(pred_dir / "zz.nii.gz", joint_map(0), GEOM)
    with caplog.at_level(logging.WARNING):
        rows = evaluate_folders(pred_dir, gt_dir, wmh_task.labels)
    assert {r["case"] for r in rows} == {"c1", "c2", "c3"}
    assert "ignoring 1 predictions without a reference: zz" in caplog.text


FOLDER_ERRORS = [
    ("no_such_dir", "gt", FileNotFoundError, r"pred_dir .*no_such_dir' is not a folder"),
    ("pred", "empty", ValueError, r"gt_dir .*empty' holds no '\*.nii.gz' file"),
]


@pytest.mark.parametrize("pred, gt, error, message", FOLDER_ERRORS)
def test_folder_errors(tmp_path, wmh_task, pred, gt, error, message):
    make_folders(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=message):
        evaluate_folders(tmp_path / pred, tmp_path / gt, wmh_task.labels)


def test_write_and_read_errors(tmp_path):
    with pytest.raises(ValueError, match="rows is empty"):
        write_evaluation([], tmp_path / "x.csv")
    with pytest.raises(ValueError, match=r"rows lack the columns \['hd95', 'avd', 'vol_pred_ml', 'vol_gt_ml'\]"):
        write_evaluation([{"case": "a", "label": "WM", "dice": 1.0}], tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_evaluation(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("case,label,dice\na,WM,high\n")
    with pytest.raises(ValueError, match=r"line 2: dice = 'high' is not a number"):
        read_evaluation(bad)
