"""The models bundled as ACELib package data (ACELib/models): checksums verified, and each segments a
phantom of its scenario (generated here, at 6 mm, from the same generator that made their training data)."""

import json

import numpy as np
import pytest

from ACELib.inference import load_model, sha256_of
from ACELib.io.safetensors import has_checksum
from ACELib.metrics import dice
from ACELib.models import MODELS_DIR as MODELS
from ACELib.models import bundled_models, find_model, read_catalogue, resolve_model

CATALOGUE = json.loads((MODELS / "catalogue.json").read_text())["models"]


def test_catalogue_lists_both_scenarios():
    assert {m["scenario"] for m in CATALOGUE} == {"wmh", "tumor"}
    for m in CATALOGUE:
        assert m["simulated_training_data"] is True and m["trained_by"].startswith(("ace benchmark", "ace train"))
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
    image = subject.stack(("T1",) if entry["modalities"] == ["any"] else model.modalities)  # one image: a T1
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


def test_every_catalogue_entry_is_read_with_its_file():
    models = bundled_models()
    assert [m.id for m in models] == [e["id"] for e in CATALOGUE]
    for m in models:
        assert m.path.is_file() and m.path.parent == MODELS and len(m.sha256) == 64
        assert m.modalities and m.labels[0] == "background" and m.dice
    assert sorted(p.name for p in MODELS.glob("*.safetensors")) == sorted(m.path.name for m in models)


@pytest.mark.parametrize("name", ["wmh-t1-flair", "WMH-T1-FLAIR", "ace_wmh_t1_flair", "ace_wmh_t1_flair.safetensors",
                                  "Tissue + WMH (T1, FLAIR) - trained on phantoms"])
def test_models_are_found_by_id_file_or_title(name):
    assert find_model(name).path.name == "ace_wmh_t1_flair.safetensors"
    path, sha = resolve_model(name)
    assert path == MODELS / "ace_wmh_t1_flair.safetensors" and sha == CATALOGUE[0]["sha256"]


def test_a_path_wins_and_carries_no_checksum(tmp_path):
    (tmp_path / "wmh-t1-flair").write_bytes(b"x")
    assert resolve_model(tmp_path / "wmh-t1-flair") == (tmp_path / "wmh-t1-flair", None)
    with pytest.raises(FileNotFoundError, match="model file .*missing.safetensors' does not exist"):
        resolve_model(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=r"'nope' is neither a model file nor a bundled model: .*'wmh-t1-flair'"):
        resolve_model("nope")


@pytest.mark.parametrize(("text", "reason"), [
    ('{"models": [{"file": "a.safetensors", "sha256": "ab"}]}', r"entry 0 lacks \['name'\]"),
    ('{"models": [{"name": "a", "file": "a.safetensors"}]}', r"entry 0 lacks \['sha256'\]"),
    ('{"model": []}', "'models'"),
    ("not json", "Expecting value"),
])
def test_malformed_catalogues_are_named(tmp_path, text, reason):
    (tmp_path / "catalogue.json").write_text(text)
    with pytest.raises(ValueError, match=f"model catalogue .*catalogue.json' is malformed: .*{reason}"):
        read_catalogue(tmp_path)


def test_dropping_in_a_model_is_a_file_and_an_entry(tmp_path):
    (tmp_path / "mine.safetensors").write_bytes(b"weights")
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": [
        {"name": "My model", "file": "mine.safetensors", "sha256": sha256_of(tmp_path / "mine.safetensors").upper()}]}))
    (m,) = read_catalogue(tmp_path)
    assert (m.id, m.size_bytes, m.sha256) == ("mine", 7, sha256_of(tmp_path / "mine.safetensors"))
    assert find_model("mine", [m]) == m


def test_predict_by_name_always_verifies_the_checksum(tmp_path, monkeypatch, capsys):
    from factory import subject

    import ACELib.models
    from ACELib.cli.main import main
    from ACELib.io.image import Geometry, write_image

    entry = CATALOGUE[1]  # tumour model: one input, T1
    data = bytearray((MODELS / entry["file"]).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / entry["file"]).write_bytes(bytes(data))
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setattr(ACELib.models, "MODELS_DIR", tmp_path)
    _, image = subject((8, 9, 10))
    write_image(tmp_path / "t1.nii.gz", image[0], Geometry((10, 9, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)))
    code = main(["predict", "--model", entry["id"], "--images", str(tmp_path / "t1.nii.gz"),
                 "--out", str(tmp_path / "seg.nii.gz")])
    assert code == 2 and "the file is corrupt or not the one that was published" in capsys.readouterr().err
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize("rule, says", [("any", "any non-empty subset"), ([["T1"], ["T1", "FLAIR"]], "T1+FLAIR"),
                                        ("all", None), (None, None)])
def test_ace_models_says_which_modalities_a_model_needs(tmp_path, rule, says):
    from ACELib.cli.cmd_models import describe

    (tmp_path / "m.safetensors").write_bytes(b"weights")
    entry = {"name": "M", "file": "m.safetensors", "sha256": sha256_of(tmp_path / "m.safetensors"),
             "modalities": ["T1", "FLAIR"], **({} if rule is None else {"modality_subsets": rule})}
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": [entry]}))
    (m,) = read_catalogue(tmp_path)
    line = describe(m)[1]
    assert line.startswith("  modalities  T1, FLAIR")
    assert (says in line) if says else line == "  modalities  T1, FLAIR"


def test_ace_models_shows_an_any_contrast_models_dice_per_contrast(tmp_path):
    from ACELib.cli.cmd_models import describe

    (tmp_path / "m.safetensors").write_bytes(b"weights")
    per = {"test": {"T1": {"GM": 0.8}, "T2": {"GM": 0.7}}, "shifted": {"T2": {"GM": 0.6}}}
    entry = {"name": "M", "file": "m.safetensors", "sha256": sha256_of(tmp_path / "m.safetensors"),
             "modalities": ["any"], "contrast_test_dice": per}
    (tmp_path / "catalogue.json").write_text(json.dumps({"models": [entry]}))
    lines = describe(read_catalogue(tmp_path)[0])
    assert "one image of any contrast" in lines[1]
    assert "  Dice        T2 image alone: GM 0.700 (joint test set)" in lines
    assert "  Dice        T2 image alone: GM 0.600 (shifted-scanner test set)" in lines


def test_the_any_contrast_tumour_model_takes_one_named_modality():
    pytest.importorskip("nilearn")
    from ACELib.phantoms.scenarios import scenario_subject

    entry = find_model("tumor-any")
    model = load_model(entry.path, device="cpu", expected_sha256=entry.sha256)
    assert model.metadata.modality_subsets == "any" and len(model.metadata.label_sources) == 2
    subject = scenario_subject("tumor", "test", 0, spacing=6.0, seed=11)
    for names in (("T1c",), ("FLAIR", "T1")):
        pred = model.predict(subject.stack(names), subject.geometry.spacing, modalities=names).labels
        assert pred.shape == subject.joint.shape
        assert set(np.unique(pred)) <= {lab.value for lab in model.labels}
