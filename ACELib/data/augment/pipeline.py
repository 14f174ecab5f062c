"""One augmented training patch: spatial transform, optional domain randomisation, intensity.

Order (nnU-Net's, plus the MR additions): resample (rotation, zoom, deformation) -> synthesise
(domain randomisation) or class gains -> intensity curve -> noise -> blur -> brightness -> contrast -> bias field -> low resolution ->
thick slices -> gamma (inverted, then plain) -> mirror. Every random number is drawn from the
generator passed in (the sampler's), so a stream of patches is reproducible and resumes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ACELib.data.augment import intensity as it
from ACELib.data.augment.config import CURVE_SEGMENTS, AugmentationConfig
from ACELib.data.augment.spatial import draw_spatial, mirror, resample_image, resample_labels, sampling_grid
from ACELib.data.augment.synthesis import class_gain_field, draw_class_gains, synthesize_patch
from ACELib.data.patches import crop


class PatchAugmenter:
    """Cut and augment patches as configured.

    Args:
        config: the transforms and their ranges.
    """

    def __init__(self, config: AugmentationConfig):
        self.config = config

    def __call__(self, image: np.ndarray, target: np.ndarray, center: Sequence[int], size: Sequence[int],
                 rng: np.random.Generator, pad_values: np.ndarray, synth: np.ndarray | None = None,
                 synth_counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One patch of ``size`` centred on ``center``.

        Args:
            image: ``(C, D, H, W)`` float32 normalised case image.
            target: ``(D, H, W)`` uint8 joint labels.
            pad_values: ``(C,)`` image value outside the volume.
            synth: ``(D, H, W)`` uint8 generator classes (domain randomisation), or None.
            synth_counts: ``(K,)`` voxels per generator class of the whole case.

        Returns:
            ``(image (C, *size) float32, target (*size) uint8)``.
        """
        cfg = self.config
        params = draw_spatial(rng, cfg)
        synthesise = (cfg.enabled and synth is not None and cfg.domain_randomization > 0
                      and rng.random() < cfg.domain_randomization)
        gains = self._class_gains(image.shape[0], synth, synth_counts, rng) if not synthesise else None
        box = params.crop_size(size) if params.resamples else tuple(size)
        img = crop(image, center, box, pad_values)
        tgt = crop(target, center, box, 0)
        syn = crop(synth, center, box, 0) if synthesise or gains is not None else None
        if params.resamples:
            grid = sampling_grid(params, size, box)
            tgt = resample_labels(tgt, grid)
            if syn is not None:
                syn = resample_labels(syn, grid)
            if not synthesise:
                img = resample_image(img, grid)
        if synthesise:
            img = synthesize_patch(syn, synth_counts, image.shape[0], rng)
        elif gains is not None:
            x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
            air = torch.as_tensor(np.asarray(pad_values, dtype=np.float32)).view(-1, 1, 1, 1)  # what 0 became
            img = ((x - air) * class_gain_field(syn, gains) + air).numpy()
        if cfg.enabled:
            img = self._intensity(torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)), rng).numpy()
        return mirror(img, params.mirror, 1), mirror(tgt, params.mirror, 0)

    def _class_gains(self, channels: int, synth: np.ndarray | None, counts: np.ndarray | None,
                     rng: np.random.Generator) -> np.ndarray | None:
        """``(C, K)`` class brightness factors for this patch, or None (drawn only when on)."""
        cfg = self.config
        if not (cfg.enabled and cfg.p_class_gain > 0 and synth is not None):
            return None
        hit = _channels_hit(rng, channels, cfg.p_class_gain, cfg.per_channel)
        gains = draw_class_gains(rng, channels, counts, cfg.class_gain_std)
        if not cfg.per_channel:
            gains[:] = gains[0]
        if not hit.any():
            return None
        gains[~hit] = 1.0
        return gains

    def _intensity(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.config
        c = x.shape[0]

        def chosen(p: float) -> np.ndarray:
            return _channels_hit(rng, c, p, cfg.per_channel)

        def uniform(lo_hi) -> np.ndarray:
            v = rng.uniform(lo_hi[0], lo_hi[1], c)
            return v if cfg.per_channel else np.full(c, v[0])

        if cfg.p_curve > 0:  # drawn only when on: settings without it keep their random stream
            hit = chosen(cfg.p_curve)
            rises = np.exp(rng.normal(0.0, cfg.curve_strength, (c, CURVE_SEGMENTS)))
            if not cfg.per_channel:
                rises[:] = rises[0]
            if hit.any():
                x = it.intensity_curve(x, [it.monotone_curve(r) if h else None for h, r in zip(hit, rises)])
        hit, var = chosen(cfg.p_noise), uniform(cfg.noise_variance)
        if hit.any():
            noise = torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32))
            x = x + noise * torch.from_numpy(np.sqrt(var) * hit).float().view(-1, 1, 1, 1)
        hit, sig = chosen(cfg.p_blur), uniform(cfg.blur_sigma)
        if hit.any():
            x = it.blur(x, sig * hit)
        hit, m = chosen(cfg.p_brightness), uniform(cfg.brightness)
        if hit.any():
            x = x * torch.from_numpy(np.where(hit, m, 1.0)).float().view(-1, 1, 1, 1)
        hit, f = chosen(cfg.p_contrast), uniform(cfg.contrast)
        if hit.any():
            x = it.contrast(x, np.where(hit, f, 1.0))
        hit, coarse = chosen(cfg.p_bias), rng.standard_normal((c, 4, 4, 4)) * cfg.bias_std
        if hit.any():
            x = it.bias_field(x, torch.from_numpy(coarse * hit[:, None, None, None]).float())
        hit, z = chosen(cfg.p_lowres), uniform(cfg.lowres_zoom)
        if hit.any():
            x = it.low_resolution(x, np.where(hit, z, 1.0))
        thick, axis, n = rng.random() < cfg.p_thick_slices, int(rng.integers(3)), rng.uniform(*cfg.thick_slices)
        if thick:
            x = it.thick_slices(x, axis, int(round(n)))
        for p, inverted in ((cfg.p_gamma_inverted, True), (cfg.p_gamma, False)):
            hit, g = chosen(p), uniform(cfg.gamma)
            if hit.any():
                x = it.gamma(x, np.where(hit, g, 1.0), [inverted] * c)
        return x.contiguous()


def _channels_hit(rng: np.random.Generator, channels: int, p: float, per_channel: bool) -> np.ndarray:
    """``(channels,)`` bool: which channels a transform of chance ``p`` hits (all or none unless
    ``per_channel``); always draws one number per channel, so the stream does not depend on the outcome."""
    hit = rng.random(channels) < p
    return hit if per_channel else np.full(channels, hit[0])


__all__ = ["PatchAugmenter"]
