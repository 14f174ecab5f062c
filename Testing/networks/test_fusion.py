"""The Multi-UNet baseline's fusion rule: lesions overwrite tissue, background never overwrites."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ACELib.networks import fuse_label_maps

TISSUE = np.array([[1, 2, 3, 0, 3, 1]], dtype=np.int64)  # joint indices CSF=1, GM=2, WM=3
LESION = np.array([[0, 4, 4, 4, 0, 0]], dtype=np.int64)  # WMH=4

FUSION_CASES = [
    # (maps, priority, expected)
    ([TISSUE, LESION], None, [[1, 4, 4, 4, 3, 1]]),  # lesion overwrites tissue, also over background
    ([LESION, TISSUE], None, [[1, 2, 3, 4, 3, 1]]),  # order matters: tissue now wins where both speak
    ([LESION, TISSUE], [1, 0], [[1, 4, 4, 4, 3, 1]]),  # priority restores the paper's rule
    ([TISSUE, LESION], [5, 5], [[1, 4, 4, 4, 3, 1]]),  # equal priority: the later map wins
    ([TISSUE, np.zeros_like(LESION)], None, TISSUE.tolist()),  # background never overwrites
    ([TISSUE], None, TISSUE.tolist()),
    ([np.array([0, 1, 0]), np.array([0, 0, 2]), np.array([3, 0, 0])], [2, 0, 1], [3, 1, 2]),
]


@pytest.mark.parametrize("maps, priority, expected", FUSION_CASES)
def test_fuse_label_maps_numpy_and_torch(maps, priority, expected):
    fused = fuse_label_maps(maps, priority)
    np.testing.assert_array_equal(fused, np.asarray(expected))
    assert fused.dtype == maps[0].dtype and isinstance(fused, np.ndarray)
    fused_t = fuse_label_maps([torch.from_numpy(m) for m in maps], priority)
    assert isinstance(fused_t, torch.Tensor)
    np.testing.assert_array_equal(fused_t.numpy(), np.asarray(expected))


def test_fuse_does_not_modify_its_inputs():
    tissue = TISSUE.copy()
    fuse_label_maps([tissue, LESION])
    np.testing.assert_array_equal(tissue, TISSUE)


BAD_FUSIONS = [
    ([], None, ValueError, r"maps is empty"),
    ([TISSUE, LESION[:, :3]], None, ValueError, r"maps\[1\] has shape \(1, 3\), expected \(1, 6\)"),
    ([TISSUE, LESION.astype(float)], None, TypeError, r"maps\[1\] must hold integer joint indices, got dtype float64"),
    ([TISSUE, torch.from_numpy(LESION)], None, TypeError, r"all numpy arrays or all torch tensors"),
    ([TISSUE, LESION], [1], ValueError, r"one entry per map \(2\), got 1"),
]


@pytest.mark.parametrize("maps, priority, error, message", BAD_FUSIONS)
def test_fuse_bad_inputs(maps, priority, error, message):
    with pytest.raises(error, match=message):
        fuse_label_maps(maps, priority)
