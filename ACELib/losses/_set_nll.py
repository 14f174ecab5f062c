"""The shared kernel of cross entropy, marginal cross entropy and ACE: ``-log P(allowed set)``.

Every cross-entropy loss of the package is, per voxel ``v`` of sample ``b`` with target ``t``::

    loss_v = -log sum_{j in S_v} softmax(z_v)_j          S_v = candidates[b, t] (or {t})
    d loss_v / d z_v = softmax(z_v) - softmax restricted to S_v (renormalised)

A custom autograd function computes both with a handful of passes over the ``(B, C, N)`` logits,
instead of autograd through a log-softmax, a ``(B, C, N)`` mask gather and a masked log-sum-exp:

* forward: one fused ``softmax``; the probability mass of every candidate row at every voxel,
  ``bmm(candidates (B, C, C), p (B, C, N))``, only when some row is not a singleton (cross entropy
  skips it); the mass of the target's row, a gather. No ``(B, C, N)`` mask is built.
* backward: ``p * (g - h * row)`` at the voxels of a *set row* (a target class whose candidate row
  is not a singleton in some sample; ACE has at most one, the background), one fused ``addcmul``
  per set row and one multiplication, then the ``-g`` of singleton voxels scattered onto their
  target: ``softmax(z) - onehot(t)``.

Numerics: ``P(S) = sum_S p`` is accurate to a few ulps while it is a normal float. Voxels whose
``P(S)`` falls below ``_TINY`` (a loss above ~69 nats, rare after the first steps) are recomputed
exactly in log space, ``logsumexp(z) - logsumexp(z_S)``, value and gradient, on just those voxels.
So values and gradients stay finite and exact for logits of any finite size.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

# Below this probability of the allowed set a voxel's loss is recomputed in log space (loss > 69).
_TINY = 1e-30
# Terms more than this far below the largest term of a log-sum-exp are clamped to it: e**-80 is
# under float32's resolution of a sum >= 1, and an exp() that underflows to denormals is slow on CPU.
_LOG_TERM_FLOOR = -80.0


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """``log sum_{j: mask_j} exp(x_j)`` along ``dim``; every slice must hold at least one True.

    Value and gradient stay finite for any finite ``x`` (excluded entries get exactly zero gradient,
    no ``-inf * 0``): the peak is taken over the kept entries, terms are clamped to
    ``[_LOG_TERM_FLOOR, 0]`` relative to it before ``exp`` and excluded ones are then zeroed.
    Inputs are not checked (an internal building block).

    Args:
        x: floating tensor of any shape.
        mask: bool tensor of ``x``'s shape, True for the entries to sum.
        dim: the axis to reduce.

    Returns:
        ``x``'s shape without ``dim``.
    """
    peak = x.detach().masked_fill(~mask, torch.finfo(x.dtype).min).amax(dim, keepdim=True)
    terms = torch.exp((x - peak).clamp(_LOG_TERM_FLOOR, 0.0))
    total = torch.where(mask, terms, 0.0).sum(dim, keepdim=True)
    return (peak + torch.log(total)).squeeze(dim)


def full_precision_bmm(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``torch.bmm`` at the inputs' full precision, also where float32 matmuls may be reduced.

    With TF32 or bf16 matmuls allowed (``torch.set_float32_matmul_precision`` other than
    ``"highest"``, the CUDA default being TF32 off) a float32 product would round ``values`` to a
    10-bit mantissa; the product is then done in float64 (small ``(B, C, C)`` weights, so cheap).
    """
    if values.dtype == torch.float64 or torch.get_float32_matmul_precision() == "highest":
        return torch.bmm(weights, values)
    return torch.bmm(weights.double(), values.double()).to(values.dtype)


def _set_rows(candidates: torch.Tensor | None, target: torch.Tensor, dtype: torch.dtype,
              in_set: torch.Tensor | None = None):
    """The set rows of candidate tables and the voxels of each, as float masks.

    A set row is a target class ``r`` whose candidate row holds more than ``r`` itself in at least
    one sample; its voxels are those with target ``r`` in such a sample. Every other voxel is a
    singleton (plain cross entropy). ``None`` candidates mean singletons everywhere. ``in_set``,
    when given, is the caller's ``(B, N)`` 0/1 mask of the voxels of any set row.

    Returns:
        ``([(row weights (B, 1, C), row voxels (B, 1, N) 0/1)], set voxels (B, 1, N) 0/1 or None)``.
    """
    if candidates is None:
        return [], None
    wide = candidates.sum(dim=2) > 1  # (B, C): rows that are not singletons
    rows_r = [r for r, any_wide in enumerate(wide.any(dim=0).tolist()) if any_wide]
    if not rows_r:
        return [], None
    if in_set is None:
        in_set = wide.to(dtype).gather(1, target)
    in_set = in_set.to(dtype).unsqueeze(1)  # (B, 1, N): 1 at voxels of any set row
    rows = []
    for r in rows_r:
        voxels = in_set if len(rows_r) == 1 else (target == r).unsqueeze(1).to(dtype).mul_(wide[:, r, None, None])
        rows.append((candidates[:, r, None, :].to(dtype), voxels))
    return rows, in_set


