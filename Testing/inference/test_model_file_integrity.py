"""Model files: tensor checksum verified at every load, metadata checked against a schema before building."""

import json
import logging
import pickle
import struct
import time

import numpy as np
import pytest
import torch

from ACELib.cli.main import main
from ACELib.inference import create_model, load_model, read_model_file, resave_with_checksum
from ACELib.inference.model_file import METADATA_KEY
from ACELib.io.safetensors import CHECKSUM_KEY, has_checksum, load_safetensors, read_safetensors_header
from ACELib.labels import JointLabel

LABELS = (JointLabel("background", 0, (0, 0, 0)), JointLabel("GM", 2, (220, 180, 140)),
          JointLabel("WM", 3, (245, 245, 245)))


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.safetensors"
    create_model(LABELS, ("T1", "FLAIR"), base_channels=4, depth=2, seed=3).save(path)
    return path


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0 - 1e-9])
def test_one_flipped_weight_byte_is_refused_without_sha256(model_path, where):
    assert has_checksum(model_path)
    _, _, start = read_safetensors_header(model_path)
    data = bytearray(model_path.read_bytes())
    i = start + int(where * (len(data) - start))
    data[i] ^= 0x01
    model_path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m.safetensors': the tensor data does not match its checksum: the file "
                                         r"is damaged"):
        load_model(model_path)


def _rewrite_metadata(path, change):
    """Rewrite the model metadata (the checksum of the tensors still holds: only the header changes)."""
    n = struct.unpack("<Q", path.read_bytes()[:8])[0]
    header = json.loads(path.read_bytes()[8:8 + n])
    meta = json.loads(header["__metadata__"][METADATA_KEY])
    change(meta)
    header["__metadata__"][METADATA_KEY] = json.dumps(meta)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + path.read_bytes()[8 + n:])


def _net(meta):
    return meta["members"][0]["network"]


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("members"), r"missing key 'members'"),
    (lambda m: m.update(labels="GM"), r"'labels' must be a list of at least 2 labels"),
    (lambda m: m["labels"][1].update(value=300), r"labels\[1\] \('GM'\): value must be in 0..255, got 300"),
    (lambda m: m["labels"][1].update(value="2"), r"labels\[1\] must be \{name: str, value: int"),
    (lambda m: m["labels"][2].update(color="white"), r"labels\[2\] \('WM'\): color must be '#rrggbb'"),
    (lambda m: m["members"][0].update(modalities=["T1"]), r"network in_channels 2 != 1 modalities \['T1'\]"),
    (lambda m: m["members"][0].update(classes=[0, 1, 7]), r"'classes' must list joint label indices 0..2"),
    (lambda m: _net(m).update(base_channels=4096), r"network base_channels must be an integer in 1..512, got 4096"),
    (lambda m: _net(m).update(depth=40), r"network depth must be an integer in 1..8, got 40"),
    (lambda m: _net(m).update(in_channels=2.5), r"network in_channels must be an integer in 1..16, got 2.5"),
    (lambda m: _net(m).update(base_channels=8), r"the weights do not fit the network description: tensor "
                                                r"'member0/.*' has shape"),
])
def test_metadata_schema_is_checked_before_building(model_path, change, message):
    _rewrite_metadata(model_path, change)
    with pytest.raises(ValueError, match=message):
        read_model_file(model_path)


def test_oversized_network_is_refused_in_under_a_second(model_path):
    _rewrite_metadata(model_path, lambda m: _net(m).update(base_channels=512, depth=8))  # within the limits
    start = time.perf_counter()
    with pytest.raises(ValueError, match="the weights do not fit the network description"):
        read_model_file(model_path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("kind", ["pickle", "torch_save", "text"])
def test_a_file_of_another_kind_is_named(tmp_path, capsys, kind):
    path = tmp_path / "model.pt"
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif kind == "torch_save":
        torch.save({"w": torch.zeros(3)}, path)
    else:
        path.write_text("hello, I am not a model at all")
    expected = "looks like a PyTorch pickle" if kind != "text" else "is not a safetensors model file"
    with pytest.raises(ValueError, match=expected):
        read_model_file(path)
    assert main(["predict", "--model", str(path), "--images", str(path), "--out", str(tmp_path / "s.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "is not a safetensors model file" in err and err.count("\n") == 1


def test_old_file_without_checksum_loads_with_a_warning(model_path, caplog):
    tensors, metadata = load_safetensors(model_path)
    n = struct.unpack("<Q", model_path.read_bytes()[:8])[0]
    header = json.loads(model_path.read_bytes()[8:8 + n])
    del header["__metadata__"][CHECKSUM_KEY]
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    model_path.write_bytes(struct.pack("<Q", len(head)) + head + model_path.read_bytes()[8 + n:])
    with caplog.at_level(logging.WARNING):
        old = load_model(model_path)
    assert "carries no checksum" in caplog.text
    assert resave_with_checksum(model_path) and has_checksum(model_path)
    again = load_model(model_path)
    image = np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype(np.float32)
    assert np.array_equal(old.predict(image).labels, again.predict(image).labels)
