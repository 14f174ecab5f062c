"""The paper's balanced mini-batches of patches.

Each patch: pick a dataset with equal probability, then one of the classes present in a case of it
with equal probability, then a case containing that class, then a voxel of that class; the patch is
centred on that voxel and padded where it crosses the volume border (images with the channel's
minimum, labels with background). Randomness is drawn from one seeded ``numpy`` generator, so a
sampler with the same seed yields the same batches, and its state can be saved and restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ACELib.data.loading import LoadedCase, LoadedDataset


@dataclass
class Batch:
    """A training batch.

    Attributes:
        image: ``(B, C, P, P, P)`` float32.
        target: ``(B, P, P, P)`` int64 joint indices.
        annotated: ``(B, C)`` bool, labels each sample's dataset annotates (C = joint classes).
        candidates: ``(B, C, C)`` bool, each sample's candidate table.
        dataset: ``(B,)`` int64, index of each sample's dataset.
    """

    image: torch.Tensor
    target: torch.Tensor
    annotated: torch.Tensor
    candidates: torch.Tensor
    dataset: torch.Tensor

    def to(self, device) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in
                       (self.image, self.target, self.annotated, self.candidates, self.dataset)))


def extract_patch(case: LoadedCase, center: Sequence[int], size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Patch of ``size`` (D, H, W) centred on ``center``, padded outside the volume.

    Returns:
        ``(image (C, *size) float32, target (*size) uint8)``.
    """
    img, tgt = case.image, case.target
    shape = tgt.shape
    starts = [int(c) - s // 2 for c, s in zip(center, size)]
    src, dst = [], []
    for st, s, n in zip(starts, size, shape):
        lo, hi = max(st, 0), min(st + s, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - st, hi - st))
    out_img = np.empty((img.shape[0], *size), dtype=np.float32)
    out_img[:] = img.reshape(img.shape[0], -1).min(axis=1)[:, None, None, None]
    out_tgt = np.zeros(tuple(size), dtype=np.uint8)
    out_img[(slice(None), *dst)] = img[(slice(None), *src)]
    out_tgt[tuple(dst)] = tgt[tuple(src)]
    return out_img, out_tgt


class BalancedSampler:
    """Draw balanced mini-batches from several loaded datasets.

    Args:
        datasets: datasets whose cases share the channel count.
        patch_size: int or (D, H, W).
        batch_size: patches per batch (paper: 7).
        seed: the generator's seed (a distributed run passes a different seed per rank).
    """

    def __init__(self, datasets: Sequence[LoadedDataset], patch_size: int | Sequence[int] = 32,
                 batch_size: int = 7, seed: int = 0):
        self.datasets = [d for d in datasets if d.cases]
        if not self.datasets:
            raise ValueError("BalancedSampler: no dataset has a training case")
        if isinstance(patch_size, int):
            patch_size = (patch_size,) * 3
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ValueError(f"patch_size must be a positive int or three of them, got {patch_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        channels = {c.image.shape[0] for d in self.datasets for c in d.cases}
        if len(channels) != 1:
            raise ValueError(f"all cases must have the same number of channels, got {sorted(channels)}")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        # per dataset: class -> cases containing it
        self._by_class = []
        for d in self.datasets:
            table: dict[int, list[LoadedCase]] = {}
            for case in d.cases:
                for c in case.class_voxels:
                    table.setdefault(c, []).append(case)
            self._by_class.append((sorted(table), table))

    def draw(self) -> tuple[int, LoadedCase, tuple[int, int, int]]:
        """One draw: ``(dataset index, case, centre voxel (z, y, x))``."""
        k = int(self.rng.integers(len(self.datasets)))
        classes, table = self._by_class[k]
        c = classes[int(self.rng.integers(len(classes)))]
        cases = table[c]
        case = cases[int(self.rng.integers(len(cases)))]
        voxels = case.class_voxels[c]
        flat = int(voxels[int(self.rng.integers(voxels.size))])
        return k, case, tuple(int(i) for i in np.unravel_index(flat, case.target.shape))

    def sample(self) -> Batch:
        images, targets, ds_idx = [], [], []
        for _ in range(self.batch_size):
            k, case, center = self.draw()
            img, tgt = extract_patch(case, center, self.patch_size)
            images.append(img)
            targets.append(tgt)
            ds_idx.append(k)
        ann = np.stack([self.datasets[k].annotated for k in ds_idx])
        cand = np.stack([self.datasets[k].candidates for k in ds_idx])
        return Batch(
            torch.from_numpy(np.stack(images)),
            torch.from_numpy(np.stack(targets).astype(np.int64)),
            torch.from_numpy(ann),
            torch.from_numpy(cand),
            torch.tensor(ds_idx, dtype=torch.int64),
        )

    def __iter__(self):
        while True:
            yield self.sample()

    def get_state(self) -> dict:
        """The generator state (JSON-serialisable), to resume the same stream of batches."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
