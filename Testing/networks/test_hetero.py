"""The hetero-modal U-Net: any non-empty subset of its modalities, order-free fusion, exact masking."""

import itertools

import pytest
import torch

from ACELib.inference.fast import fold_batchnorm
from ACELib.networks import (
    HeteroUNet3D,
    UNet3D,
    UNetConfig,
    build_network,
    fuse_modalities,
    network_description,
)

M = 3
CFG = UNetConfig(in_channels=M, num_classes=4, base_channels=4, depth=2)
SUBSETS = [s for r in range(1, M + 1) for s in itertools.combinations(range(M), r)]


def _net(seed=0):
    torch.manual_seed(seed)
    net = HeteroUNet3D(CFG)
    net.train()
    with torch.no_grad():  # a few training batches give batch norm non-trivial running statistics
        for _ in range(3):
            net(torch.randn(2, M, 8, 8, 8))
    return net.eval()


def _mask(subset, batch=1):
    present = torch.zeros(batch, M, dtype=torch.bool)
    present[:, list(subset)] = True
    return present


@pytest.mark.parametrize("subset", SUBSETS)
def test_every_subset_gives_finite_logits_of_the_input_size(subset):
    x = torch.randn(1, M, 7, 9, 6)  # odd sizes: padded and cropped back
    out = _net()(x, _mask(subset))
    assert out.shape == (1, 4, 7, 9, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("subset", SUBSETS)
def test_absent_channels_are_ignored_whatever_they_hold(subset):
    net, x = _net(), torch.randn(1, M, 8, 8, 8)
    noisy = x.clone()
    absent = [m for m in range(M) if m not in subset]
    noisy[:, absent] = 1e3 * torch.randn(1, len(absent), 8, 8, 8)
    assert torch.allclose(net(x, _mask(subset)), net(noisy, _mask(subset)), atol=1e-5)


def test_subsets_give_different_answers():
    net, x = _net(), torch.randn(1, M, 8, 8, 8)
    outs = [net(x, _mask(s)) for s in SUBSETS]
    assert all(not torch.allclose(outs[0], o) for o in outs[1:])


def test_samples_of_a_batch_with_different_subsets_match_their_single_runs():
    net, x = _net(), torch.randn(3, M, 8, 8, 8)
    present = torch.tensor([[True, False, False], [True, True, True], [False, True, True]])
    batched = net(x, present)
    for b in range(3):
        assert torch.allclose(batched[b : b + 1], net(x[b : b + 1], present[b : b + 1]), atol=1e-5)


def test_fusion_does_not_depend_on_the_order_of_the_modalities():
    torch.manual_seed(1)
    feats = [torch.randn(2, 5, 3, 3, 3) for _ in range(4)]
    present = torch.tensor([[True, True, False, True], [False, True, True, True]])
    ref = fuse_modalities(feats, present)
    for perm in itertools.permutations(range(4)):
        out = fuse_modalities([feats[i] for i in perm], present[:, list(perm)])
        assert torch.allclose(out, ref, atol=1e-6)


def test_fusion_is_mean_and_population_variance_over_present_only():
    a, b, c = (torch.full((1, 1, 1, 1, 1), v) for v in (1.0, 3.0, 100.0))
    out = fuse_modalities([a, b, c], torch.tensor([[True, True, False]]))
    assert out.flatten().tolist() == [2.0, 1.0]  # mean of 1, 3; variance ((1-2)^2 + (3-2)^2) / 2
    one = fuse_modalities([a, None, c], torch.tensor([[False, False, True]]))
    assert one.flatten().tolist() == [100.0, 0.0]  # one modality: variance 0


@pytest.mark.parametrize("present, match", [
    (torch.tensor([[False, False, False]]), "at least one modality"),
    (torch.ones(1, 2, dtype=torch.bool), r"present must be \(B, M\)"),
    (torch.ones(1, 3), "bool tensor"),
])
def test_bad_present_masks_are_refused(present, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _net()(torch.randn(1, M, 8, 8, 8), present)


def test_wrong_channel_count_is_refused():
    with pytest.raises(ValueError, match=r"must be \(B, 3, D, H, W\)"):
        _net()(torch.randn(1, 2, 8, 8, 8))


def test_batch_norm_of_a_stem_sees_only_samples_with_its_modality():
    torch.manual_seed(0)
    net = HeteroUNet3D(CFG).train()
    x = torch.randn(2, M, 8, 8, 8) + 5.0
    x[1, 2] = 0.0  # sample 1 lacks modality 2: its zeros must not enter stem 2's statistics
    net(x, torch.tensor([[True, True, True], [True, True, False]]))
    bn = net.stems[2][1]
    torch.manual_seed(0)
    fresh = HeteroUNet3D(CFG).train()
    fresh(x[:1], torch.tensor([[True, True, True]]))
    assert torch.allclose(bn.running_mean, fresh.stems[2][1].running_mean, atol=1e-6)


def test_folded_batch_norm_computes_the_same_function():
    net, x = _net(), torch.randn(1, M, 8, 8, 8)
    fast = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast.modules())
    for s in SUBSETS:
        assert torch.allclose(net(x, _mask(s)), fast(x, _mask(s)), atol=1e-4)


def test_gradients_reach_only_the_stems_of_present_modalities():
    torch.manual_seed(0)
    net = HeteroUNet3D(CFG).train()
    net(torch.randn(2, M, 8, 8, 8), _mask((0, 2), batch=2)).sum().backward()
    assert net.stems[0][0].weight.grad is not None and net.stems[1][0].weight.grad is None
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_description_round_trip_and_kinds():
    net = _net()
    d = network_description(net)
    assert d["kind"] == "hetero" and isinstance(build_network(d), HeteroUNet3D)
    plain = UNet3D(UNetConfig(2, 3, 2, 2))
    assert "kind" not in network_description(plain) and isinstance(build_network(network_description(plain)), UNet3D)
    with pytest.raises(ValueError, match="network kind must be one of"):
        build_network({**d, "kind": "hemis"})
