"""The MNI152 template: RAS -> LPS conversion, grid, fractions, orientation, missing nilearn."""

from __future__ import annotations

import sys

import nibabel as nib
import numpy as np
import pytest

from ACELib.io.image import read_image
from ACELib.phantoms import TISSUES, load_template, nifti_to_itk
from ACELib.phantoms import template as template_module


def _rotation(ax, ay, az):
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


AFFINES = {
    "identity": np.eye(4),
    "mni_like": np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]]),
    "flipped_anisotropic": np.array([[-2.0, 0, 0, 90], [0, 1.5, 0, -126], [0, 0, -3.0, 72], [0, 0, 0, 1]]),
    "oblique": np.block([[_rotation(20, -10, 15) @ np.diag([1.2, 0.9, 2.0]), np.array([[5.0], [-7.0], [3.0]])],
                         [np.zeros((1, 3)), np.ones((1, 1))]]),
}


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_nifti_to_itk_agrees_with_simpleitk_reading_the_file(tmp_path, name):
    rng = np.random.default_rng(0)
    data = rng.random((7, 9, 11)).astype(np.float32)  # (I, J, K), odd sizes
    img = nib.Nifti1Image(data, AFFINES[name])
    img.set_qform(AFFINES[name], code=1)
    img.set_sform(AFFINES[name], code=1)
    path = tmp_path / f"{name}.nii.gz"
    nib.save(img, path)
    ref, ref_geom = read_image(path)
    arr, geom = nifti_to_itk(data, AFFINES[name])
    assert arr.shape == (11, 9, 7)
    np.testing.assert_array_equal(arr, ref)
    assert geom.differences(ref_geom) == []


@pytest.mark.parametrize(("array", "affine", "match"), [
    (np.zeros((3, 4)), np.eye(4), "array must be 3D"),
    (np.zeros((3, 4, 5)), np.eye(3), "affine must be 4 x 4"),
    (np.zeros((3, 4, 5)), np.diag([1.0, 0.0, 1.0, 1.0]), "zero column"),
])
def test_nifti_to_itk_rejects_bad_input(array, affine, match):
    with pytest.raises(ValueError, match=match):
        nifti_to_itk(array, affine)


def test_template_fractions_are_a_partition(template):
    f = template.fractions
    assert f.shape == (len(TISSUES), *template.shape) and f.dtype == np.float32
    assert f.min() >= 0.0
    np.testing.assert_allclose(f.sum(axis=0), 1.0, atol=1e-5)
    assert not f.flags.writeable
    assert template.geometry.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert template.geometry.spacing == (8.0, 8.0, 8.0)
    assert all(s % 8 == 0 for s in template.geometry.size)


def test_template_tissue_volumes_are_brain_like(template):
    ml = np.bincount(template.tissue_labels().ravel(), minlength=4) * template.spacing**3 / 1000.0
    assert 800 < ml[2] < 1500  # GM
    assert 400 < ml[3] < 800  # WM
    assert ml[1] > 0  # CSF
    vent_ml = float(template.ventricles.sum()) * template.spacing**3 / 1000.0
    assert 10 < vent_ml < 40


def test_template_orientation_is_lps(template):
    """Ventricles sit about 14 mm posterior (LPS +y) and 13 mm superior of the MNI origin; the
    cerebellum (the lowest brain tissue) is posterior."""
    geom = template.geometry
    idx = np.argwhere(template.ventricles > 0.5)[:, ::-1]  # (x, y, z)
    centroid = np.asarray(geom.origin) + np.asarray(geom.spacing) * idx.mean(axis=0)
    np.testing.assert_allclose(centroid, [0.0, 14.0, 13.0], atol=10.0)
    brain = np.argwhere(template.fractions[0] < 0.5)[:, ::-1]
    z_mm = geom.origin[2] + geom.spacing[2] * brain[:, 2]
    y_mm = geom.origin[1] + geom.spacing[1] * brain[:, 1]
    assert y_mm[z_mm < -30].mean() > 20.0


def test_template_is_cached(template):
    assert load_template(8.0) is template


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"spacing": 0.1}, "spacing must be a number of mm in 0.5..16"),
    ({"spacing": "3"}, "spacing must be a number of mm"),
    ({"spacing": 3.0, "margin_mm": -1.0}, "margin_mm must be >= 0"),
    ({"spacing": 3.0, "multiple": 0}, "multiple must be a positive integer"),
])
def test_load_template_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_template(**kwargs)


def test_missing_nilearn_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)
    with pytest.raises(ImportError, match=r"pip install ace-segmentation\[bench\]"):
        template_module._nilearn_datasets()
