"""`ace predict --volumes FILE.csv --qc FILE.png`, from files and from a DICOM study: the CSV holds each
label's voxel count times the voxel volume, and the QC picture is written (the same whatever the storage)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_factory import write_dicom_series
from factory import WMH_LABELS, subject

from ACELib.cli.main import main
from ACELib.inference import create_model
from ACELib.io.image import Geometry, read_image, write_image

GEOMETRY = Geometry((13, 12, 10), (1.0, 1.25, 2.0), (40.0, 30.0, -10.0), (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.safetensors"
    create_model(WMH_LABELS, ("T1", "FLAIR"), base_channels=4, depth=2, seed=3).save(path)
    return path


def _volumes_match_the_label_maps(csv_path, outputs: dict):
    rows = list(csv.DictReader(csv_path.open()))
    assert {r["case"] for r in rows} == set(outputs)
    for r in rows:
        labels, geom = read_image(outputs[r["case"]], dtype=np.int64)
        n = int((labels == int(r["value"])).sum())
        assert int(r["voxels"]) == n
        assert float(r["volume_ml"]) == pytest.approx(n * np.prod(geom.spacing) / 1000, abs=5.01e-4)  # 3 decimals
    assert [r["label"] for r in rows][:4] == ["CSF", "GM", "WM", "WMH"]


def test_volumes_and_qc_of_one_case(tmp_path, model_path):
    pytest.importorskip("matplotlib")
    _, image = subject(GEOMETRY.shape, seed=1)
    paths = []
    for name, channel in zip(("t1", "flair"), image):
        paths.append(tmp_path / f"{name}.nii.gz")
        write_image(paths[-1], channel, GEOMETRY)
    code = main(["predict", "--model", str(model_path), "--images", *map(str, paths), "--out",
                 str(tmp_path / "seg.nii.gz"), "--volumes", str(tmp_path / "v.csv"), "--qc", str(tmp_path / "qc.png")])
    assert code == 0
    _volumes_match_the_label_maps(tmp_path / "v.csv", {"t1.nii.gz": tmp_path / "seg.nii.gz"})
    assert (tmp_path / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dicom_study_with_series_volumes_and_qc_folder(tmp_path, model_path):
    pytest.importorskip("matplotlib")
    _, image = subject(GEOMETRY.shape, seed=2)
    for channel, uid, name in zip(np.round(image * 1000), ("1.2.3.1", "1.2.3.2"), ("T1", "FLAIR")):
        write_dicom_series(tmp_path / "study", channel, GEOMETRY, uid, name, 1)
    out = tmp_path / "seg"
    code = main(["predict", "--model", str(model_path), "--input", str(tmp_path / "study"), "--series", "1.2.3.1",
                 "1.2.3.2", "--out", str(out), "--suffix", ".nrrd", "--volumes", str(tmp_path / "v.csv"),
                 "--qc", str(tmp_path / "qc")])
    assert code == 0
    _volumes_match_the_label_maps(tmp_path / "v.csv", {"study": out / "study.nrrd"})
    assert (tmp_path / "qc" / "study.png").is_file()
    assert main(["predict", "--model", str(model_path), "--images", str(tmp_path / "study"),
                 "--out", str(tmp_path / "x.nii.gz")]) == 2  # two series, none chosen


def test_qc_picture_does_not_depend_on_the_storage(tmp_path):
    mpl_image = pytest.importorskip("matplotlib.image")
    from ACELib.inference.qc import write_qc_png
    from ACELib.io.image import to_sitk

    labels, image = subject(GEOMETRY.shape, seed=3)
    lps = sitk.DICOMOrient(to_sitk(image[0], GEOMETRY), "LPS")
    lab_lps = sitk.DICOMOrient(to_sitk(labels.astype(np.uint8), GEOMETRY), "LPS")
    write_qc_png(tmp_path / "ras.png", image[0], labels, GEOMETRY, WMH_LABELS)
    write_qc_png(tmp_path / "lps.png", sitk.GetArrayFromImage(lps), sitk.GetArrayFromImage(lab_lps),
                 Geometry.from_sitk(lps), WMH_LABELS)
    assert np.array_equal(mpl_image.imread(tmp_path / "ras.png"), mpl_image.imread(tmp_path / "lps.png"))
    with pytest.raises(ValueError, match=r"must both have the geometry's shape \(10, 12, 13\)"):
        write_qc_png(tmp_path / "x.png", image[0][:5], labels, GEOMETRY, WMH_LABELS)
