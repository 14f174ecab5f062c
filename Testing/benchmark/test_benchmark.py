import pytest

from ACELib.benchmark import PROFILES, Profile, get_methods, run_benchmark
from ACELib.benchmark.demo import run_demo
from ACELib.benchmark.report import table1, wilcoxon_table
from ACELib.training import TrainConfig

TINY = Profile("tiny", True, TrainConfig(iterations=4, batch_size=2, patch_size=8, base_channels=2, depth=2,
                                         validation_interval=2, checkpoint_interval=2))


def _rows(values):
    return [{"case": f"c{i}", "label": "WM", "dice": v} for i, v in enumerate(values)]


def test_table1_averages_case_statistics_over_seeds():
    results = {"ace": {0: _rows([0.8, 0.6]), 1: _rows([0.6, 0.4])}}
    (row,) = table1(results, ["WM"])
    assert row["mean"] == pytest.approx(0.6) and row["std"] == pytest.approx(0.1)
    assert row["seed_sd"] == pytest.approx(0.1) and row["seeds"] == 2


def test_wilcoxon_table_pairs_cases_on_seed_means():
    ace = {0: _rows([0.9, 0.8, 0.85, 0.7, 0.95, 0.75])}
    ce = {0: _rows([0.1, 0.2, 0.15, 0.3, 0.05, 0.25])}
    (row,) = wilcoxon_table({"ace": ace, "naive-ce": ce}, ["WM"])
    assert row["n"] == 6 and row["median_difference"] > 0
    assert row["p_value"] == pytest.approx(0.03125)  # exact two-sided p of 6 wins out of 6


def test_the_default_loss_is_the_reference_when_it_ran():
    ace = {0: _rows([0.9, 0.8, 0.85, 0.7, 0.95, 0.75])}
    rows = wilcoxon_table({"ace": ace, "ace+dice": ace, "naive-ce": ace}, ["WM"])
    assert {r["reference"] for r in rows} == {"ace+dice"} and {r["method"] for r in rows} == {"ace", "naive-ce"}
    assert {r["reference"] for r in wilcoxon_table({"ace": ace, "naive-ce": ace}, ["WM"])} == {"ace"}


def test_a_method_can_change_the_profiles_augmentation():
    from ACELib.benchmark.methods import method_config

    (curve, plain) = get_methods(["ace+dice+curve", "ace+dice"])
    profile = PROFILES["cpu"]
    on, off = method_config(profile, curve, seed=0), method_config(profile, plain, seed=0)
    assert on.augmentation.p_curve == 0.5 and off.augmentation == profile.train.augmentation
    assert on.loss == off.loss == "ace+dice"
    assert on.augmentation.p_noise == profile.train.augmentation.p_noise  # the rest is the profile's
    (gain,) = get_methods(["ace+dice+gain"])
    assert method_config(profile, gain, seed=0).augmentation.p_class_gain == 0.5
    # the generator label maps are read beside the shared cache (ACELib.data.loading)
    assert method_config(profile, gain, seed=0, cache_dir="c").cache_dir == "c"
    assert method_config(profile, plain, seed=0, cache_dir="c").cache_dir == "c"


def test_a_method_can_change_other_training_settings():
    from ACELib.benchmark.methods import method_config

    distill, hetero = get_methods(["ace-hetero+distill", "ace-hetero"])
    on, off = method_config(PROFILES["cpu"], distill, seed=1), method_config(PROFILES["cpu"], hetero, seed=1)
    assert on.pass_distillation == 0.1 and off.pass_distillation == 0.0
    assert on.hetero_modal and on.seed == 1 and on.with_changes(pass_distillation=0.0) == off
    (shared,) = get_methods(["ace-hetero+shared"])
    assert method_config(PROFILES["cpu"], shared, seed=1).with_changes(modality_subsets="uniform") == off