class _SetNLL(torch.autograd.Function):
    """``(z (B, C, N), target (B, N), candidates (B, C, C) | None, in_set (B, N) | None) -> (B, N)`` loss.

    See the module docstring; ``in_set`` as in :func:`set_nll`.
    """

    @staticmethod
    def forward(ctx, logits, target, candidates, in_set):
        prob = torch.softmax(logits, dim=1)  # (B, C, N)
        index = target.unsqueeze(1)  # (B, 1, N)
        rows, in_set = _set_rows(candidates, target, logits.dtype, in_set)
        if rows:
            # Mass of every candidate row at every voxel, then the target's row. A singleton row
            # gives its probability exactly (products with 0 are 0, with 1 the value itself).
            row_mass = full_precision_bmm(candidates.to(logits.dtype), prob)  # (B, C, N)
            mass = row_mass.gather(1, index)
        else:
            mass = prob.gather(1, index)  # (B, 1, N)
        low, high = (float(v) for v in torch.aminmax(mass)) if mass.numel() else (1.0, 1.0)
        if high > 1.0:  # a set holding (nearly) every class, rounded above 1
            mass.clamp_(max=1.0)
        loss = mass.log().neg_().squeeze(1)
        fix = None
        if low < _TINY:
            fix = _exact(logits, target, candidates, mass.squeeze(1) < _TINY)
            loss[fix[0], fix[1]] = fix[2]
            mass.clamp_(min=_TINY)  # no 0 / 0 in the backward; flagged voxels are redone there
        ctx.save_for_backward(prob, index, mass)
        ctx.rows, ctx.in_set, ctx.fix = rows, in_set, fix
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        prob, index, mass = ctx.saved_tensors
        rows, in_set, fix = ctx.rows, ctx.in_set, ctx.fix
        if grad_loss.numel() and not any(grad_loss.stride()):  # an expanded scalar ("mean", "sum")
            g = torch.full_like(mass, float(grad_loss.reshape(-1)[0]))  # (B, 1, N)
        else:
            g = grad_loss.unsqueeze(1).contiguous()
        # The fast path's factor of g: a number when it is uniform, else a tensor without the
        # flagged voxels (they get their exact gradient at the end).
        if fix is None and not any(grad_loss.stride()):
            g_fast = float(g.reshape(-1)[0]) if g.numel() else 0.0
        else:
            g_fast = g.clone()
            if fix is not None:
                g_fast[fix[0], 0, fix[1]] = 0.0
        if rows:
            # d/dz_c = p_c * (g - [c in S] * g / P(S)) at set voxels, one set row at a time.
            h = in_set / mass
            if isinstance(g_fast, torch.Tensor):
                h.mul_(g_fast)
                scale = -1.0
            else:
                scale = -g_fast
            grad = None
            for weights, voxels in rows:
                h_row = h if len(rows) == 1 else h * voxels
                if grad is None:
                    grad = torch.addcmul(g, h_row, weights.transpose(1, 2), value=scale)  # (B, C, N)
                else:
                    grad.addcmul_(h_row, weights.transpose(1, 2), value=scale)
            grad.mul_(prob)
            scatter = (in_set - 1.0).mul_(g_fast)  # -g at singleton voxels, 0 at set voxels
        else:
            grad = prob * g
            scatter = g.neg() if fix is None else g_fast.neg_()
        grad.scatter_add_(1, index, scatter)  # singleton voxels: p - onehot(t)
        if fix is not None:
            b, v, _, allowed_softmax = fix
            grad[b, :, v] -= g[b, 0, v].unsqueeze(1) * allowed_softmax
        return grad, None, None, None


def _exact(logits, target, candidates, bad):
    """Log-space loss and allowed-set softmax of the voxels flagged ``bad`` ``(B, N)``.

    Returns:
        ``(b, v, loss (K,), allowed softmax (K, C))`` for the ``K`` flagged voxels ``(b, v)``.
    """
    b, v = bad.nonzero(as_tuple=True)
    z = logits[b, :, v]  # (K, C)
    t = target[b, v]
    if candidates is None:
        allowed = torch.nn.functional.one_hot(t, logits.shape[1]).bool()
    else:
        allowed = candidates[b, t]  # (K, C)
    # Softmax over the allowed set relative to its own peak (exact when its logits tie), then
    # its log-sum-exp; excluded entries are exactly 0 (no -inf * 0).
    peak = z.masked_fill(~allowed, torch.finfo(z.dtype).min).amax(dim=1, keepdim=True)
    terms = torch.where(allowed, torch.exp((z - peak).clamp(_LOG_TERM_FLOOR, 0.0)), 0.0)
    total = terms.sum(dim=1, keepdim=True)
    lse_allowed = (peak + torch.log(total)).squeeze(1)
    loss = torch.logsumexp(z, dim=1) - lse_allowed
    return b, v, loss.clamp_min(0.0), terms / total


def set_nll(logits: torch.Tensor, target: torch.Tensor, candidates: torch.Tensor | None,
            in_set: torch.Tensor | None = None) -> torch.Tensor:
    """Per-voxel ``-log P(S)``, ``S`` the target's candidate row (its target alone for ``None``).

    Inputs are assumed checked; call inside :func:`ACELib.losses._common.float32_region`.

    Args:
        logits: ``(B, C, *spatial)`` floating raw scores (float32 for the losses; float64 works).
        target: ``(B, *spatial)`` int64 class indices in ``[0, C)``.
        candidates: ``(B, C, C)`` bool candidate tables with a True diagonal, or None (cross entropy).
        in_set: optional ``(B, *spatial)`` 0/1 mask of the voxels whose candidate row is not a
            singleton, when the caller has it already (used only when there is one such row).

    Returns:
        ``(B, *spatial)`` loss in the logits' dtype, differentiable with respect to ``logits``.
    """
    batch, num_classes, *spatial = logits.shape
    flat = logits.reshape(batch, num_classes, -1)
    if in_set is not None:
        in_set = in_set.reshape(batch, -1)
    loss = _SetNLL.apply(flat, target.reshape(batch, -1), candidates, in_set)
    return loss.reshape(batch, *spatial)
