"""Damaged image files are refused with the file named, never read as if whole."""

import gzip
import time

import nibabel as nib
import numpy as np
import pytest

from ACELib.io.image import Geometry, read_channels, read_image, write_image

GEOM = Geometry((14, 12, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def _image(tmp_path, suffix, **values):
    arr = np.random.default_rng(0).random(GEOM.shape).astype(np.float32) + 1
    for where, value in values.items():
        arr.flat[int(where[1:])] = value
    path = tmp_path / f"img{suffix}"
    write_image(path, arr, GEOM)
    return path


def _raw_nifti(path, compressed):
    """The uncompressed bytes of a NIfTI file."""
    data = path.read_bytes()
    return gzip.decompress(data) if compressed else data


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("keep", ["half", "header_only", "one_voxel_short"])
def test_short_nifti_data_is_refused(tmp_path, suffix, keep):
    path = _image(tmp_path, suffix)
    compressed = suffix == ".nii.gz"
    raw = _raw_nifti(path, compressed)
    cut = {"half": len(raw) // 2, "header_only": 352, "one_voxel_short": len(raw) - 4}[keep]
    if compressed and keep == "half":  # a gzip stream cut in half, as a broken download leaves it
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(gzip.compress(raw[:cut]) if compressed else raw[:cut])
    with pytest.raises(ValueError, match=r"img\.nii(\.gz)?': truncated or damaged: the header declares "
                                         r"\(14, 12, 10\) voxels \(6720 bytes"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".nhdr"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_refused(tmp_path, suffix, value):
    path = _image(tmp_path, suffix, v17=value)
    with pytest.raises(ValueError, match=r"img\.\w+(\.gz)?': 1 of 1680 voxels are NaN or Inf"):
        read_image(path)
    with pytest.raises(ValueError, match="voxels are NaN or Inf"):
        read_channels([path])


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("compress", [False, True])
def test_short_single_file_data_is_refused(tmp_path, suffix, compress):
    path = tmp_path / f"img{suffix}"
    write_image(path, np.random.default_rng(0).random(GEOM.shape).astype(np.float32), GEOM, compress=compress)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"img\{suffix}': truncated or damaged"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_header_claiming_huge_size_is_refused_before_allocating(tmp_path, suffix):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    img.header.set_data_shape((4000, 4000, 4000))  # 256 GB of float32 claimed by a file of a few bytes
    path = tmp_path / f"huge{suffix}"
    header = img.header.binaryblock + b"\0" * 4 + np.zeros(64, np.float32).tobytes()
    path.write_bytes(gzip.compress(header) if suffix.endswith(".gz") else header)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"huge\.nii(\.gz)?': truncated or damaged: the header declares "
                                         r"\(4000, 4000, 4000\) voxels"):
        read_image(path)
    assert time.perf_counter() - start < 1.0


def test_whole_files_still_read(tmp_path):
    for suffix in (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".nhdr"):
        arr, geom = read_image(_image(tmp_path, suffix))
        assert arr.shape == GEOM.shape and np.isfinite(arr).all()
