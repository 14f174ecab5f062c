"""Label volumes: voxel counts times the voxel volume, on a hand-counted map."""

import numpy as np
import pytest
from factory import WMH_LABELS

from ACELib.metrics.volumes import label_volumes, write_volumes


def test_volumes_are_counts_times_voxel_volume(tmp_path):
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[0, :2, :3] = 1   # 6 voxels of CSF
    labels[1:3] = 3         # 60 voxels of WM
    labels[3, 0, 0] = 4     # 1 voxel of WMH; GM absent
    rows = label_volumes(labels, (1.0, 2.0, 3.0), WMH_LABELS, case="c")  # 6 mm^3 = 0.006 mL per voxel
    assert [(r["label"], r["value"], r["voxels"]) for r in rows] == [("CSF", 1, 6), ("GM", 2, 0), ("WM", 3, 60),
                                                                      ("WMH", 4, 1)]
    np.testing.assert_allclose([r["volume_ml"] for r in rows], [0.036, 0.0, 0.36, 0.006])
    assert {r["case"] for r in rows} == {"c"}
    with_bg = label_volumes(labels, (1.0, 2.0, 3.0), WMH_LABELS, include_background=True)
    assert with_bg[0]["label"] == "background" and with_bg[0]["voxels"] == 120 - 67
    write_volumes(rows, tmp_path / "v.csv")
    assert (tmp_path / "v.csv").read_text().splitlines() == [
        "case,label,value,voxels,volume_ml", "c,CSF,1,6,0.036", "c,GM,2,0,0.000", "c,WM,3,60,0.360", "c,WMH,4,1,0.006"]


@pytest.mark.parametrize(("labels", "spacing", "match"), [
    (np.zeros((4, 4)), (1, 1, 1), r"labels must be a \(D, H, W\) map, got shape \(4, 4\)"),
    (np.zeros((2, 2, 2)), (1, 1), r"spacing must be three positive numbers \(x, y, z\), got \(1.0, 1.0\)"),
    (np.zeros((2, 2, 2)), (1, 0, 1), r"spacing must be three positive numbers"),
])
def test_bad_inputs_are_named(labels, spacing, match):
    with pytest.raises(ValueError, match=match):
        label_volumes(labels, spacing, WMH_LABELS)
