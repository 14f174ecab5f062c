"""benchmarks/bundle_models.py: the any-contrast entry, and --only keeping the catalogue's other entries."""

import json

import pytest
from factory import load_benchmark, make_tiny_task

from ACELib.inference import sha256_of
from ACELib.labels import load_task
from ACELib.metrics import write_evaluation
from ACELib.training import TrainConfig, train

CFG = TrainConfig(loss="ace", iterations=1, batch_size=2, patch_size=8, base_channels=2, depth=2,
                  validation_interval=5, checkpoint_interval=5, device="cpu", validation_fraction=0.0)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    task = load_task(make_tiny_task(root / "data", n_anatomy=2, n_lesion=2, n_test=0, shape=(12, 12, 12),
                                    anatomy_modalities=("T1",)))
    train(task, root / "tumor" / "runs" / "any" / "seed0", CFG.with_changes(any_contrast=True))
    train(task, root / "tumor" / "runs" / "plain" / "seed0", CFG)
    for test, dice in (("test", 0.8), ("shifted", 0.6)):
        for contrast in ("T1", "FLAIR"):
            rows = [{"case": f"c{i}", "label": "GM", "dice": dice - 0.1 * (contrast == "FLAIR"), "hd95": 1.0,
                     "avd": 0.1, "vol_pred_ml": 1.0, "vol_gt_ml": 1.0} for i in range(2)]
            write_evaluation(rows, root / "eval" / "evaluation" / test / f"any@{contrast}_seed0.csv")
    return root


def test_the_any_contrast_entry_carries_its_dice_per_contrast(results, tmp_path):
    bundle = load_benchmark("bundle_models")
    row = bundle.bundle_any_contrast(results / "tumor", results / "eval", tmp_path, "any", "ace train ...")
    assert row["id"] == "tumor-any-contrast" and row["modalities"] == ["any"]
    assert row["sha256"] == sha256_of(tmp_path / row["file"])
    assert row["phantom_test_dice"] == {"GM": 0.8} and row["shifted_test_dice"] == {"GM": 0.6}
    assert row["contrast_test_dice"]["shifted"]["FLAIR"] == {"GM": 0.5}
    with pytest.raises(ValueError, match="not trained with --any-contrast"):
        bundle.bundle_any_contrast(results / "tumor", results / "eval", tmp_path, "plain", "")
    with pytest.raises(ValueError, match="run benchmarks/any_contrast.py"):
        bundle.bundle_any_contrast(results / "tumor", tmp_path / "nothing", tmp_path, "any", "")


def test_only_rebuilds_the_named_entry_and_keeps_the_others(results, tmp_path):
    bundle = load_benchmark("bundle_models")
    other = {"id": "wmh-t1-flair", "name": "kept", "file": "x.safetensors", "sha256": "0" * 64}
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": [other]}))
    assert bundle.main(["--tumor", str(results / "tumor"), "--any-contrast", "any", "--any-eval",
                        str(results / "eval"), "--only", "tumor-contrast", "--out", str(tmp_path)]) == 0
    models = json.loads((tmp_path / "catalogue.json").read_text())["models"]
    assert [m["id"] for m in models] == ["wmh-t1-flair", "tumor-any-contrast"] and models[0] == other


def test_a_longer_hetero_run_is_bundled_with_the_command_that_trained_it(results, tmp_path):
    bundle = load_benchmark("bundle_models")
    for where, dice in (("", 0.7), ("shifted/", 0.5)):
        rows = [{"case": "c0", "label": "GM", "dice": dice, "hd95": 1.0, "avd": 0.1, "vol_pred_ml": 1.0,
                 "vol_gt_ml": 1.0}]
        write_evaluation(rows, results / "tumor" / "evaluation" / f"{where}plain_seed0.csv")
    assert bundle.main(["--tumor", str(results / "tumor"), "--hetero", "plain", "--hetero-command",
                        "ace train --hetero-modal --iterations 2000", "--only", "tumor-hetero", "--out",
                        str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "catalogue.json").read_text())["models"]
    assert row["id"] == "tumor-any"
    assert row["trained_by"] == "ace train --hetero-modal --iterations 2000  (model: runs/plain/seed0/model.safetensors)"
    assert row["phantom_test_dice"] == {"GM": 0.7} and row["shifted_test_dice"] == {"GM": 0.5}