def test_method_typo_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown methods \['ace2'\]; valid: \['multi-unet'"):
        get_methods(["ace2"])
    assert set(PROFILES) == {"cpu", "paper"}
    from ACELib.benchmark.methods import get_profile

    assert get_profile("quick") is PROFILES["cpu"] and get_profile("full") is PROFILES["paper"]
    with pytest.raises(ValueError, match=r"profile must be one of \['cpu', 'paper'\], got 'gpu'"):
        get_profile("gpu")


def test_benchmark_end_to_end_and_resume(tmp_path, monkeypatch):
    import ACELib.phantoms.scenarios as scenarios

    monkeypatch.setitem(scenarios.PROFILES, "quick", 12.0)  # 12 mm voxels: tiny phantoms
    out = run_benchmark("wmh", tmp_path, TINY, seeds=[0], methods=["naive-ce", "multi-unet", "ace"],
                        counts=(2, 3, 2), device="cpu", command="ace benchmark (test)", shifted=1)
    for name in ("table1.md", "table1.csv", "wilcoxon.csv", "figure3_boxplot.png", "figure4_qualitative.png",
                 "README.md", "table1_shifted.md", "table1_shifted.csv", "evaluation/shifted/ace_seed0.csv"):
        assert (out / name).exists(), name
    table = (out / "table1.md").read_text()
    assert "| Naive CE |" in table and "WMH" in table and "Wilcoxon" in table
    model = out / "runs/ace/seed0/model.safetensors"
    stamp = model.stat().st_mtime_ns
    run_benchmark("wmh", tmp_path, TINY, seeds=[0], methods=["naive-ce", "multi-unet", "ace"], device="cpu", jobs=2)
    assert model.stat().st_mtime_ns == stamp  # resumed (in worker processes): nothing trained again
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        run_benchmark("wmh", tmp_path, TINY, seeds=[0], methods=["ace"], device="cpu", jobs=0)
    # a report of what exists, training nothing: seed 1 was never run, naive Dice never trained
    (out / "table1.md").unlink()
    run_benchmark("wmh", tmp_path, TINY, seeds=[0, 1], methods=["naive-dice", "ace", "naive-ce"], device="cpu",
                  report_only=True)
    table = (out / "table1.md").read_text()
    assert "| ACE (dataset labels) |" in table and "Naive Dice" not in table
    assert not (out / "runs/naive-dice").exists() and not (out / "runs/ace/seed1").exists()
    assert "training time per run" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="no \\(method, seed\\) of \\['naive-dice'\\]"):
        run_benchmark("wmh", tmp_path, TINY, seeds=[0], methods=["naive-dice"], device="cpu", report_only=True)


def test_demo_writes_segmentations_and_figure(tmp_path, monkeypatch):
    import ACELib.benchmark.demo as demo
    import ACELib.phantoms.scenarios as scenarios

    monkeypatch.setitem(scenarios.PROFILES, "quick", 12.0)
    monkeypatch.setattr(demo, "DEMO_COUNTS", (2, 3, 1))
    monkeypatch.setitem(demo.PROFILES, "cpu", TINY)
    monkeypatch.setattr(demo, "DEMO_ITERATIONS", 4)
    scores = run_demo(tmp_path, device="cpu")
    assert set(scores) == {"ace", "naive-ce"} and set(scores["ace"]) == {"CSF", "GM", "WM", "WMH"}
    assert all(0 <= v <= 1 for s in scores.values() for v in s.values())
    assert (tmp_path / "demo.png").stat().st_size > 1000
    assert len(list(tmp_path.glob("*_ace.nii.gz"))) == 1


def test_evaluations_and_segmentations_older_than_the_model_are_made_again(tmp_path):
    import os

    from ACELib.benchmark.testset import drop_stale_segmentations, evaluation_is_current

    model, csv, preds = tmp_path / "model.safetensors", tmp_path / "ace_seed0.csv", tmp_path / "pred"
    preds.mkdir()
    old, new = preds / "case_000.nii.gz", preds / "case_001.nii.gz"
    for f in (model, csv, old, new):
        f.write_text("x")
    os.utime(old, (1000, 1000))
    os.utime(model, (2000, 2000))
    os.utime(new, (3000, 3000))
    os.utime(csv, (3000, 3000))
    assert evaluation_is_current(csv, model)  # evaluated after the model: kept
    os.utime(csv, (1500, 1500))  # the run was replaced after its evaluation
    assert not evaluation_is_current(csv, model)
    drop_stale_segmentations(preds, model)
    assert not old.exists() and new.exists()  # the stale segmentation goes, this model's stays
    csv.unlink()
    assert not evaluation_is_current(csv, model)
    drop_stale_segmentations(tmp_path / "never_predicted", model)  # no folder: nothing to do
