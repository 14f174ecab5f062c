"""Training-time augmentation of patches (spatial, intensity) and domain randomisation."""

from ACELib.data.augment.config import AugmentationConfig
from ACELib.data.augment.pipeline import PatchAugmenter

__all__ = ["AugmentationConfig", "PatchAugmenter"]
