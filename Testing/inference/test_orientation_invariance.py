"""The same scan stored four ways (LPS, RAS, sagittal order, oblique header) segments to the same labels
in physical space, through ``predict_case`` with a tiny model; a model without an orientation (model
files written before orientations were recorded) segments the array as stored, and does not."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from factory import WMH_LABELS, oblique_direction, subject

from ACELib.data.preprocessing import Preprocessing
from ACELib.inference import CaseInput, create_model, predict_case

SPACING = (1.1, 0.9, 1.3)


def reference_images() -> tuple[sitk.Image, sitk.Image]:
    """T1 and FLAIR of one case, stored with the identity direction (``LPS``)."""
    _, image = subject((18, 21, 19), seed=4)
    out = []
    for channel in image:
        img = sitk.GetImageFromArray(channel)
        img.SetSpacing(SPACING)
        img.SetOrigin((-12.0, 20.0, 7.5))
        out.append(img)
    return out[0], out[1]


def obliquely(img: sitk.Image) -> sitk.Image:
    """The same voxels under a rotated header (physically: the head tilted by 20, -10 and 15 degrees)."""
    out = sitk.Image(img)
    rotation = np.asarray(oblique_direction()).reshape(3, 3)
    out.SetDirection(tuple(rotation.ravel()))
    out.SetOrigin(tuple(rotation @ np.asarray(img.GetOrigin())))
    return out


# storage name -> (how to store the reference, the grid its labels are compared on)
STORAGES = {
    "LPS": (lambda img: img, lambda img: img),
    "RAS": (lambda img: sitk.DICOMOrient(img, "RAS"), lambda img: img),
    "sagittal": (lambda img: sitk.DICOMOrient(img, "PIR"), lambda img: img),  # slices along left-right
    "oblique": (lambda img: sitk.DICOMOrient(obliquely(img), "ASL"), obliquely),
}


def segment(model, images, folder, name) -> sitk.Image:
    paths = []
    for img, modality in zip(images, ("T1", "FLAIR")):
        paths.append(folder / f"{name}_{modality}.nii.gz")
        sitk.WriteImage(img, str(paths[-1]))
    out = predict_case(model, CaseInput(name, tuple(paths), ("T1", "FLAIR")), folder / f"{name}_seg.nrrd")
    return sitk.ReadImage(str(out))


def agreement(labels: sitk.Image, reference: sitk.Image) -> float:
    """Fraction of the reference's voxels whose label the other storage gives at the same physical point."""
    moved = sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 255, labels.GetPixelID())
    return float((sitk.GetArrayFromImage(moved) == sitk.GetArrayFromImage(reference)).mean())


def agreements(tmp_path, prep: Preprocessing) -> dict[str, float]:
    model = create_model(WMH_LABELS, ("T1", "FLAIR"), base_channels=4, depth=2, seed=3, preprocessing=prep)
    ref_images = reference_images()
    ref_labels = segment(model, ref_images, tmp_path, "reference")
    assert len(np.unique(sitk.GetArrayFromImage(ref_labels))) >= 3  # the comparison is not trivially of one label
    out = {}
    for name, (store, compare_on) in STORAGES.items():
        labels = segment(model, [store(img) for img in ref_images], tmp_path, name)
        reference = compare_on(ref_labels)  # the reference labels, on the grid of the same physical scan
        out[name] = agreement(labels, reference)
    return out


@pytest.mark.parametrize("spacing", [None, (1.5, 1.5, 1.5)], ids=["native", "resampled"])
def test_four_storages_give_the_same_labels_in_physical_space(tmp_path, spacing):
    found = agreements(tmp_path, Preprocessing(spacing=spacing))
    assert found == {name: 1.0 for name in STORAGES}, found


def test_without_orientation_the_storage_changes_the_labels(tmp_path):
    found = agreements(tmp_path, Preprocessing(orientation=None))
    assert found["LPS"] == 1.0
    assert min(found["RAS"], found["sagittal"], found["oblique"]) < 0.999, found


def test_orientation_is_saved_in_the_model_file_and_old_files_keep_none(tmp_path):
    from ACELib.inference import load_model
    from ACELib.inference.model_file import ModelMetadata

    model = create_model(WMH_LABELS, ("T1", "FLAIR"), base_channels=4, depth=2)
    model.save(tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors").metadata.preprocessing.orientation == "LPS"
    assert '"orientation": "LPS"' in model.metadata.to_json()
    old = model.metadata.to_json().replace(',\n  "orientation": "LPS"', "")
    assert '"orientation"' not in old
    assert ModelMetadata.from_json(old).preprocessing.orientation is None
