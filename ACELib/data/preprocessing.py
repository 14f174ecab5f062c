"""Preprocessing that training and inference must repeat exactly: orientation, resampling, normalisation.

The settings are a frozen :class:`Preprocessing` saved in the model file, so a model always
normalises new scans the way it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ACELib.io.image import Geometry, resample_to_spacing
from ACELib.io.orientation import CANONICAL_ORIENTATION, Reorientation, check_orientation, reorientation
from ACELib.io.strict_json import refuse_unknown_keys

NORMALISATIONS = ("zscore", "none")


@dataclass(frozen=True)
class Preprocessing:
    """Canonical orientation, optional resampling and per-channel normalisation, applied in that order.

    Attributes:
        normalization: ``"zscore"``: per channel, subtract the mean and divide by the standard
            deviation computed over the *foreground* (voxels above ``foreground_fraction`` times
            the channel's 99th percentile, i.e. brain for skull-stripped scans); ``"none"``.
        foreground_fraction: threshold of the foreground mask, relative to the 99th percentile.
        spacing: target voxel spacing ``(x, y, z)`` in mm (of the reoriented axes), or None to keep the input's.
        orientation: voxel orientation code every image is brought to first, by permuting and flipping
            its axes (see :mod:`ACELib.io.orientation`; ``"LPS"`` = identity direction), or None to use
            the array as stored (model files written before orientations were recorded).
    """

    normalization: str = "zscore"
    foreground_fraction: float = 0.1
    spacing: tuple[float, float, float] | None = None
    orientation: str | None = CANONICAL_ORIENTATION

    def __post_init__(self):
        if self.normalization not in NORMALISATIONS:
            raise ValueError(f"normalization must be one of {list(NORMALISATIONS)}, got {self.normalization!r}")
        if not 0.0 <= self.foreground_fraction < 1.0:
            raise ValueError(f"foreground_fraction must be in [0, 1), got {self.foreground_fraction}")
        if self.spacing is not None and (len(self.spacing) != 3 or min(self.spacing) <= 0):
            raise ValueError(f"spacing must be None or three positive numbers, got {self.spacing}")
        if self.orientation is not None:
            object.__setattr__(self, "orientation", check_orientation(self.orientation))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spacing"] = list(self.spacing) if self.spacing is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        refuse_unknown_keys(d, cls, "preprocessing keys")
        spacing = d.get("spacing")
        return cls(d.get("normalization", "zscore"), float(d.get("foreground_fraction", 0.1)),
                   tuple(float(s) for s in spacing) if spacing else None,
                   d.get("orientation"))  # absent in older model files: no reorientation, as they were trained

    def reorientation(self, geometry: Geometry) -> Reorientation:
        """How to bring an image on ``geometry`` to :attr:`orientation` and back (identity when None)."""
        return reorientation(geometry, self.orientation)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Normalise a ``(C, D, H, W)`` image; returns float32 of the same shape."""
        return normalize_intensities(image, self.normalization, self.foreground_fraction)

    def resample(self, image: np.ndarray, geometry: Geometry, is_label: bool = False) -> tuple[np.ndarray, Geometry]:
        """Resample ``(C, D, H, W)`` (or ``(D, H, W)`` label) to ``spacing``; identity when it is None."""
        if self.spacing is None or np.allclose(geometry.spacing, self.spacing):
            return image, geometry
        if image.ndim == 3:
            return resample_to_spacing(image, geometry, self.spacing, is_label)
        chans = [resample_to_spacing(c, geometry, self.spacing, is_label) for c in image]
        return np.stack([c for c, _ in chans]), chans[0][1]


def foreground_mask(channel: np.ndarray, fraction: float) -> np.ndarray:
    """``(D, H, W)`` bool: voxels above ``fraction`` x the 99th percentile (all voxels if that is empty)."""
    hi = float(np.percentile(channel, 99))
    lo = float(channel.min())
    mask = channel > lo + fraction * (hi - lo)
    return mask if mask.any() else np.ones_like(channel, dtype=bool)


def normalize_intensities(image: np.ndarray, method: str = "zscore", fraction: float = 0.1) -> np.ndarray:
    """Per-channel normalisation of a ``(C, D, H, W)`` image (see :class:`Preprocessing`)."""
    if image.ndim != 4:
        raise ValueError(f"image must be (C, D, H, W), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image contains NaN or Inf voxels")
    out = image.astype(np.float32, copy=True)
    if method == "none":
        return out
    for c in range(out.shape[0]):
        fg = out[c][foreground_mask(out[c], fraction)]
        mean, std = float(fg.mean()), float(fg.std())
        out[c] = (out[c] - mean) / max(std, 1e-6)
    return out
