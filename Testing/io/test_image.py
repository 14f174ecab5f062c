import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from factory import oblique_direction

from ACELib.io.atomic import atomic_path, atomic_write_text
from ACELib.io.image import Geometry, read_channels, read_image, resample_to_spacing, write_image
from ACELib.io.safetensors import SafetensorsError, load_safetensors, save_safetensors

OBLIQUE = Geometry((7, 6, 5), (1.5, 1.2, 2.0), (10.0, -20.0, 5.0), oblique_direction())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_array_and_geometry(tmp_path, suffix):
    arr = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    path = tmp_path / f"img{suffix}"
    write_image(path, arr, OBLIQUE)
    back, geom = read_image(path)
    assert np.array_equal(back, arr)
    assert geom.differences(OBLIQUE, tol=1e-5) == []


def test_nibabel_sees_the_same_physical_grid(tmp_path):
    """The ITK (LPS) geometry written is the RAS affine nibabel reads."""
    path = tmp_path / "img.nii.gz"
    write_image(path, np.zeros(OBLIQUE.shape, np.float32), OBLIQUE)
    affine = nib.load(path).affine
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(affine, lps_to_ras @ OBLIQUE.index_to_physical(), atol=1e-4)
    assert nib.load(path).shape == OBLIQUE.size


def test_read_channels_rejects_other_geometry(tmp_path):
    write_image(tmp_path / "a.nii.gz", np.zeros(OBLIQUE.shape, np.float32), OBLIQUE)
    moved = Geometry(OBLIQUE.size, OBLIQUE.spacing, (0.0, 0.0, 0.0), OBLIQUE.direction)
    write_image(tmp_path / "b.nii.gz", np.zeros(OBLIQUE.shape, np.float32), moved)
    with pytest.raises(ValueError, match=r"b.nii.gz' does not share the geometry of .*a.nii.gz'.*origin"):
        read_channels([tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"])
    image, geom = read_channels([tmp_path / "a.nii.gz"] * 2)
    assert image.shape == (2, 5, 6, 7)


def test_bad_images(tmp_path):
    sitk.WriteImage(sitk.Image([4, 5], sitk.sitkFloat32), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(ValueError, match=r"flat.nii.gz': expected a 3D image, got 2D"):
        read_image(tmp_path / "flat.nii.gz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz")
    with pytest.raises(ValueError, match="unsupported image file type"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 2)), Geometry((2, 2, 2), (1, 1, 1), (0, 0, 0)))
    with pytest.raises(ValueError, match=r"does not fit geometry of shape \(5, 6, 7\)"):
        write_image(tmp_path / "x.nii.gz", np.zeros((2, 2, 2)), OBLIQUE)


def test_resample_to_spacing_keeps_extent():
    geom = Geometry((8, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    arr = np.zeros((8, 8, 8), np.float32)
    out, g = resample_to_spacing(arr, geom, (2.0, 2.0, 2.0), is_label=False)
    assert out.shape == (4, 4, 4) and g.spacing == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="spacing must be three positive numbers"):
        resample_to_spacing(arr, geom, (0.0, 1.0, 1.0), is_label=False)


def test_atomic_write_gives_umask_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "good")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_safetensors_round_trip(tmp_path):
    tensors = {"w": torch.randn(3, 4), "n": torch.tensor(7), "b": torch.tensor([True, False]),
               "h": torch.randn(2, dtype=torch.bfloat16), "e": torch.zeros(0, 3)}
    save_safetensors(tmp_path / "x.safetensors", tensors, {"k": "v"})
    back, meta = load_safetensors(tmp_path / "x.safetensors")
    assert meta == {"k": "v"}
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    raw = (tmp_path / "x.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(raw[:8] + b"x" + raw[9:])
    with pytest.raises(SafetensorsError, match="header is not valid JSON"):
        load_safetensors(tmp_path / "bad.safetensors")
    (tmp_path / "short.safetensors").write_bytes(raw[:40])
    with pytest.raises(SafetensorsError, match="does not fit"):
        load_safetensors(tmp_path / "short.safetensors")
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save_safetensors(tmp_path / "y.safetensors", tensors, {"k": 1})
