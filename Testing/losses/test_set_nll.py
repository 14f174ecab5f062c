"""The shared autograd kernel: gradcheck in float64, gradients against a naive float64 autograd
reference, the uniform and per-voxel upstream gradients, and the log-space redo of improbable sets."""

from __future__ import annotations

import pytest
import torch

from ACELib.losses import ace_candidates, adaptive_cross_entropy, marginal_cross_entropy
from ACELib.losses._set_nll import _TINY, set_nll

BG, CSF, GM, WM, WMH = range(5)


def _tables(kind: str, batch: int, num_classes: int, seed: int) -> torch.Tensor | None:
    """Candidate tables: none (CE), identity, one wide background row (ACE), or random wide rows."""
    if kind == "none":
        return None
    eye = torch.eye(num_classes, dtype=torch.bool)
    tables = eye.expand(batch, -1, -1).clone()
    if kind == "ace":
        tables[0, 0, : num_classes - 1] = True  # sample 0: background may be any label but the last
    elif kind == "random":
        gen = torch.Generator().manual_seed(seed)
        tables |= torch.rand(batch, num_classes, num_classes, generator=gen) < 0.4
    return tables


def _naive_loss(logits: torch.Tensor, target: torch.Tensor, tables: torch.Tensor | None) -> torch.Tensor:
    """``-log sum_S softmax`` by plain float64 autograd ops (moderate logits only)."""
    batch, num_classes = logits.shape[:2]
    if tables is None:
        tables = torch.eye(num_classes, dtype=torch.bool).expand(batch, -1, -1)
    prob = torch.softmax(logits, dim=1)
    flat_t = target.reshape(batch, -1)
    mask = torch.stack([tables[b][flat_t[b]].T for b in range(batch)])  # (B, C, N)
    mask = mask.reshape(logits.shape)
    return -torch.log((prob * mask).sum(dim=1))


def _inputs(shape, seed, scale=2.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    return logits.requires_grad_(True), target


@pytest.mark.parametrize("kind", ["none", "identity", "ace", "random"])
@pytest.mark.parametrize("shape", [(2, 4, 5), (2, 3, 2, 3)])
def test_gradcheck_in_float64(kind, shape):
    logits, target = _inputs(shape, seed=len(shape))
    tables = _tables(kind, shape[0], shape[1], seed=1)
    assert torch.autograd.gradcheck(lambda z: set_nll(z, target, tables), (logits,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["none", "ace", "random"])
def test_gradcheck_through_the_log_space_redo(kind):
    # Logits of +-60 make some allowed sets improbable (P(S) < _TINY): those voxels are redone.
    logits, target = _inputs((2, 4, 6), seed=5, scale=60.0)
    tables = _tables(kind, 2, 4, seed=2)
    loss = set_nll(logits, target, tables)
    assert bool((loss > -torch.log(torch.tensor(_TINY, dtype=torch.float64))).any())
    assert torch.autograd.gradcheck(lambda z: set_nll(z, target, tables), (logits,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["none", "ace", "random"])
@pytest.mark.parametrize("upstream", ["mean", "sum", "per-voxel"])
def test_float32_value_and_gradient_match_naive_float64(kind, upstream):
    logits64, target = _inputs((3, 5, 4, 3, 5), seed=9, scale=3.0)
    tables = _tables(kind, 3, 5, seed=3)
    gen = torch.Generator().manual_seed(4)
    weights = torch.rand(target.shape, generator=gen, dtype=torch.float64)

    def upstream_of(loss):
        if upstream == "mean":
            return loss.mean()
        if upstream == "sum":
            return loss.sum()
        return (loss * weights.to(loss.dtype)).sum()

    want = _naive_loss(logits64, target, tables)
    upstream_of(want).backward()
    logits32 = logits64.detach().float().requires_grad_(True)
    got = set_nll(logits32, target, tables)
    upstream_of(got).backward()
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-5, atol=1e-6)
    # Float32 resolution of p * (1 - 1 / P(S)) when P(S) is near 1: a few ulps of the upstream g.
    g_max = 1 / target.numel() if upstream == "mean" else 1.0
    torch.testing.assert_close(logits32.grad.double(), logits64.grad, rtol=1e-4, atol=1e-6 * g_max)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_exact_gradient_where_the_allowed_set_is_improbable(reduction):
    # Lesion dataset, lesion in the patch; all mass on the lesion at the two background voxels.
    target = torch.tensor([[BG, BG, WMH]])
    annotated = torch.tensor([[True, False, False, False, True]])
    logits = torch.full((1, 5, 3), -1e4)
    logits[:, WMH] = 1e4
    logits.requires_grad_(True)
    adaptive_cross_entropy(logits, target, annotated, reduction=reduction).backward()
    g = 1 / 3 if reduction == "mean" else 1.0
    # softmax(z) - softmax over S = {BG, CSF, GM, WM}: (0, 0, 0, 0, 1) - (1/4, 1/4, 1/4, 1/4, 0).
    want_bg = g * torch.tensor([-0.25, -0.25, -0.25, -0.25, 1.0])
    torch.testing.assert_close(logits.grad[0, :, 0], want_bg)
    torch.testing.assert_close(logits.grad[0, :, 1], want_bg)
    torch.testing.assert_close(logits.grad[0, :, 2], torch.zeros(5))


@pytest.mark.parametrize("label_set", ["dataset", "patch"])
def test_ace_gradient_equals_marginal_gradient_of_its_tables(label_set):
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(3, 5, 3, 4, 5, generator=gen)
    annotated = torch.tensor([[1, 0, 0, 0, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    target = torch.zeros(3, 3, 4, 5, dtype=torch.long)
    target[0, 0] = WMH
    target[1, 1] = GM
    target[2, 2] = WMH
    present = torch.stack([torch.bincount(t.reshape(-1), minlength=5) > 0 for t in target])
    tables = ace_candidates(annotated, label_set, present)
    grads = []
    for fn in (lambda z: adaptive_cross_entropy(z, target, annotated, label_set),
               lambda z: marginal_cross_entropy(z, target, tables)):
        z = logits.clone().requires_grad_(True)
        fn(z).backward()
        grads.append(z.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_gradient_keeps_the_logits_dtype_under_bf16():
    logits, target = _inputs((2, 5, 3, 4), seed=7, dtype=torch.bfloat16)
    tables = _tables("ace", 2, 5, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = marginal_cross_entropy(logits, target, tables)
    loss.backward()
    assert loss.dtype == torch.float32
    assert logits.grad.dtype == torch.bfloat16 and bool(torch.isfinite(logits.grad).all())


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_reduced_precision_float32_matmuls_do_not_reach_the_losses(precision):
    logits64, target = _inputs((3, 5, 4, 3, 5), seed=12, scale=3.0)
    tables = _tables("random", 3, 5, seed=5)
    want = _naive_loss(logits64, target, tables).detach()
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        got = set_nll(logits64.detach().float(), target, tables)
    finally:
        torch.set_float32_matmul_precision(previous)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
