"""Sliding-window inference over a whole volume with Gaussian blending.

Windows are large by default (the network is fully convolutional and its cost per voxel is the same
for any window), which keeps the overlap overhead small; the Gaussian weight favours the centre of
each window, where the receptive field is complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch

from ACELib.progress import Progress


class Cancelled(RuntimeError):
    """Raised when a ``cancel()`` callback asked to stop."""


@lru_cache(maxsize=8)
def _gaussian_cpu(window: tuple[int, int, int], sigma_scale: float) -> torch.Tensor:
    axes = []
    for w in window:
        x = torch.arange(w, dtype=torch.float64) - (w - 1) / 2
        sigma = max(w * sigma_scale, 1e-3)
        axes.append(torch.exp(-0.5 * (x / sigma) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    g = g / g.max()
    return g.clamp_min(1e-4).float()


def gaussian_weight(window: Sequence[int], sigma_scale: float = 0.125, device=None) -> torch.Tensor:
    """``(D, H, W)`` float32 Gaussian importance map, 1 at the centre, never below 1e-4."""
    return _gaussian_cpu(tuple(int(w) for w in window), float(sigma_scale)).to(device)


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets along one axis so that windows of ``window`` cover ``size`` with ``overlap``."""
    if window >= size:
        return [0]
    stride = max(1, int(window * (1 - overlap)))
    n = math.ceil((size - window) / stride) + 1
    if n == 1:
        return [0]
    # spread the windows evenly so the last one ends exactly at the border
    return [round(i * (size - window) / (n - 1)) for i in range(n)]


def sliding_window_logits(net: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, num_classes: int,
                          window: Sequence[int] = (128, 128, 128), overlap: float = 0.25, batch_size: int = 1,
                          sigma_scale: float = 0.125, progress: Progress | None = None,
                          cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """Blend the network's logits over overlapping windows.

    Args:
        net: maps ``(B, C, *window)`` to ``(B, K, *window)`` logits.
        image: ``(C, D, H, W)`` on the compute device.
        window: window size; clipped to the volume size per axis.
        overlap: fraction in [0, 1) of a window shared with its neighbour.

    Returns:
        ``(K, D, H, W)`` float32 blended logits, on the image's device.

    Raises:
        Cancelled: ``cancel()`` returned True between windows.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (C, D, H, W), got shape {tuple(image.shape)}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be >= 0 and < 1, got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(window) != 3 or min(window) < 1:
        raise ValueError(f"window must be three positive sizes, got {window}")
    _, *spatial = image.shape
    win = [min(int(w), s) for w, s in zip(window, spatial)]
    starts = [window_starts(s, w, overlap) for s, w in zip(spatial, win)]
    corners = [(z, y, x) for z in starts[0] for y in starts[1] for x in starts[2]]
    weight = gaussian_weight(win, sigma_scale, image.device)
    out = torch.zeros((num_classes, *spatial), dtype=torch.float32, device=image.device)
    norm = torch.zeros(tuple(spatial), dtype=torch.float32, device=image.device)
    for i in range(0, len(corners), batch_size):
        if cancel is not None and cancel():
            raise Cancelled("inference cancelled")
        group = corners[i : i + batch_size]
        slices = [tuple(slice(c, c + w) for c, w in zip(corner, win)) for corner in group]
        batch = torch.stack([image[(slice(None), *s)] for s in slices])
        logits = net(batch).float()
        for b, s in enumerate(slices):
            out[(slice(None), *s)] += logits[b] * weight
            norm[s] += weight
        if progress is not None:
            progress(min(i + batch_size, len(corners)), len(corners), "segmenting")
    return out.div_(norm)
