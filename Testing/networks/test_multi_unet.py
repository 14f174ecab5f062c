"""Multi-UNet baseline: the fusion rule (lesions overwrite tissue) and the per-dataset members."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ACELib.networks import MultiUNet, UNet3D, fuse_label_maps

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


def test_from_task_builds_one_member_per_dataset(wmh_task):
    multi = MultiUNet.from_task(wmh_task, base_channels=2, depth=2)
    assert list(multi.members) == ["anatomy", "lesion"]
    assert multi.members["anatomy"].config.in_channels == 2
    assert multi.members["anatomy"].config.num_classes == 4  # background + CSF, GM, WM
    assert multi.members["lesion"].config.num_classes == 2  # background + WMH
    assert multi.joint_indices == {"anatomy": (0, 1, 2, 3), "lesion": (0, 4)}
    assert multi.priority == ("anatomy", "lesion")


def test_predict_labels_fuses_members_in_priority_order(wmh_task):
    multi = MultiUNet.from_task(wmh_task, base_channels=2, depth=2).eval()
    x = torch.randn(2, 2, 7, 8, 9)
    with torch.no_grad():
        logits = multi(x)
        fused = multi.predict_labels(x)
    assert logits["anatomy"].shape == (2, 4, 7, 8, 9) and logits["lesion"].shape == (2, 2, 7, 8, 9)
    tissue = torch.tensor([0, 1, 2, 3])[logits["anatomy"].argmax(1)]
    lesion = torch.tensor([0, 4])[logits["lesion"].argmax(1)]
    expected = torch.where(lesion != 0, lesion, tissue)
    assert fused.shape == (2, 7, 8, 9) and fused.dtype == torch.int64
    assert torch.equal(fused, expected)
    # with the lesion network first, tissue overwrites lesions wherever the tissue net says non-background
    multi_rev = MultiUNet(dict(multi.members), multi.joint_indices, priority=["lesion", "anatomy"]).eval()
    expected_rev = torch.where(tissue != 0, tissue, lesion)
    assert torch.equal(multi_rev.predict_labels(x), expected_rev)


def test_members_take_their_own_inputs():
    members = {"a": UNet3D(in_channels=3, num_classes=3, base_channels=2, depth=2),
               "b": UNet3D(in_channels=1, num_classes=2, base_channels=2, depth=2)}
    multi = MultiUNet(members, {"a": [0, 1, 2], "b": [0, 3]}).eval()
    out = multi.predict_labels({"a": torch.randn(1, 3, 6, 6, 6), "b": torch.randn(1, 1, 6, 6, 6)})
    assert out.shape == (1, 6, 6, 6)
    assert set(out.unique().tolist()) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match=r"inputs lack the members \['b'\]"):
        multi({"a": torch.randn(1, 3, 6, 6, 6)})


def test_dict_round_trip(wmh_task):
    multi = MultiUNet.from_task(wmh_task, base_channels=2, depth=2, priority=["lesion", "anatomy"])
    back = MultiUNet.from_dict(json.loads(json.dumps(multi.to_dict())))
    assert back.to_dict() == multi.to_dict()
    assert back.priority == ("lesion", "anatomy")
    with pytest.raises(ValueError, match=r"unknown keys \['extra'\]"):
        MultiUNet.from_dict({**multi.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match=r"missing keys \['joint_indices'\]"):
        MultiUNet.from_dict({"members": multi.to_dict()["members"]})


BAD_MEMBERS = [
    ({"a": [0, 1]}, None, r"joint_indices must name the members \['a', 'b'\]"),
    ({"a": [0, 1], "b": [0, 2, 3]}, None, r"joint_indices\['b'\] must list 2 non-negative joint indices"),
    ({"a": [1, 0], "b": [0, 2]}, None, r"joint_indices\['a'\] .* starting with 0"),
    ({"a": [0, 1], "b": [0, 2]}, ["a", "c"], r"priority must order the members \['a', 'b'\]"),
]


@pytest.mark.parametrize("indices, priority, message", BAD_MEMBERS)
def test_bad_member_descriptions(indices, priority, message):
    members = {n: UNet3D(in_channels=1, num_classes=2, base_channels=2, depth=1) for n in ("a", "b")}
    with pytest.raises(ValueError, match=message):
        MultiUNet(members, indices, priority)
