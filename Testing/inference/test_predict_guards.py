"""`ace predict` refuses damaged, non-finite and blank inputs and never writes over its inputs."""

import numpy as np
import pytest
from factory import subject

from ACELib.cli.main import main
from ACELib.inference import create_model
from ACELib.io.image import Geometry, read_image, write_image
from ACELib.labels import JointLabel

LABELS = (JointLabel("background", 0, (0, 0, 0)), JointLabel("GM", 2, (220, 180, 140)),
          JointLabel("WM", 3, (245, 245, 245)))
GEOM = Geometry((13, 14, 11), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


@pytest.fixture
def files(tmp_path):
    model = tmp_path / "m.safetensors"
    create_model(LABELS, ("T1", "FLAIR"), base_channels=4, depth=2, seed=3).save(model)
    _, image = subject((11, 14, 13), seed=1)
    paths = []
    for c, name in enumerate(("t1", "flair")):
        paths.append(tmp_path / f"{name}.nii.gz")
        write_image(paths[-1], image[c], GEOM)
    return model, paths


def _predict(model, paths, out, *extra):
    return main(["predict", "--model", str(model), "--images", *map(str, paths), "--out", str(out),
                 "--window", "8", "8", "8", "--device", "cpu", *extra])


@pytest.mark.parametrize("damage, message", [
    ("nan", r"flair.nii.gz': 1 of 2002 voxels are NaN or Inf"),
    ("inf", r"flair.nii.gz': 1 of 2002 voxels are NaN or Inf"),
    ("truncated", r"flair.nii.gz': truncated or damaged"),
    ("blank", r"flair.nii.gz': blank image \(every voxel is 0\); nothing to segment"),
    ("constant", r"flair.nii.gz': blank image \(every voxel is 5\); nothing to segment"),
])
def test_bad_input_is_refused_and_nothing_written(tmp_path, files, capsys, damage, message):
    model, paths = files
    arr, geom = read_image(paths[1])
    if damage in ("nan", "inf"):
        arr[3, 4, 5] = np.nan if damage == "nan" else np.inf
        write_image(paths[1], arr, geom)
    elif damage == "truncated":
        data = paths[1].read_bytes()
        paths[1].write_bytes(data[: len(data) // 2])
    else:
        write_image(paths[1], np.full_like(arr, 0.0 if damage == "blank" else 5.0), geom)
    out = tmp_path / "seg.nii.gz"
    assert _predict(model, paths, out) == 2
    err = capsys.readouterr().err
    assert __import__("re").search(message, err) and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize("target", ["t1", "flair", "model"])
def test_output_equal_to_an_input_is_refused_with_overwrite(files, capsys, target):
    model, paths = files
    out = {"t1": paths[0], "flair": paths[1], "model": model}[target]
    before = out.read_bytes()
    assert _predict(model, paths, out, "--overwrite") == 2
    assert "it would be destroyed" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_probability_map_over_an_input_is_refused(tmp_path, files, capsys):
    model, paths = files
    victim = tmp_path / "seg_prob_GM.nii.gz"
    victim.write_bytes(paths[0].read_bytes())
    assert _predict(model, [victim, paths[1]], tmp_path / "seg.nii.gz", "--probabilities") == 2
    assert "seg_prob_GM.nii.gz' is the input" in capsys.readouterr().err
