import math

import pytest
import torch
from torch import nn

from ACELib.inference.fast import fold_batchnorm, optimize_for_inference, plan_window
from ACELib.networks import UNet3D, UNetConfig


def _net_with_bn_statistics():
    net = UNet3D(UNetConfig(in_channels=2, num_classes=5, base_channels=4, depth=3))
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return net.eval()


def test_folded_network_computes_the_same_function():
    net = _net_with_bn_statistics()
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm3d) for m in net.modules())  # the original is untouched
    x = torch.randn(2, 2, 11, 16, 13)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-4)
        fast = optimize_for_inference(net, torch.device("cpu"))
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last_3d)), net(x),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spatial, budget", [((144, 176, 144), 160 ** 3), ((256, 256, 256), 128 ** 3),
                                             ((40, 50, 30), 160 ** 3), ((300, 20, 20), 64 ** 3)])
def test_planned_window_fits_the_budget(spatial, budget):
    win = plan_window(spatial, budget)
    assert math.prod(win) <= budget or all(w <= 8 or w == s for w, s in zip(win, spatial))
    assert all(w <= s for w, s in zip(win, spatial))
    if math.prod(spatial) <= budget:
        assert win == spatial
    with pytest.raises(ValueError, match="max_voxels must be >= 512"):
        plan_window(spatial, 10)
