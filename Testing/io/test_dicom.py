"""DICOM series input: series listed with UID and description, chosen by UID, read with the geometry they
were written with; a DICOM series segments to the same labels as the same volume stored as NIfTI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import write_dicom_series
from factory import WMH_LABELS, subject

from ACELib.inference import create_model, predict_case
from ACELib.inference.predict import case_from_paths, dicom_cases
from ACELib.io.dicom import choose_series, dicom_series, is_dicom_folder, read_dicom, read_inputs
from ACELib.io.image import Geometry, read_image, write_image

GEOMETRY = Geometry((13, 12, 10), (1.0, 1.25, 2.0), (40.0, 30.0, -10.0), (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))  # RAS


@pytest.fixture
def study(tmp_path) -> tuple[Path, np.ndarray, dict[str, str]]:
    """A folder with a T1 and a FLAIR series, their int16 volumes ``(2, D, H, W)`` and their UIDs."""
    _, image = subject(GEOMETRY.shape, seed=2)
    volume = np.round(image * 1000).astype(np.int16)
    uids = {"T1": "1.2.826.0.1.3680043.2.1125.11", "FLAIR": "1.2.826.0.1.3680043.2.1125.12"}
    for (name, uid), channel, number in zip(uids.items(), volume, (3, 5)):
        write_dicom_series(tmp_path / "study", channel, GEOMETRY, uid, f"ax {name}", number)
    return tmp_path / "study", volume, uids


def test_series_are_listed_and_read_with_their_geometry(study):
    folder, volume, uids = study
    assert is_dicom_folder(folder) and not is_dicom_folder(folder.parent)
    series = dicom_series(folder)
    assert [(s.uid, s.description, s.modality, len(s.files)) for s in series] == [
        (uids["T1"], "ax T1", "MR", GEOMETRY.shape[0]), (uids["FLAIR"], "ax FLAIR", "MR", GEOMETRY.shape[0])]
    array, geom = read_dicom(folder, uids["FLAIR"])
    assert np.array_equal(array, volume[1]) and geom.differences(GEOMETRY) == []


def test_several_series_are_named_and_one_is_asked_for(study):
    folder, _, uids = study
    with pytest.raises(ValueError, match=rf"holds 2 DICOM series; choose one by UID with series_uid \(--series UID\):"
                                         rf"\n  {uids['T1']} \(MR #3 ax T1, 10 files\)\n  {uids['FLAIR']}"):
        choose_series(folder)
    with pytest.raises(ValueError, match=r"has no DICOM series '9.9'; it holds:\n  "):
        choose_series(folder, "9.9")
    with pytest.raises(ValueError, match="is a folder without DICOM series"):
        choose_series(folder.parent)
    with pytest.raises(ValueError, match=r"holds 2 DICOM series for modalities \['T1', 'FLAIR'\]: name one per "
                                         r"modality, in order, with series \(--series UID ...\)"):
        dicom_cases(folder, ("T1", "FLAIR"))


def test_dicom_and_nifti_segment_to_the_same_labels(study, tmp_path):
    folder, volume, uids = study
    model = create_model(WMH_LABELS, ("T1", "FLAIR"), base_channels=4, depth=2, seed=3)
    nifti = []
    for name, channel in zip(("T1", "FLAIR"), volume):
        nifti.append(tmp_path / f"{name}.nii.gz")
        write_image(nifti[-1], channel.astype(np.float32), GEOMETRY)
    from_nifti = predict_case(model, case_from_paths(nifti, ("T1", "FLAIR")), tmp_path / "nifti_seg.nii.gz")
    case = case_from_paths([folder], ("T1", "FLAIR"), [uids["T1"], uids["FLAIR"]])
    assert case.image_paths == (folder, folder) and case.series == (uids["T1"], uids["FLAIR"])
    from_dicom = predict_case(model, case, tmp_path / "dicom_seg.nii.gz")
    a, ga = read_image(from_nifti, dtype=np.int64)
    b, gb = read_image(from_dicom, dtype=np.int64)
    assert len(np.unique(a)) >= 3 and np.array_equal(a, b) and ga.differences(gb) == []
    (only,) = dicom_cases(folder, ("T1", "FLAIR"), [uids["T1"], uids["FLAIR"]])
    assert only == case


def test_mixed_dicom_and_file_inputs(study, tmp_path):
    folder, volume, uids = study
    write_image(tmp_path / "flair.nrrd", volume[1].astype(np.float32), GEOMETRY)
    case = case_from_paths([folder, tmp_path / "flair.nrrd"], ("T1", "FLAIR"), [uids["T1"]])
    image, geom = read_inputs(case.image_paths, case.series)
    assert np.array_equal(image, volume.astype(np.float32)) and geom.differences(GEOMETRY) == []
    with pytest.raises(ValueError, match="2 series UIDs for 1 DICOM folders among the inputs"):
        case_from_paths([folder, tmp_path / "flair.nrrd"], ("T1", "FLAIR"), ["a", "b"])


def test_a_folder_of_single_series_case_folders(tmp_path):
    _, image = subject(GEOMETRY.shape, seed=5)
    for i in range(2):
        write_dicom_series(tmp_path / "cases" / f"sub-{i}", np.round(image[0] * 1000), GEOMETRY, f"1.2.3.{i}", "t1", 1)
    (tmp_path / "cases" / "notes").mkdir()
    cases = dicom_cases(tmp_path / "cases", ("T1",))
    assert [c.name for c in cases] == ["sub-0", "sub-1"] and all(c.series == () for c in cases)
    with pytest.raises(ValueError, match="holds 2 case folders: segment them one at a time"):
        dicom_cases(tmp_path / "cases", ("T1",), ["1.2.3.0"])


def test_probing_a_folder_without_dicom_prints_nothing(tmp_path, capfd):
    """`--input` folders of NIfTI files are probed for DICOM first: ITK's 'No Series were found'
    warning must not reach the user's terminal, and ITK's warning setting is left as it was."""
    import SimpleITK as sitk

    write_image(tmp_path / "case_0000.nii.gz", np.zeros(GEOMETRY.shape, np.float32), GEOMETRY)
    before = sitk.ProcessObject.GetGlobalWarningDisplay()
    assert not is_dicom_folder(tmp_path)
    assert dicom_series(tmp_path) == []
    assert sitk.ProcessObject.GetGlobalWarningDisplay() == before
    captured = capfd.readouterr()
    assert "No Series" not in captured.err + captured.out
