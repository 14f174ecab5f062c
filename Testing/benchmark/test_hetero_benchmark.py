"""The hetero-modal method in the tumour scenario: trained once, tested with all four modalities and T1 alone."""

import pytest

from ACELib.benchmark import Profile, get_methods, run_benchmark
from ACELib.benchmark.conditions import condition_key, restrict_cases
from ACELib.benchmark.methods import method_config
from ACELib.inference import CaseInput
from ACELib.training import TrainConfig

TINY = Profile("tiny", True, TrainConfig(iterations=2, batch_size=2, patch_size=8, base_channels=2, depth=2,
                                         validation_interval=2, checkpoint_interval=2))


def test_the_method_trains_a_hetero_modal_ace_model():
    (method,) = get_methods(["ace-hetero"])
    cfg = method_config(TINY, method, seed=1)
    assert method.title == "ACE + marginal Dice, hetero-modal" and cfg.hetero_modal and cfg.loss == "ace+dice" and cfg.seed == 1
    assert method.conditions == (("T1",),)


def test_condition_keys_and_restricted_cases(tmp_path):
    assert condition_key("ace-hetero", ["T1"]) == "ace-hetero@T1"
    assert condition_key("x", ["T1", "FLAIR"]) == "x@T1+FLAIR"
    with pytest.raises(ValueError, match="at least one modality"):
        condition_key("x", [])
    case = CaseInput("c", (tmp_path / "a", tmp_path / "b", tmp_path / "c"), ("T1", "T1c", "FLAIR"))
    (only,) = restrict_cases([case], ["FLAIR", "T1"])
    assert only.modalities == ("FLAIR", "T1") and only.image_paths == (tmp_path / "c", tmp_path / "a")
    with pytest.raises(ValueError, match=r"lacks \['T2'\]"):
        restrict_cases([case], ["T2"])


def test_tumour_benchmark_reports_all_modalities_and_t1_alone(tmp_path, monkeypatch):
    import ACELib.phantoms.scenarios as scenarios

    monkeypatch.setitem(scenarios.PROFILES, "quick", 12.0)  # 12 mm voxels: tiny phantoms
    out = run_benchmark("tumor", tmp_path, TINY, seeds=[0], methods=["ace-hetero"], counts=(2, 2, 2),
                        device="cpu", command="ace benchmark (test)")
    assert len(list((out / "predictions/ace-hetero/seed0").glob("*.nii.gz"))) == 2
    assert len(list((out / "predictions/ace-hetero@T1/seed0").glob("*.nii.gz"))) == 2
    assert (out / "evaluation/ace-hetero@T1_seed0.csv").exists()
    table = (out / "table1.md").read_text()
    assert "| ACE + marginal Dice, hetero-modal |" in table and "| ace-hetero@T1 |" in table and "tumor" in table
    stamp = (out / "evaluation/ace-hetero@T1_seed0.csv").stat().st_mtime_ns
    run_benchmark("tumor", tmp_path, TINY, seeds=[0], methods=["ace-hetero"], device="cpu")
    assert (out / "evaluation/ace-hetero@T1_seed0.csv").stat().st_mtime_ns == stamp  # kept on resume
