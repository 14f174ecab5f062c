"""Augmentation settings: one frozen dataclass, saved with the training settings.

Ranges follow nnU-Net v2's default 3D pipeline (``nnUNetTrainer.get_training_transforms``) where it
has the transform: rotation, scaling (0.7-1.4), Gaussian noise (variance 0-0.1), Gaussian blur
(sigma 0.5-1 voxel), multiplicative brightness (0.75-1.25), contrast (0.75-1.25), simulated low
resolution (zoom 0.5-1), gamma (0.7-1.5, also on the inverted image) and mirroring. nnU-Net mirrors
every axis; a brain's labels are not lateralised but are not up-down symmetric either, so only
the left-right axis (array axis 2, x) is mirrored by default. Added for MR scanners, which nnU-Net
leaves to its data: a smooth multiplicative bias field, thick slices along one axis, and a smooth
(elastic) deformation. ``domain_randomization`` is the SynthSeg idea (Billot et al., 2023): with this
probability a sample's image is drawn anew from the case's generator label map with a random
contrast per class (see :mod:`ACELib.data.augment.synthesis`). ``p_curve`` remaps a channel's
intensities through a random increasing curve (as MONAI's ``RandHistogramShift`` does with its
control points), which changes how bright each tissue is relative to the others while keeping
their order: the contrast differences between scanners that per-image normalisation leaves.
``p_class_gain`` multiplies each generator class's brightness by its own random factor, on the
case's own image (:func:`ACELib.data.augment.synthesis.class_gain_field`): contrasts change as
between scanners, and unlike the curve the classes may change order (as GM and WM do between T1
and FLAIR scanners), while texture and partial volume stay real.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ACELib.io.strict_json import refuse_unknown_keys

_PROBABILITIES = ("p_rotation", "p_scale", "p_elastic", "p_mirror", "p_noise", "p_blur", "p_brightness",
                  "p_contrast", "p_bias", "p_lowres", "p_thick_slices", "p_gamma", "p_gamma_inverted",
                  "domain_randomization", "p_curve", "p_class_gain")
_RANGES = ("scale", "noise_variance", "blur_sigma", "brightness", "contrast", "lowres_zoom", "gamma",
           "thick_slices")


CURVE_SEGMENTS = 5
"""Segments of the random intensity curve (``p_curve``): four knots between the ends."""


@dataclass(frozen=True)
class AugmentationConfig:
    """What is drawn for every training patch, and how often.

    Attributes:
        enabled: False turns every transform off (the patches are cut as they are).
        p_rotation, rotation_deg: chance and range (+-) of a rotation about each axis.
        p_scale, scale: chance and range of an isotropic zoom (> 1 shows a larger region, smaller).
        p_elastic, elastic_voxels: chance and size (standard deviation, voxels) of a smooth deformation.
        p_mirror, mirror_axes: chance of mirroring each of these array axes (0 = z, 1 = y, 2 = x).
        p_noise, noise_variance: additive Gaussian noise (normalised intensities).
        p_blur, blur_sigma: Gaussian blur, sigma in voxels.
        p_brightness, brightness: multiplicative brightness.
        p_contrast, contrast: contrast about the patch mean, range kept.
        p_bias, bias_std: smooth multiplicative bias field, standard deviation of its logarithm.
        p_lowres, lowres_zoom: downsample by this factor and back (simulated low resolution).
        p_thick_slices, thick_slices: average slabs of this many voxels along one random axis.
        p_gamma, p_gamma_inverted, gamma: gamma on the intensities rescaled to 0..1 (and on the
            inverted intensities).
        domain_randomization: chance that a sample's image is synthesised from its generator label
            map (needs datasets with ``synthTr`` maps, as ``ace phantoms`` writes).
        per_channel: intensity transforms draw their parameters per channel.
        p_curve, curve_strength: chance of remapping a channel through a random increasing curve
            of :data:`CURVE_SEGMENTS` segments whose rises are ``exp(N(0, curve_strength))``
            (0: a straight line). Off by default, so that settings saved without it train as before.
        p_class_gain, class_gain_std: chance per channel of multiplying every generator class's
            intensity by ``exp(N(0, class_gain_std))`` (lesions by white matter's factor), on the
            image itself; needs generator label maps like ``domain_randomization``. Off by default.
    """

    enabled: bool = True
    p_rotation: float = 0.2
    rotation_deg: float = 20.0
    p_scale: float = 0.2
    scale: tuple[float, float] = (0.7, 1.4)
    p_elastic: float = 0.2
    elastic_voxels: float = 1.5
    p_mirror: float = 0.5
    mirror_axes: tuple[int, ...] = (2,)
    p_noise: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_brightness: float = 0.15
    brightness: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_bias: float = 0.3
    bias_std: float = 0.3
    p_lowres: float = 0.25
    lowres_zoom: tuple[float, float] = (0.5, 1.0)
    p_thick_slices: float = 0.15
    thick_slices: tuple[float, float] = (2.0, 4.0)
    p_gamma: float = 0.3
    p_gamma_inverted: float = 0.1
    gamma: tuple[float, float] = (0.7, 1.5)
    domain_randomization: float = 0.0
    per_channel: bool = True
    p_curve: float = 0.0
    curve_strength: float = 0.5
    p_class_gain: float = 0.0
    class_gain_std: float = 0.3

    def __post_init__(self):
        for name in _PROBABILITIES:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"augmentation {name} must be a probability in [0, 1], got {v!r}")
        for name in _RANGES:
            v = getattr(self, name)
            if len(v) != 2 or not 0.0 <= float(v[0]) <= float(v[1]):
                raise ValueError(f"augmentation {name} must be a range (low, high) with 0 <= low <= high, got {v!r}")
        if self.scale[0] <= 0 or self.lowres_zoom[0] <= 0 or self.lowres_zoom[1] > 1:
            raise ValueError(f"augmentation scale must be > 0 and lowres_zoom in (0, 1], got {self.scale}, "
                             f"{self.lowres_zoom}")
        for name in ("rotation_deg", "elastic_voxels", "bias_std", "curve_strength", "class_gain_std"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"augmentation {name} must be >= 0, got {getattr(self, name)!r}")
        if any(a not in (0, 1, 2) for a in self.mirror_axes) or len(set(self.mirror_axes)) != len(self.mirror_axes):
            raise ValueError(f"augmentation mirror_axes must be distinct array axes among 0, 1, 2, got {self.mirror_axes!r}")

    @property
    def uses_label_maps(self) -> bool:
        """Whether training needs every case's generator label map (``synthTr``)."""
        return self.enabled and (self.domain_randomization > 0 or self.p_class_gain > 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> AugmentationConfig:
        refuse_unknown_keys(d, cls, "augmentation settings")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def off(cls) -> AugmentationConfig:
        """No augmentation at all."""
        return cls(enabled=False)


__all__ = ["CURVE_SEGMENTS", "AugmentationConfig"]
