"""Multi-UNet members: what each learns (plan_members) and how a model fuses their label maps."""

from __future__ import annotations

import numpy as np
import torch

from ACELib.inference import MemberSpec, ModelMetadata, SegmentationModel
from ACELib.networks import UNet3D, UNetConfig
from ACELib.training import TrainConfig, plan_members


def test_plan_members_builds_one_member_per_dataset(wmh_task):
    plans = plan_members(wmh_task, TrainConfig(multi_unet=True))
    assert [p.name for p in plans] == ["anatomy", "lesion"]
    assert [p.modalities for p in plans] == [("T1", "FLAIR"), ("T1", "FLAIR")]
    assert [p.classes for p in plans] == [(0, 1, 2, 3), (0, 4)]  # background + the dataset's labels
    assert [p.loss for p in plans] == ["ce", "ce"]


def _model(task, members, nets):
    return SegmentationModel(ModelMetadata(labels=task.labels, members=tuple(members)), nets, "cpu")


def test_members_are_fused_in_order_later_overwrites(wmh_task):
    torch.manual_seed(0)
    specs = [MemberSpec(p.name, p.modalities, p.classes,
                        UNetConfig(len(p.modalities), len(p.classes), 2, 2).to_dict())
             for p in plan_members(wmh_task, TrainConfig(multi_unet=True))]
    nets = [UNet3D(UNetConfig.from_dict(s.network)) for s in specs]
    image = np.random.default_rng(0).normal(size=(2, 7, 8, 9)).astype(np.float32)
    with torch.no_grad():  # centre the lesion net's decision so that it paints about half the voxels
        z = nets[1].eval()(torch.from_numpy(image)[None])[0]
        nets[1].head.bias[1] -= (z[1] - z[0]).median()
    tissue = _model(wmh_task, specs[:1], nets[:1]).predict(image, (1.0, 1.0, 1.0)).labels
    lesion = _model(wmh_task, specs[1:], nets[1:]).predict(image, (1.0, 1.0, 1.0)).labels
    assert 0 < (lesion != 0).mean() < 1  # the rule is exercised both ways
    fused = _model(wmh_task, specs, nets).predict(image, (1.0, 1.0, 1.0)).labels
    assert set(np.unique(tissue)) <= {0, 1, 2, 3} and set(np.unique(lesion)) <= {0, 4}
    np.testing.assert_array_equal(fused, np.where(lesion != 0, lesion, tissue))
    reverse = _model(wmh_task, specs[::-1], nets[::-1]).predict(image, (1.0, 1.0, 1.0)).labels
    np.testing.assert_array_equal(reverse, np.where(tissue != 0, tissue, lesion))
