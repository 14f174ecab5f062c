"""Domain randomisation (the SynthSeg idea): a new image of a case drawn from its label map.

A phantom's generator knows every voxel's class (background, CSF, GM, WM, lesions, head tissue):
``ace phantoms`` writes that map as ``synthTr/{case}.nii.gz``. A synthesised sample gives every class
a random mean intensity and spread in every channel, blurs the result by a random amount (partial
volume), and normalises it like :func:`ACELib.data.preprocessing.normalize_intensities` would the
whole volume: z-score over the voxels above 10 % of the intensity range, with the statistics
computed from the case's class counts (so a patch is normalised as its whole volume would be).
Contrasts whose normalised classes would lie more than :data:`MAX_Z` deviations out (foreground
classes almost equally bright) are redrawn: a real scan never looks like that.
A network trained this way cannot rely on any one contrast.

A milder use of the same map is :func:`class_gain_field`: the case's own image keeps its texture,
noise and partial volume, and every class's brightness is multiplied by its own random factor (the
lesions keep their ratio to the white matter they sit in), so tissue contrasts change without any
ordering being assumed.
"""

from __future__ import annotations

import numpy as np
import torch

from ACELib.data.augment.intensity import blur

LESION_CLASSES = (4, 5, 6, 7)
"""Generator classes that are lesions (WMH, edema, tumour, necrosis): their random intensity is kept
at least :data:`LESION_SEPARATION` away from white matter's (class 3), whose lesions they are."""
LESION_SEPARATION = 0.12
MAX_Z = 5.0
"""Largest distance, in standard deviations of the foreground, that a class's mean may lie from the
normalised volume's mean. Real z-scored scans stay within about 4; a draw whose foreground classes
are almost equally bright would put the background hundreds or thousands of deviations away (a
patch of values near 7600 was seen), which the network never meets in a real scan and which
corrupts its batch-norm statistics. Such draws are redrawn (:func:`draw_volume_contrast`)."""
CONTRAST_TRIES = 16
_WM = 3


