"""Intensity augmentation of a normalised image patch, each channel with its own draw.

Every function takes and returns a ``(C, D, H, W)`` float32 tensor; the random parameters come in
as arguments (drawn by :mod:`ACELib.data.augment.pipeline` from the sampler's generator), so the
functions themselves are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """Normalised 1D Gaussian of standard deviation ``sigma`` voxels, radius ``ceil(3 sigma)``."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def blur(x: torch.Tensor, sigmas: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian blur of each channel with its own ``sigmas[c]`` (voxels; 0 leaves it)."""
    out = x.clone()
    for c, s in enumerate(sigmas):
        if s <= 0:
            continue
        k = gaussian_kernel(float(s))
        r = (k.numel() - 1) // 2
        v = x[c][None, None]
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = k.numel()
            pad = [0, 0, 0, 0, 0, 0]
            pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
            v = F.conv3d(F.pad(v, pad, mode="replicate"), k.view(shape))
        out[c] = v[0, 0]
    return out


def smooth_field(coarse: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Trilinear upsampling of a ``(C, g, g, g)`` coarse field to ``(C, *size)``."""
    return F.interpolate(coarse[None], size=tuple(size), mode="trilinear", align_corners=True)[0]


def bias_field(x: torch.Tensor, log_coarse: torch.Tensor) -> torch.Tensor:
    """Multiply each channel's intensities above its minimum by ``exp`` of a smooth field.

    Args:
        log_coarse: ``(C, g, g, g)`` logarithm of the field on a coarse grid (zeros leave a channel).
    """
    lo = x.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)
    return (x - lo) * torch.exp(smooth_field(log_coarse, x.shape[1:])) + lo


def contrast(x: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """Scale each channel about its mean by ``factors[c]``, clipped to the channel's original range."""
    out = x.clone()
    for c, f in enumerate(factors):
        if f == 1.0:
            continue
        lo, hi = x[c].min(), x[c].max()
        mean = x[c].mean()
        out[c] = ((x[c] - mean) * f + mean).clamp(lo, hi)
    return out


def gamma(x: torch.Tensor, gammas: Sequence[float], inverted: Sequence[bool]) -> torch.Tensor:
    """Gamma on each channel rescaled to 0..1 (on ``-x`` where ``inverted``); mean and std are kept.

    This is nnU-Net's gamma transform with ``retain_stats``.
    """
    out = x.clone()
    for c, (g, inv) in enumerate(zip(gammas, inverted)):
        if g == 1.0:
            continue
        v = -x[c] if inv else x[c]
        mean, std = v.mean(), v.std()
        lo, hi = v.min(), v.max()
        span = (hi - lo).clamp_min(1e-7)
        v = ((v - lo) / span) ** g * span + lo
        v = (v - v.mean()) / v.std().clamp_min(1e-7) * std + mean
        out[c] = -v if inv else v
    return out


def monotone_curve(rng_increments: Sequence[float]) -> torch.Tensor:
    """Knots ``(K + 2,)`` of a random increasing curve from 0 to 1 on ``K + 1`` equal segments.

    Args:
        rng_increments: ``K + 1`` positive segment rises (any scale); they are normalised to sum to 1.
    """
    w = torch.as_tensor(rng_increments, dtype=torch.float32)
    if w.ndim != 1 or w.numel() < 1 or bool((w <= 0).any()):
        raise ValueError(f"curve increments must be a non-empty 1D array of positive numbers, got {w.tolist()}")
    return torch.cat([torch.zeros(1), torch.cumsum(w, 0) / w.sum()])


def intensity_curve(x: torch.Tensor, knots: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Remap each channel through its own increasing piecewise-linear curve; mean and std are kept.

    A scanner changes the *relative* brightness of tissues (e.g. the GM/WM ratio in T1), which a
    global brightness, contrast or gamma change barely touches. The channel is rescaled to 0..1,
    mapped through ``knots[c]`` (values at ``K + 2`` equally spaced points, increasing from 0 to 1,
    see :func:`monotone_curve`), and given back its mean and standard deviation, as :func:`gamma`
    does. The order of intensities is kept, so a tissue darker than another stays darker.

    Args:
        x: ``(C, D, H, W)`` float32.
        knots: per channel a ``(K + 2,)`` tensor, or None to leave that channel.
    """
    out = x.clone()
    for c, ys in enumerate(knots):
        if ys is None:
            continue
        v = x[c]
        mean, std = v.mean(), v.std()
        lo, hi = v.min(), v.max()
        span = (hi - lo).clamp_min(1e-7)
        segments = ys.numel() - 1
        t = ((v - lo) / span).clamp(0.0, 1.0) * segments
        i = t.floor().clamp(max=segments - 1)
        left, right = ys[i.long()], ys[i.long() + 1]
        v = left + (t - i) * (right - left)
        v = (v - v.mean()) / v.std().clamp_min(1e-7) * std + mean
        out[c] = v
    return out


def low_resolution(x: torch.Tensor, zooms: Sequence[float]) -> torch.Tensor:
    """Downsample each channel by ``zooms[c]`` (nearest) and back (trilinear); 1 leaves it."""
    out = x.clone()
    size = x.shape[1:]
    for c, z in enumerate(zooms):
        if z >= 1.0:
            continue
        small = [max(1, int(round(n * z))) for n in size]
        v = F.interpolate(x[c][None, None], size=small, mode="nearest")
        out[c] = F.interpolate(v, size=tuple(size), mode="trilinear", align_corners=False)[0, 0]
    return out


def thick_slices(x: torch.Tensor, axis: int, thickness: int) -> torch.Tensor:
    """Average slabs of ``thickness`` voxels along spatial ``axis`` (0..2), interpolated back."""
    if thickness < 2:
        return x
    size = list(x.shape[1:])
    kernel = [1, 1, 1]
    kernel[axis] = thickness
    pooled = F.avg_pool3d(x[None], kernel_size=kernel, stride=kernel, ceil_mode=True, count_include_pad=False)
    return F.interpolate(pooled, size=size, mode="trilinear", align_corners=False)[0]


__all__ = ["bias_field", "blur", "contrast", "gamma", "gaussian_kernel", "intensity_curve", "low_resolution",
           "monotone_curve", "smooth_field", "thick_slices"]
