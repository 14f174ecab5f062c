"""MR image synthesis from tissue fractions: per-modality contrast, scanner settings, artefacts.

An image is the sum over tissue classes of (class fraction x class intensity), so voxels on a border
mix their tissues (partial volume). A :class:`Scanner` holds what one dataset's acquisition does to
it: its own class intensities, gain and gamma, blur, slice thickness, bias field and noise levels.
Every dataset draws its own scanner, so training and test datasets differ in their intensity
distributions (the multi-domain shift of real data); every subject then varies around it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ACELib.io.image import Geometry
from ACELib.phantoms.fields import smooth, smooth_noise

CLASSES = ("background", "CSF", "GM", "WM", "WMH", "edema", "tumor", "necrosis", "scalp", "fat", "skull")
"""Tissue classes of the fraction maps given to :func:`synthesize` (in this order); the last three are
the non-brain head tissue of skull-on phantoms (:mod:`ACELib.phantoms.head`)."""

MODALITIES = ("T1", "T1c", "T2", "FLAIR")

# Mean intensity of each class (CLASSES order) relative to T1 white matter. FLAIR: lesions bright,
# CSF dark; T1: lesions dark; T1c: enhancing tumour bright; T2: fluid and lesions bright. Head tissue:
# scalp (skin and muscle) intermediate, fat bright in T1 and still bright in T2/FLAIR, cortical bone dark.
BASE_CONTRAST: Mapping[str, tuple[float, ...]] = {
    "T1": (0.0, 0.30, 0.65, 0.95, 0.58, 0.55, 0.55, 0.28, 0.50, 1.15, 0.06),
    "T1c": (0.0, 0.32, 0.68, 0.95, 0.60, 0.58, 1.30, 0.28, 0.62, 1.15, 0.06),
    "T2": (0.0, 1.00, 0.60, 0.42, 0.85, 0.90, 0.75, 0.95, 0.38, 0.70, 0.05),
    "FLAIR": (0.0, 0.12, 0.62, 0.48, 1.00, 0.95, 0.80, 0.40, 0.45, 0.85, 0.05),
}


@dataclass(frozen=True)
class Scanner:
    """Acquisition settings of one dataset.

    Attributes:
        name: for logs and the generation record.
        contrast: modality -> mean intensity per class (:data:`CLASSES` order), relative units.
        gain: intensity units per relative unit.
        gamma: exponent applied to the normalised intensities.
        blur_voxels: Gaussian blur (point spread) in voxels.
        slice_thickness_mm: thick slices along z (0: isotropic acquisition).
        bias_std: standard deviation of the log bias field.
        bias_scale_mm: smoothness of the bias field.
        noise: Rician noise level relative to the white matter intensity.
        jitter: per-subject relative variation of the class intensities.
    """

    name: str
    contrast: Mapping[str, tuple[float, ...]]
    gain: float = 1000.0
    gamma: float = 1.0
    blur_voxels: float = 0.4
    slice_thickness_mm: float = 0.0
    bias_std: float = 0.1
    bias_scale_mm: float = 50.0
    noise: float = 0.02
    jitter: float = 0.04

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "contrast": {m: [round(v, 4) for v in c] for m, c in self.contrast.items()},
            "gain": round(self.gain, 3), "gamma": round(self.gamma, 4), "blur_voxels": round(self.blur_voxels, 4),
            "slice_thickness_mm": round(self.slice_thickness_mm, 3), "bias_std": round(self.bias_std, 4),
            "bias_scale_mm": round(self.bias_scale_mm, 2), "noise": round(self.noise, 4),
            "jitter": round(self.jitter, 4),
        }


def draw_scanner(rng: np.random.Generator, name: str, thick_slice_probability: float = 0.3,
                 contrast_spread: float = 0.1, thickness_mm: tuple[float, float] = (3.0, 5.0),
                 bias_std: tuple[float, float] = (0.04, 0.2)) -> Scanner:
    """Random acquisition settings for a dataset.

    Args:
        thick_slice_probability: chance that the dataset has thick slices (``thickness_mm`` along z).
        contrast_spread: relative (log-normal) spread of each class intensity around
            :data:`BASE_CONTRAST`; the order of the classes in each modality is kept.
        thickness_mm: range of the slice thickness of a thick-slice scanner.
        bias_std: range of the bias field's strength (standard deviation of its logarithm).

    Returns:
        A :class:`Scanner`.
    """
    if not 0.0 <= thick_slice_probability <= 1.0:
        raise ValueError(f"thick_slice_probability must be in [0, 1], got {thick_slice_probability}")
    contrast = {}
    for modality, base in BASE_CONTRAST.items():
        factors = np.exp(rng.normal(0.0, contrast_spread, len(base)))
        values = np.asarray(base) * factors
        # keep the ordering of the base contrast, which the labels' meaning relies on
        order = np.argsort(base, kind="stable")
        values[order] = np.sort(values)
        contrast[modality] = tuple(float(v) for v in values)
    thick = float(rng.uniform(*thickness_mm)) if rng.random() < thick_slice_probability else 0.0
    return Scanner(
        name=name,
        contrast=contrast,
        gain=float(10 ** rng.uniform(2.3, 3.3)),
        gamma=float(rng.uniform(0.8, 1.25)),
        blur_voxels=float(rng.uniform(0.25, 0.6)),
        slice_thickness_mm=thick,
        bias_std=float(rng.uniform(*bias_std)),
        bias_scale_mm=float(rng.uniform(40.0, 80.0)),
        noise=float(rng.uniform(0.01, 0.05)),
        jitter=float(rng.uniform(0.02, 0.06)),
    )


def synthesize(fractions: np.ndarray, geometry: Geometry, scanner: Scanner, modality: str,
               rng: np.random.Generator, texture: np.ndarray | None = None) -> np.ndarray:
    """One MR image of a subject.

    Steps: class intensities (scanner contrast x per-subject jitter) mixed by the fractions, a faint
    within-tissue texture, gamma, blur, thick slices, a smooth multiplicative bias field, Rician noise.
    Blur, bias and noise levels vary per subject around the scanner's (log-normal, 15 %, 30 %, 25 %).

    Args:
        fractions: ``(len(CLASSES), D, H, W)`` class fractions (summing to 1).
        modality: one of :data:`MODALITIES`.
        texture: ``(D, H, W)`` zero-mean unit-std smooth field for within-tissue variation (the
            subject's, shared by its modalities); drawn from ``rng`` when None.

    Returns:
        ``(D, H, W)`` float32, non-negative whole numbers (scanner units).

    Raises:
        ValueError: unknown modality or fractions of the wrong shape.
    """
    if modality not in scanner.contrast:
        raise ValueError(f"modality must be one of {list(scanner.contrast)}, got {modality!r}")
    if fractions.shape != (len(CLASSES), *geometry.shape):
        raise ValueError(f"fractions must be {(len(CLASSES), *geometry.shape)}, got {fractions.shape}")
    means = np.asarray(scanner.contrast[modality]) * np.exp(rng.normal(0.0, scanner.jitter, len(CLASSES)))
    means[0] = 0.0
    # this subject's acquisition varies around the scanner's settings
    blur, bias, noise = scanner.blur_voxels, scanner.bias_std, scanner.noise
    blur, bias, noise = (v * float(np.exp(rng.normal(0.0, s))) for v, s in ((blur, 0.15), (bias, 0.3), (noise, 0.25)))
    present = [c for c in range(len(CLASSES)) if means[c] != 0 and fractions[c].any()]
    image = np.tensordot(means[present].astype(np.float32), fractions[present], axes=1)
    if texture is None:
        texture = smooth_noise(rng, geometry, max(3.0, 2.0 * geometry.spacing[0]))
    image *= 1.0 + 0.03 * texture
    reference = float(np.max(means))
    image = reference * np.clip(image / reference, 0.0, None) ** scanner.gamma
    image = smooth(image, geometry, blur * np.asarray(geometry.spacing))
    image = thick_slices(image, geometry, scanner.slice_thickness_mm)
    image *= np.exp(bias * smooth_noise(rng, geometry, scanner.bias_scale_mm))
    sigma = noise * float(means[CLASSES.index("WM")])
    real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(image.shape, dtype=np.float32)
    # scanners store integers: whole numbers also compress far better than float noise
    return np.rint(scanner.gain * np.sqrt(real**2 + imag**2)).astype(np.float32)


def thick_slices(image: np.ndarray, geometry: Geometry, thickness_mm: float) -> np.ndarray:
    """Simulate an acquisition with slices ``thickness_mm`` thick along z, interpolated back to the grid.

    Slabs of ``n = round(thickness / spacing_z)`` slices are averaged, then linearly interpolated at
    every original slice. Nothing changes when ``n < 2``.

    Returns:
        ``(D, H, W)`` float32.
    """
    n = int(round(thickness_mm / geometry.spacing[2])) if thickness_mm > 0 else 1
    depth = image.shape[0]
    if n < 2 or depth < 2 * n:
        return np.asarray(image, dtype=np.float32)
    slabs = -(-depth // n)
    padded = np.concatenate([image, np.repeat(image[-1:], slabs * n - depth, axis=0)])
    thick = padded.reshape(slabs, n, *image.shape[1:]).mean(axis=1)
    pos = np.clip((np.arange(depth) - (n - 1) / 2.0) / n, 0.0, slabs - 1.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, slabs - 1)
    w = (pos - lo).astype(np.float32)[:, None, None]
    return ((1.0 - w) * thick[lo] + w * thick[hi]).astype(np.float32)
