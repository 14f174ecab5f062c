"""The model header reader: the metadata a model file carries, read without torch and without its tensors."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from ACELib.inference import ModelMetadata, create_model, read_model_metadata
from ACELib.labels import JointLabel

REPO = Path(__file__).resolve().parents[2]
LABELS = (JointLabel("background", 0, (0, 0, 0)), JointLabel("GM", 2, (220, 180, 140)),
          JointLabel("WMH", 7, (255, 50, 50)))

# Runs with torch blocked: ``import torch`` raises ImportError. Prints what each reader returned.
WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None
from ACELib.inference.metadata import read_model_metadata
from ACELib.losses import LOSSES
from ACELib.training.curves import log_series, read_log
doc = read_model_metadata(sys.argv[1])
print(json.dumps({"modalities": doc["modalities"], "labels": doc["labels"], "losses": list(LOSSES),
                  "loss": log_series(read_log(sys.argv[2]), "loss"),
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m])}))
"""


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.safetensors"
    create_model(LABELS, ("T1", "FLAIR"), base_channels=2, depth=2, hetero=True).save(path)
    return path


def test_the_header_gives_the_saved_metadata(model_path):
    doc = read_model_metadata(model_path)
    assert doc["modalities"] == ["T1", "FLAIR"] and doc["modality_subsets"] == "any"
    assert doc["labels"] == [lab.to_dict() for lab in LABELS]
    saved = create_model(LABELS, ("T1", "FLAIR"), base_channels=2, depth=2, hetero=True).metadata
    assert ModelMetadata.from_dict(doc) == saved


@pytest.mark.parametrize("kind, error, message", [
    ("missing", FileNotFoundError, r"model file '.*nothing.safetensors' does not exist"),
    ("pickle", ValueError, r"looks like a PyTorch pickle"),
    ("text", ValueError, r"is not a safetensors model file"),
])
def test_other_files_are_named(tmp_path, kind, error, message):
    path = tmp_path / ("nothing.safetensors" if kind == "missing" else "other.safetensors")
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif kind == "text":
        path.write_text("not a model at all")
    with pytest.raises(error, match=message):
        read_model_metadata(path)


def test_front_end_readers_import_without_torch(model_path, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,loss,patches_per_s,val_dice,elapsed_s\n1,0.9,3,,1\n2,0.7,3,0.5,2\n3,nan,3,,3\n4")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(model_path), str(log)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["modalities"] == ["T1", "FLAIR"] and out["labels"] == [lab.to_dict() for lab in LABELS]
    assert out["losses"][0] == "ace" and len(out["losses"]) == 8
    assert out["loss"] == [[1, 2], [0.9, 0.7]]  # no finite loss in row 3; row 4 is cut short
    assert out["torch"] == []
