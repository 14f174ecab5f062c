import nibabel as nib
import numpy as np
import pytest
from factory import oblique_direction, subject

from ACELib.inference import CaseInput, create_model, load_model, predict_case, read_model_file, sha256_of
from ACELib.inference.model_file import METADATA_KEY
from ACELib.io.image import Geometry, write_image
from ACELib.io.safetensors import load_safetensors, save_safetensors
from ACELib.labels import JointLabel

LABELS = (JointLabel("background", 0, (0, 0, 0)), JointLabel("CSF", 1, (70, 130, 180)),
          JointLabel("GM", 2, (220, 180, 140)), JointLabel("WM", 3, (245, 245, 245)),
          JointLabel("WMH", 7, (255, 50, 50)))


@pytest.fixture
def model():
    return create_model(LABELS, ("T1", "FLAIR"), base_channels=4, depth=2, seed=3)


@pytest.fixture
def case(tmp_path):
    _, image = subject((11, 14, 13), seed=1)
    geom = Geometry((13, 14, 11), (1.1, 0.9, 2.5), (12.0, -30.0, 4.0), oblique_direction())
    paths = []
    for c, name in enumerate(("t1", "flair")):
        paths.append(tmp_path / f"{name}.nii.gz")
        write_image(paths[-1], image[c], geom)
    return CaseInput("c", tuple(paths), ("T1", "FLAIR")), geom


def test_save_load_round_trip_predicts_the_same(tmp_path, model, case):
    model.save(tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors", device="cpu")
    assert again.labels == LABELS and again.modalities == ("T1", "FLAIR")
    image = np.random.default_rng(0).normal(size=(2, 9, 10, 11)).astype(np.float32)
    a = model.predict(image, window=(8, 8, 8), return_probabilities=True)
    b = again.predict(image, window=(8, 8, 8), return_probabilities=True)
    assert np.array_equal(a.labels, b.labels)
    assert set(np.unique(a.labels)) <= {0, 1, 2, 3, 7}
    np.testing.assert_allclose(a.probabilities.sum(0), 1.0, atol=1e-5)
    assert a.probabilities.shape == (5, 9, 10, 11)


def test_model_file_is_plain_safetensors_with_json_metadata(tmp_path, model):
    model.save(tmp_path / "m.safetensors")
    tensors, meta = load_safetensors(tmp_path / "m.safetensors")
    assert METADATA_KEY in meta and '"modalities": [\n  "T1",\n  "FLAIR"\n ]' in meta[METADATA_KEY]
    assert all(k.startswith("member0/") for k in tensors)


def test_checksum_and_corruption_errors(tmp_path, model):
    path = tmp_path / "m.safetensors"
    model.save(path)
    assert load_model(path, expected_sha256=sha256_of(path)).modalities == ("T1", "FLAIR")
    with pytest.raises(ValueError, match="has SHA-256 .* expected 00"):
        load_model(path, expected_sha256="00" * 32)
    tensors, meta = load_safetensors(path)
    tensors.pop(next(iter(tensors)))
    save_safetensors(tmp_path / "broken.safetensors", tensors, meta)
    with pytest.raises(ValueError, match=r"the weights do not fit the network description: tensor 'member0/.*' is missing"):
        read_model_file(tmp_path / "broken.safetensors")
    save_safetensors(tmp_path / "plain.safetensors", tensors)
    with pytest.raises(ValueError, match="without ACE Segmentation metadata"):
        read_model_file(tmp_path / "plain.safetensors")


def test_wrong_modalities_are_named(model, case):
    with pytest.raises(ValueError, match=r"C = 2 channels \['T1', 'FLAIR'\], got shape \(1, 4, 4, 4\)"):
        model.predict(np.zeros((1, 4, 4, 4), np.float32))
    inp, _ = case
    t1_only = CaseInput("c", inp.image_paths[:1], ("T1",))
    with pytest.raises(ValueError, match=r"needs modalities \['T1', 'FLAIR'\] .* \(missing \['FLAIR'\]\)"):
        predict_case(model, t1_only, "out.nii.gz")


def test_output_has_exactly_the_input_geometry(tmp_path, model, case):
    inp, geom = case
    out = predict_case(model, inp, tmp_path / "seg.nii.gz", probabilities=True, window=(8, 8, 8))
    seg, t1 = nib.load(out), nib.load(inp.image_paths[0])
    assert seg.shape == t1.shape
    np.testing.assert_allclose(seg.affine, t1.affine, atol=1e-5)
    assert (tmp_path / "seg_prob_WMH.nii.gz").exists()
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        predict_case(model, inp, out)
    # channels given in another order are matched by name
    swapped = CaseInput("c", inp.image_paths[::-1], ("FLAIR", "T1"))
    predict_case(model, swapped, tmp_path / "seg2.nii.gz", window=(8, 8, 8))
    assert np.array_equal(nib.load(tmp_path / "seg2.nii.gz").get_fdata(), seg.get_fdata())
