"""benchmarks/window_choice.py runs on a tiny model and test set and prints one row per setting."""

from __future__ import annotations

import csv
import dataclasses

import pytest
from factory import WMH_LABELS, load_benchmark, make_tiny_task

from ACELib.inference import create_model


@pytest.fixture(scope="module")
def script():
    return load_benchmark("window_choice")


def test_every_setting_gives_dice_and_seconds(script, tmp_path, capsys):
    make_tiny_task(tmp_path, n_anatomy=0, n_lesion=0, n_test=2, shape=(12, 14, 13))
    model = create_model(WMH_LABELS, ("T1", "FLAIR"), base_channels=2, depth=2, seed=0)
    model.metadata = dataclasses.replace(model.metadata, patch_size=(8, 8, 8))
    model.save(tmp_path / "m.safetensors")
    out = tmp_path / "w.csv"
    assert script.main([str(tmp_path / "m.safetensors"), str(tmp_path / "test"), "--threads", "1",
                        "--csv", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["setting"] for r in rows] == list(script.SETTINGS)
    assert [r["window"] for r in rows[:3]] == ["volume", "planned", "8x8x8"]
    assert all(0.0 <= float(r["dice_tissue"]) <= 1.0 and float(r["seconds"]) > 0 for r in rows)
    assert "2P/0.5" in capsys.readouterr().out


def test_unknown_setting_is_refused(script):
    with pytest.raises(ValueError, match=r"setting must be one of"):
        script.window_of("3P/0.5", (8, 8, 8))