def draw_contrast(rng: np.random.Generator, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Random mean (0..1) and spread of each generator class for one channel.

    Background stays dark (air): 0, or up to 0.15 in one draw of four.

    Returns:
        ``(means (classes,), stds (classes,))`` float64.
    """
    means = rng.uniform(0.0, 1.0, classes)
    stds = rng.uniform(0.0, 0.06, classes)
    means[0] = rng.uniform(0.0, 0.15) if rng.random() < 0.25 else 0.0
    stds[0] = min(stds[0], 0.02)
    if classes > _WM:
        for c in LESION_CLASSES:
            if c >= classes:
                break
            for _ in range(8):  # redraw a lesion too close to the white matter it sits in
                if abs(means[c] - means[_WM]) >= LESION_SEPARATION:
                    break
                means[c] = rng.uniform(0.0, 1.0)
    return means, stds


def volume_statistics(means: np.ndarray, stds: np.ndarray, counts: np.ndarray, fraction: float = 0.1
                      ) -> tuple[float, float]:
    """Mean and standard deviation of the foreground of the synthesised whole volume.

    The foreground rule is :func:`ACELib.data.preprocessing.foreground_mask`'s, applied per class:
    classes whose mean exceeds the darkest class by ``fraction`` of the range of present classes.
    """
    present = counts > 0
    lo, hi = float(means[present].min()), float(means[present].max())
    fg = present & (means > lo + fraction * (hi - lo))
    if not fg.any():
        fg = present
    w = counts[fg] / counts[fg].sum()
    mean = float(np.sum(w * means[fg]))
    var = float(np.sum(w * (stds[fg] ** 2 + means[fg] ** 2))) - mean**2
    return mean, float(np.sqrt(max(var, 1e-8)))


def draw_volume_contrast(rng: np.random.Generator, counts: np.ndarray, max_z: float = MAX_Z,
                         tries: int = CONTRAST_TRIES) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A contrast (:func:`draw_contrast`) whose normalised class means all lie within ``max_z`` of 0.

    Draws up to ``tries`` contrasts and keeps the first that passes; if none does, the last one's
    foreground deviation is widened until its farthest present class is ``max_z`` away.

    Args:
        counts: ``(K,)`` voxels of each generator class in the whole case.

    Returns:
        ``(means (K,), stds (K,), volume mean, volume std)``: normalise with ``(x - mean) / std``.
    """
    present = counts > 0
    for _ in range(tries):
        means, stds = draw_contrast(rng, counts.shape[0])
        mean, std = volume_statistics(means, stds, counts)
        spread = float(np.abs(means[present] - mean).max()) if present.any() else 0.0
        if spread <= max_z * std:
            return means, stds, mean, std
    return means, stds, mean, max(std, spread / max_z)


def synthesize_patch(labels: np.ndarray, counts: np.ndarray, channels: int, rng: np.random.Generator
                     ) -> np.ndarray:
    """A random-contrast, normalised image of a label patch.

    Args:
        labels: ``(D, H, W)`` uint8 generator classes of the patch.
        counts: ``(K,)`` voxels of each generator class in the whole case (for normalisation).
        channels: how many channels to draw (each its own contrast).

    Returns:
        ``(channels, D, H, W)`` float32.
    """
    k = counts.shape[0]
    if int(labels.max(initial=0)) >= k:
        raise ValueError(f"synthesis label map has class {int(labels.max())}, the case counts only {k} classes")
    out = np.empty((channels, *labels.shape), dtype=np.float32)
    sigmas = []
    for c in range(channels):
        means, stds, mean, std = draw_volume_contrast(rng, counts)
        noise = rng.standard_normal(labels.shape, dtype=np.float32)
        img = means[labels].astype(np.float32) + stds[labels].astype(np.float32) * noise
        out[c] = (img - mean) / std
        sigmas.append(float(rng.uniform(0.3, 1.0)))
    return blur(torch.from_numpy(out), sigmas).numpy()


def draw_class_gains(rng: np.random.Generator, channels: int, counts: np.ndarray, std: float) -> np.ndarray:
    """Random brightness factor of every generator class in every channel.

    Each class gets ``exp(N(0, std))``; background keeps 1; the lesion classes take white matter's
    factor (their contrast to it is what marks them); the factors are divided by their mean over
    the case's non-background voxels, so the brain as a whole keeps its brightness (and the volume
    its normalisation).

    Args:
        counts: ``(K,)`` voxels of each generator class in the whole case.

    Returns:
        ``(channels, K)`` float64 factors.
    """
    k = counts.shape[0]
    gains = np.exp(rng.normal(0.0, std, (channels, k)))
    gains[:, 0] = 1.0
    if k > _WM:
        for c in LESION_CLASSES:
            if c < k:
                gains[:, c] = gains[:, _WM]
    weights = counts[1:].astype(np.float64)
    if weights.sum() > 0:
        gains[:, 1:] /= (gains[:, 1:] @ weights / weights.sum())[:, None]
    return gains


def class_gain_field(labels: np.ndarray, gains: np.ndarray, sigma: float = 1.0) -> torch.Tensor:
    """Per-voxel brightness factors of a label patch, smoothed across class borders (partial volume).

    Args:
        labels: ``(D, H, W)`` uint8 generator classes of the patch.
        gains: ``(C, K)`` factor of each class per channel (:func:`draw_class_gains`).
        sigma: Gaussian smoothing of the field, voxels.

    Returns:
        ``(C, D, H, W)`` float32 field.
    """
    if int(labels.max(initial=0)) >= gains.shape[1]:
        raise ValueError(f"gain label map has class {int(labels.max())}, the gains cover only {gains.shape[1]} classes")
    field = torch.from_numpy(gains.astype(np.float32)[:, labels])
    return blur(field, [sigma] * field.shape[0])


__all__ = ["LESION_CLASSES", "MAX_Z", "class_gain_field", "draw_class_gains", "draw_contrast",
           "draw_volume_contrast", "synthesize_patch", "volume_statistics"]
