"""The models bundled under Resources/Models: checksums verified, and each segments a phantom of its
scenario (generated here, at 6 mm, from the same generator that made their training data)."""

import json
from pathlib import Path

import numpy as np
import pytest

from ACELib.inference import load_model, sha256_of
from ACELib.io.safetensors import has_checksum
from ACELib.metrics import dice

MODELS = Path(__file__).resolve().parents[2] / "Resources" / "Models"
CATALOGUE = json.loads((MODELS / "catalogue.json").read_text())["models"]


def test_catalogue_lists_both_scenarios():
    assert {m["scenario"] for m in CATALOGUE} == {"wmh", "tumor"}
    for m in CATALOGUE:
        assert m["simulated_training_data"] is True and m["trained_by"].startswith("ace benchmark")
        assert (MODELS / m["file"]).stat().st_size < 5 * 2 ** 20  # a few MB at most
        assert has_checksum(MODELS / m["file"])  # every load verifies the weights


@pytest.mark.parametrize("entry", CATALOGUE, ids=[m["scenario"] for m in CATALOGUE])
def test_bundled_model_loads_and_segments_a_phantom(entry):
    pytest.importorskip("nilearn")
    from ACELib.phantoms.scenarios import scenario_subject

    path = MODELS / entry["file"]
    assert sha256_of(path) == entry["sha256"]
    model = load_model(path, device="cpu", expected_sha256=entry["sha256"])
    assert list(model.modalities) == entry["modalities"]
    subject = scenario_subject(entry["scenario"], "test", 0, spacing=6.0, seed=11)
    image = subject.stack(model.modalities)
    pred = model.predict(image, subject.geometry.spacing).labels
    assert pred.shape == subject.joint.shape
    names = [lab.name for lab in model.labels]
    gm, wm = names.index("GM"), names.index("WM")
    # a phantom the model never saw, at another resolution: tissue must still be found
    assert dice(pred == model.labels[wm].value, subject.joint == wm) > 0.5
    assert dice(pred == model.labels[gm].value, subject.joint == gm) > 0.4
    assert set(np.unique(pred)) <= {lab.value for lab in model.labels}


def test_tampered_model_is_refused(tmp_path):
    entry = CATALOGUE[0]
    data = bytearray((MODELS / entry["file"]).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="the file is corrupt or not the one that was published"):
        load_model(tmp_path / "m.safetensors", expected_sha256=entry["sha256"])
