"""The paper's U-Net: shapes, additive skips, widths, initialisation, gradients, input checks, config."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from ACELib.networks import ConvBlock, UNet3D, UNetConfig, count_parameters

SHAPE_CASES = [
    # (in_channels, num_classes, base, depth, batch, (D, H, W))
    (1, 2, 2, 2, 1, (16, 16, 16)),
    (2, 5, 4, 2, 2, (17, 23, 30)),
    (3, 4, 2, 3, 1, (9, 10, 11)),
    (1, 3, 2, 3, 2, (1, 5, 7)),
    (2, 2, 3, 1, 1, (5, 6, 7)),
    (1, 2, 2, 4, 1, (17, 8, 3)),
]


@pytest.mark.parametrize("cin, classes, base, depth, batch, spatial", SHAPE_CASES)
def test_output_shape_equals_input_spatial_size(cin, classes, base, depth, batch, spatial):
    net = UNet3D(in_channels=cin, num_classes=classes, base_channels=base, depth=depth).eval()
    with torch.no_grad():
        out = net(torch.randn(batch, cin, *spatial))
    assert out.shape == (batch, classes, *spatial)
    assert torch.isfinite(out).all()


def test_odd_input_is_replicate_padded_at_the_far_end_and_cropped():
    net = UNet3D(in_channels=1, num_classes=3, base_channels=2, depth=3).eval()
    x = torch.randn(1, 1, 9, 10, 13)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 2, 0, 3), mode="replicate")  # up to multiples of 4
    with torch.no_grad():
        got = net(x)
        want = net(padded)[:, :, :9, :10, :13]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_skip_connections_are_additive(depth):
    net = UNet3D(in_channels=2, num_classes=3, base_channels=3, depth=depth).eval()
    for i, dec in enumerate(net.decoders):
        # the first expansion convolution sees as many channels as the skip, not twice as many
        assert dec[0].in_channels == net.encoders[i].out_channels == net.ups[i].out_channels
        assert net.ups[i].in_channels == net.encoders[i + 1].out_channels
    seen: dict[str, torch.Tensor] = {}

    def keep(name, use_input):
        def hook(module, args, output):
            seen[name] = (args[0] if use_input else output).detach().clone()

        return hook

    for i in range(depth - 1):
        net.encoders[i].register_forward_hook(keep(f"enc{i}", False))
        net.ups[i].register_forward_hook(keep(f"up{i}", False))
        net.decoders[i].register_forward_hook(keep(f"dec{i}", True))
    with torch.no_grad():
        net(torch.randn(1, 2, 8, 8, 8))
    for i in range(depth - 1):
        torch.testing.assert_close(seen[f"dec{i}"], seen[f"up{i}"] + seen[f"enc{i}"])


def _block_params(cin: int, cout: int) -> int:
    # two 3x3x3 convolutions without bias, each followed by batch norm (weight + bias)
    return 27 * cin * cout + 2 * cout + 27 * cout * cout + 2 * cout


def test_paper_configuration_widths_and_parameter_count():
    net = UNet3D(UNetConfig(in_channels=2, num_classes=5))
    assert net.config.channels == (32, 64, 128, 256)
    assert [b.out_channels for b in net.encoders] == [32, 64, 128, 256]
    assert [u.out_channels for u in net.ups] == [32, 64, 128]
    assert [d.out_channels for d in net.decoders] == [32, 64, 128]
    assert sum(isinstance(m, nn.MaxPool3d) for m in net.modules()) == 1  # one module, used 3 times
    expected = (
        _block_params(2, 32) + _block_params(32, 64) + _block_params(64, 128) + _block_params(128, 256)
        + (8 * 256 * 128 + 128) + (8 * 128 * 64 + 64) + (8 * 64 * 32 + 32)  # transposed convs + bias
        + _block_params(128, 128) + _block_params(64, 64) + _block_params(32, 32)
        + (32 * 5 + 5)  # 1x1x1 head + bias
    )
    assert count_parameters(net) == expected
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 2, 16, 16, 16)).shape == (1, 5, 16, 16, 16)


def test_count_parameters_skips_frozen_unless_asked():
    net = UNet3D(in_channels=1, num_classes=2, base_channels=2, depth=2)
    total = count_parameters(net)
    net.head.weight.requires_grad_(False)
    assert count_parameters(net) == total - net.head.weight.numel()
    assert count_parameters(net, trainable_only=False) == total


def test_he_initialisation_statistics():
    torch.manual_seed(1)
    net = UNet3D(in_channels=4, num_classes=3, base_channels=8, depth=3)
    checked = 0
    for m in net.modules():
        if isinstance(m, nn.ConvTranspose3d):
            fan_in = m.in_channels  # kernel 2, stride 2: one tap per input channel reaches an output voxel
        elif isinstance(m, nn.Conv3d):
            fan_in = m.in_channels * math.prod(m.kernel_size)
        else:
            continue
        w = m.weight.detach()
        if w.numel() >= 800:
            assert w.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.1)
            assert abs(w.mean().item()) < 0.1 * math.sqrt(2.0 / fan_in)
            checked += 1
        if m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
    assert checked >= 8
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert all(not isinstance(m, nn.Conv3d) or m.bias is None for b in net.encoders for m in b)


def test_gradients_reach_every_parameter():
    net = UNet3D(in_channels=2, num_classes=3, base_channels=2, depth=3).train()
    x = torch.randn(2, 2, 12, 9, 10)
    target = torch.randint(0, 3, (2, 12, 9, 10))
    loss = nn.functional.cross_entropy(net(x), target)
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


BAD_INPUTS = [
    (torch.randn(2, 16, 16, 16), ValueError, r"must be 5D \(B, C, D, H, W\), got shape \(2, 16, 16, 16\)"),
    (torch.randn(1, 3, 8, 8, 8), ValueError, r"must have 2 channels \(expected\), got 3"),
    (torch.zeros(1, 2, 8, 8, 8, dtype=torch.int64), TypeError, r"floating-point tensor, got torch.int64"),
    ([[1.0]], TypeError, r"must be a torch.Tensor, got list"),
    (torch.randn(0, 2, 8, 8, 8), ValueError, r"empty dimension"),
]


@pytest.mark.parametrize("x, error, message", BAD_INPUTS)
def test_bad_inputs_raise(x, error, message):
    net = UNet3D(in_channels=2, num_classes=2, base_channels=2, depth=2)
    with pytest.raises(error, match=message):
        net(x)


BAD_CONFIGS = [
    ({"in_channels": 2, "num_classes": 3, "width": 4}, ValueError, r"unknown keys \['width'\]; valid keys are"),
    ({"in_channels": 2}, ValueError, r"missing required keys \['num_classes'\]"),
    ({"in_channels": 0, "num_classes": 3}, ValueError, r"in_channels must be >= 1, got 0"),
    ({"in_channels": 1, "num_classes": 1}, ValueError, r"num_classes must be >= 2, got 1"),
    ({"in_channels": 1, "num_classes": 2, "depth": 0}, ValueError, r"depth must be >= 1, got 0"),
    ({"in_channels": 1, "num_classes": 2, "base_channels": 2.5}, TypeError, r"base_channels must be an int, got float"),
    ({"in_channels": True, "num_classes": 2}, TypeError, r"in_channels must be an int, got bool"),
]


@pytest.mark.parametrize("data, error, message", BAD_CONFIGS)
def test_bad_configs_raise(data, error, message):
    with pytest.raises(error, match=message):
        UNetConfig.from_dict(data)


def test_config_json_round_trip_and_construction_modes():
    cfg = UNetConfig(in_channels=3, num_classes=4, base_channels=6, depth=3)
    back = UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert UNet3D.from_dict(cfg.to_dict()).config == cfg
    assert UNet3D(**cfg.to_dict()).config == cfg
    with pytest.raises(TypeError, match="not both"):
        UNet3D(cfg, depth=2)
    with pytest.raises(TypeError, match="needs a UNetConfig"):
        UNet3D()
    with pytest.raises(TypeError, match="expects a mapping, got list"):
        UNetConfig.from_dict([3, 4])
    with pytest.raises(dataclasses.FrozenInstanceError, match="depth"):
        cfg.depth = 5


def test_same_seed_same_network_and_output():
    x = torch.randn(1, 1, 8, 8, 8)
    nets = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        nets.append(UNet3D(in_channels=1, num_classes=2, base_channels=2, depth=2).eval())
    with torch.no_grad():
        y = [n(x) for n in nets]
    torch.testing.assert_close(y[0], y[1], rtol=0, atol=0)
    assert not torch.equal(y[0], y[2])


def test_conv_block_structure():
    block = ConvBlock(3, 5)
    kinds = [type(m) for m in block]
    assert kinds == [nn.Conv3d, nn.BatchNorm3d, nn.ReLU] * 2
    assert block[0].padding == (1, 1, 1) and block[0].kernel_size == (3, 3, 3)
    assert block(torch.randn(2, 3, 4, 5, 6)).shape == (2, 5, 4, 5, 6)
