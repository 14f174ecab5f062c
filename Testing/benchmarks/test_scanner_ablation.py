"""benchmarks/scanner_ablation.py and phantoms.scenario_scanner: the same phantom subjects acquired
again with one setting of their scanner taken from another scanner."""

import dataclasses

import numpy as np
import pytest
from factory import load_benchmark

SPACING = 8.0  # tiny volumes (the phantom tests' template spacing)


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("nilearn", reason="the phantoms' template ships with nilearn (extra 'bench')")
    return load_benchmark("scanner_ablation")


def test_scenario_scanner_is_the_one_the_cases_are_acquired_with(bench):
    from ACELib.phantoms import scenario_scanner, scenario_subject

    scanner = scenario_scanner("wmh", "shifted", seed=3)
    assert scanner.name == "wmh-shifted" and scanner.slice_thickness_mm >= 4.0
    assert scenario_scanner("wmh", "anatomy", seed=3) != scanner
    plain = scenario_subject("wmh", "shifted", 1, spacing=SPACING, seed=3)
    given = scenario_subject("wmh", "shifted", 1, spacing=SPACING, seed=3, scanner=scanner)
    np.testing.assert_array_equal(plain.stack(("T1", "FLAIR")), given.stack(("T1", "FLAIR")))
    with pytest.raises(ValueError, match=r"dataset must be one of \['anatomy', 'lesion', 'test', 'shifted'\]"):
        scenario_scanner("wmh", "train")


def test_each_variant_replaces_one_setting_and_keeps_the_subject(bench):
    from ACELib.phantoms import scenario_scanner, scenario_subject

    shifted, anatomy = scenario_scanner("wmh", "shifted"), scenario_scanner("wmh", "anatomy")
    out = bench.variants(shifted, anatomy, ("T1", "FLAIR"))
    assert list(out) == ["as acquired", "contrast:T1", "contrast:FLAIR", "contrast", "noise", "bias", "slices",
                         "gain+gamma", "blur", "jitter"]
    assert out["as acquired"] == shifted
    assert out["contrast:FLAIR"].contrast["FLAIR"] == anatomy.contrast["FLAIR"]
    assert out["contrast:FLAIR"].contrast["T1"] == shifted.contrast["T1"]
    assert out["slices"].slice_thickness_mm == anatomy.slice_thickness_mm == 0.0
    for name in ("noise", "bias", "slices", "gain+gamma", "blur", "jitter"):
        changed = {f.name for f in dataclasses.fields(shifted) if getattr(out[name], f.name) != getattr(shifted, f.name)}
        assert changed and changed <= set(bench._FIELDS[name]), name
    base = scenario_subject("wmh", "shifted", 0, spacing=SPACING, scanner=out["as acquired"])
    flair = scenario_subject("wmh", "shifted", 0, spacing=SPACING, scanner=out["contrast:FLAIR"])
    np.testing.assert_array_equal(base.joint, flair.joint)  # same anatomy, lesions and labels
    np.testing.assert_array_equal(base.images["T1"], flair.images["T1"])  # the other modality untouched
    assert not np.array_equal(base.images["FLAIR"], flair.images["FLAIR"])


def test_writes_dice_per_variant_case_and_label(bench, tmp_path, capsys):
    from factory import WMH_LABELS

    from ACELib.inference import create_model

    model = tmp_path / "m.safetensors"
    create_model(WMH_LABELS, ("T1", "FLAIR"), base_channels=2, depth=2, seed=1).save(model)
    argv = ["--scenario", "wmh", "--model", str(model), "--out", str(tmp_path / "res"), "--cases", "1",
            "--spacing", str(SPACING)]
    assert bench.main(argv) == 0
    rows = bench.read_rows(tmp_path / "res" / "ablation.csv")
    assert len(rows) == 10 * 4  # variants x foreground labels (one case)
    assert {r["label"] for r in rows} == {"CSF", "GM", "WM", "WMH"}
    assert all(0.0 <= r["dice"] <= 1.0 or np.isnan(r["dice"]) for r in rows)
    md = (tmp_path / "res" / "ablation.md").read_text()
    assert md.count("\n") == 2 + 10 and "| contrast:FLAIR |" in md
    assert md in capsys.readouterr().out
    assert bench.table(rows) + "\n" == md


def test_refuses_a_dataset_without_joint_labels_and_a_model_it_cannot_feed(bench, tmp_path):
    from factory import WMH_LABELS

    from ACELib.inference import create_model, load_model

    path = tmp_path / "m.safetensors"
    create_model(WMH_LABELS, ("T1", "T2"), base_channels=2, depth=2).save(path)
    model = load_model(path, device="cpu")
    with pytest.raises(ValueError, match="joint test set of 'wmh'.*'anatomy'"):
        bench.ablate(model, "wmh", "anatomy", "anatomy", 1, SPACING, 0, 0.0)
    with pytest.raises(ValueError, match=r"needs \['T2'\]"):
        bench.ablate(model, "wmh", "shifted", "anatomy", 1, SPACING, 0, 0.0)
