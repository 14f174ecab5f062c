"""``ace evaluate`` through the CLI entry point."""

from __future__ import annotations

import numpy as np
import pytest

from ACELib.cli.main import main
from ACELib.io.image import Geometry, write_image
from ACELib.labels import save_task
from ACELib.metrics import read_evaluation

GEOM = Geometry(size=(9, 8, 7), spacing=(1.0, 1.0, 1.5), origin=(0.0, 0.0, 0.0))


def _map(shift: int) -> np.ndarray:
    m = np.zeros(GEOM.shape, dtype=np.uint8)
    m[:, :4], m[:, 4:] = 2, 3  # GM, WM (joint values of the WMH task)
    m[2:5, 5:7, 3 + shift : 6 + shift] = 4  # WMH
    return m


@pytest.fixture
def folders(tmp_path, wmh_task):
    task_file = tmp_path / "task.json"
    save_task(wmh_task, task_file)
    for case, shift in (("a", 0), ("b", 1), ("c", 2)):
        write_image(tmp_path / "gt" / f"{case}.nii.gz", _map(0), GEOM)
        write_image(tmp_path / "pred1" / f"{case}.nii.gz", _map(shift), GEOM)
        write_image(tmp_path / "pred2" / f"{case}.nii.gz", _map(0), GEOM)
    return tmp_path, task_file


def test_evaluate_writes_tables_and_prints_summary(folders, capsys):
    root, task_file = folders
    out1, out2 = root / "r1.csv", root / "r2.csv"
    args = ["evaluate", "--gt", str(root / "gt"), "--task", str(task_file)]
    assert main([*args, "--pred", str(root / "pred1"), "--out", str(out1)]) == 0
    printed = capsys.readouterr().out
    assert "3 cases evaluated" in printed
    assert "| label | n | Dice | HD95 (mm) | AVD (%) |" in printed
    assert "| WM | 3 |" in printed
    rows = read_evaluation(out1)
    assert len(rows) == 3 * 4 and {r["label"] for r in rows} == {"CSF", "GM", "WM", "WMH"}
    assert (root / "r1_summary.csv").is_file() and (root / "r1_summary.md").is_file()

    assert main([*args, "--pred", str(root / "pred2"), "--out", str(out2), "--compare", str(out1)]) == 0
    printed = capsys.readouterr().out
    assert "Wilcoxon signed-rank test (two-sided)" in printed
    assert "| WMH | dice | 3 | 1.000 |" in printed


def test_missing_prediction_is_a_clear_error(folders, capsys):
    root, task_file = folders
    (root / "pred1" / "b.nii.gz").unlink()
    code = main(["evaluate", "--pred", str(root / "pred1"), "--gt", str(root / "gt"), "--task", str(task_file),
                 "--out", str(root / "r.csv")])
    assert code == 2
    err = capsys.readouterr().err
    assert "ace evaluate: error:" in err and "lacks predictions for 1 of 3 cases: b.nii.gz" in err
    assert not (root / "r.csv").exists()


@pytest.mark.parametrize("target", ["existing_csv", "gt_file", "pred_file", "compare", "task"])
def test_evaluate_never_writes_over_an_input_or_an_existing_table(folders, capsys, target):
    root, task_file = folders
    args = ["evaluate", "--gt", str(root / "gt"), "--pred", str(root / "pred1"), "--task", str(task_file)]
    first = root / "first.csv"
    assert main([*args, "--out", str(first)]) == 0
    out = {"existing_csv": first, "gt_file": root / "gt" / "a.nii.gz", "pred_file": root / "pred1" / "b.nii.gz",
           "compare": first, "task": task_file}[target]
    before = out.read_bytes()
    extra = ["--compare", str(first)] if target == "compare" else []
    capsys.readouterr()
    code = main([*args, "--out", str(out), *extra, *(["--overwrite"] if target != "existing_csv" else [])])
    err = capsys.readouterr().err
    assert code == 2 and out.read_bytes() == before
    expected = "exists; pass overwrite=True" if target == "existing_csv" else "it would be destroyed"
    assert expected in err and err.count("\n") == 1, err


def test_evaluate_replaces_its_own_table_with_overwrite(folders):
    root, task_file = folders
    args = ["evaluate", "--gt", str(root / "gt"), "--pred", str(root / "pred1"), "--task", str(task_file),
            "--out", str(root / "t.csv")]
    assert main(args) == 0
    assert main([*args, "--overwrite"]) == 0
