"""check -> train a few iterations -> predict -> evaluate, through the `ace` command line."""

import csv

import nibabel as nib
import numpy as np
import pytest
from factory import make_tiny_task, oblique_direction

from ACELib.cli.main import main
from ACELib.inference import load_model

TINY = ["--iterations", "6", "--batch-size", "2", "--patch-size", "8", "--base-channels", "2", "--depth", "2",
        "--val-interval", "3", "--checkpoint-interval", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def task_path(tmp_path_factory):
    return make_tiny_task(tmp_path_factory.mktemp("e2e"), n_anatomy=2, n_lesion=2, n_test=2, shape=(12, 14, 13),
                          direction=oblique_direction())


@pytest.mark.parametrize("method", [["--loss", "ace"], ["--multi-unet"]], ids=["ace", "multi-unet"])
def test_check_train_predict_evaluate(task_path, tmp_path, method, capsys):
    root = task_path.parent
    assert main(["check", str(task_path)]) == 0
    run = tmp_path / "run"
    assert main(["train", "--task", str(task_path), "--out", str(run), *TINY, *method]) == 0
    for name in ("model.safetensors", "model_last.safetensors", "config.json", "task.json"):
        assert (run / name).exists(), name
    logs = list(run.rglob("log.csv"))
    assert len(logs) == (2 if "--multi-unet" in method else 1)
    rows = list(csv.DictReader(open(logs[0])))
    assert [int(r["step"]) for r in rows] == list(range(1, 7)) and rows[2]["val_dice"] != ""
    assert list(run.rglob("curves.png"))
    model = load_model(run / "model.safetensors")
    assert model.metadata.kind == ("multi-unet" if "--multi-unet" in method else "single")

    pred = tmp_path / "pred"
    assert main(["predict", "--model", str(run / "model.safetensors"), "--input", str(root / "test/imagesTr"),
                 "--out", str(pred), "--window", "8", "8", "8"]) == 0
    for case in ("test_000", "test_001"):
        seg = nib.load(pred / f"{case}.nii.gz")
        ref = nib.load(root / f"test/labelsTr/{case}.nii.gz")
        assert seg.shape == ref.shape
        np.testing.assert_allclose(seg.affine, ref.affine, atol=1e-5)
        assert set(np.unique(seg.get_fdata()).astype(int)) <= {0, 1, 2, 3, 4}
    # never overwrites without being asked
    assert main(["predict", "--model", str(run / "model.safetensors"), "--input", str(root / "test/imagesTr"),
                 "--out", str(pred)]) == 2
    assert "exist already" in capsys.readouterr().err

    out_csv = tmp_path / "eval.csv"
    assert main(["evaluate", "--pred", str(pred), "--gt", str(root / "test/labelsTr"), "--task", str(task_path),
                 "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(open(out_csv)))
    assert {r["label"] for r in rows} == {"CSF", "GM", "WM", "WMH"} and len(rows) == 8
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)


def test_existing_run_needs_resume(task_path, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", str(task_path), "--out", str(run), *TINY]) == 0
    assert main(["train", "--task", str(task_path), "--out", str(run), *TINY]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert main(["train", "--task", str(task_path), "--out", str(run), *TINY, "--resume", "--loss", "ce"]) == 2
    assert "cannot resume" in capsys.readouterr().err
