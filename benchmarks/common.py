"""Shared helpers for the benchmark scripts (not part of ACELib): timing, peak memory, test volumes."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch


def best_of(fn, repeats: int = 3, warmup: int = 1) -> float:
    """Fastest wall time of ``fn()`` over ``repeats`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured fp32 matrix-product throughput of this machine now (GFLOP/s)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = best_of(lambda: a @ b, repeats)
    return 2 * n ** 3 / t / 1e9


def brain_like_volume(shape=(144, 176, 144), channels: int = 2, seed: int = 0) -> np.ndarray:
    """A (C, D, H, W) float32 volume with a brain-like ellipsoid of three tissues, a lesion and noise."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij"))
    r = np.sqrt(((grid / np.array([0.85, 0.9, 0.8], np.float32)[:, None, None, None]) ** 2).sum(0))
    wobble = 0.05 * np.sin(6 * grid[0]) * np.cos(5 * grid[1]) * np.sin(7 * grid[2])
    r = r + wobble
    tissue = np.select([r < 0.5, r < 0.8, r < 0.95], [3, 2, 1], 0)
    lesion = (((grid[0] - 0.15) ** 2 + (grid[1] + 0.1) ** 2 + grid[2] ** 2) < 0.01) & (tissue == 3)
    tissue[lesion] = 4
    contrasts = [np.array([0, 0.25, 0.55, 0.85, 0.45]), np.array([0, 0.1, 0.6, 0.5, 1.0])]
    out = np.stack([contrasts[c % 2][tissue] for c in range(channels)]).astype(np.float32)
    return out + rng.normal(0, 0.03, out.shape).astype(np.float32)
