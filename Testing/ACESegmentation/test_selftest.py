"""The module's self-test (what ACESegmentationTest runs inside Slicer), run here on a slicer-core scene."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from ACESegmentationLib.logic import ACESegmentationLogic  # noqa: E402
from ACESegmentationLib.selftest import LABELS, runSelfTest  # noqa: E402


def test_self_test_workflow(slicerContext, tmp_path):
    logic = ACESegmentationLogic(slicerContext.scene, slicerContext.segmentationsLogic,
                                 slicerContext.terminologiesLogic)
    report = runSelfTest(logic, tmp_path)
    assert report["segments"] == [lab.name for lab in LABELS[1:]]
    assert sum(report["voxels"].values()) == 14 * 18 * 16
    assert report["case"] == "selftest_case"
    assert (tmp_path / "Dataset_selftest" / "labelsTr" / "selftest_case.nii.gz").is_file()
