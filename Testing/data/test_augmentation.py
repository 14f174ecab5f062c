"""Patch augmentation: seeded, exact on resume, labels by nearest neighbour, ranges checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ACELib.data.augment import AugmentationConfig, PatchAugmenter
from ACELib.data.augment import intensity as it
from ACELib.data.augment.spatial import SpatialParams, draw_spatial, resample_labels, sampling_grid
from ACELib.data.augment.synthesis import (
    MAX_Z,
    class_gain_field,
    draw_class_gains,
    draw_contrast,
    draw_volume_contrast,
    synthesize_patch,
    volume_statistics,
)
from ACELib.data.loading import LoadedCase, LoadedDataset
from ACELib.data.patches import crop
from ACELib.data.sampling import BalancedSampler

SHAPE = (20, 22, 18)


def _case(seed: int = 0, synth: bool = False) -> LoadedCase:
    rng = np.random.default_rng(seed)
    target = np.zeros(SHAPE, dtype=np.uint8)
    target[4:16, 5:17, 3:15] = 1
    target[7:13, 8:14, 6:12] = 2
    image = np.stack([target * 1.0 + 0.1 * rng.standard_normal(SHAPE), -target * 0.5]).astype(np.float32)
    voxels = {c: np.flatnonzero(target.reshape(-1) == c) for c in (0, 1, 2)}
    return LoadedCase("c", "d", image, target, None, voxels, synth=target.copy() if synth else None)


def _dataset(synth: bool = False) -> list[LoadedDataset]:
    ann = np.ones(3, dtype=bool)
    return [LoadedDataset(None, ("A", "B"), ann, np.eye(3, dtype=bool), [_case(0, synth), _case(1, synth)])]


def test_identity_params_cut_the_plain_patch():
    case = _case()
    grid = sampling_grid(SpatialParams(np.eye(3), None, ()), (8, 8, 8), (11, 11, 11))
    box = crop(case.target, (10, 11, 9), (11, 11, 11), 0)
    np.testing.assert_array_equal(resample_labels(box, grid), crop(case.target, (10, 11, 9), (8, 8, 8), 0))


def test_labels_are_resampled_by_nearest_neighbour_and_keep_their_values():
    rng = np.random.default_rng(3)
    cfg = AugmentationConfig(p_rotation=1.0, p_scale=1.0, p_elastic=1.0)
    case = _case()
    for _ in range(10):
        img, tgt = PatchAugmenter(cfg)(case.image, case.target, (10, 11, 9), (8, 8, 8), rng, case.pad_values)
        assert tgt.dtype == np.uint8 and set(np.unique(tgt)) <= {0, 1, 2}
        assert img.dtype == np.float32 and img.shape == (2, 8, 8, 8)


def test_rotation_by_90_degrees_matches_numpy():
    case = _case()
    params = SpatialParams(np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]), None, ())
    size = (9, 9, 9)
    box_size = params.crop_size(size)
    box = crop(case.target, (10, 11, 9), box_size, 0)
    out = resample_labels(box, sampling_grid(params, size, box_size))
    plain = crop(case.target, (10, 11, 9), size, 0)
    assert any(np.array_equal(out, np.rot90(plain, k, axes=(1, 2))) for k in (1, 3))


def test_mirroring_flips_image_and_labels_together():
    cfg = AugmentationConfig.off()
    cfg = AugmentationConfig(**{**cfg.to_dict(), "enabled": True, "p_rotation": 0, "p_scale": 0, "p_elastic": 0,
                                "p_mirror": 1.0, "p_noise": 0, "p_blur": 0, "p_brightness": 0, "p_contrast": 0,
                                "p_bias": 0, "p_lowres": 0, "p_thick_slices": 0, "p_gamma": 0,
                                "p_gamma_inverted": 0, "mirror_axes": (2,)})
    case = _case()
    img, tgt = PatchAugmenter(cfg)(case.image, case.target, (10, 11, 9), (8, 8, 8), np.random.default_rng(0),
                                   case.pad_values)
    plain_img, plain_tgt = crop(case.image, (10, 11, 9), (8, 8, 8), case.pad_values), crop(case.target, (10, 11, 9), (8, 8, 8), 0)
    np.testing.assert_array_equal(tgt, plain_tgt[:, :, ::-1])
    np.testing.assert_array_equal(img, plain_img[:, :, :, ::-1])


def test_same_seed_same_batches_other_seed_other_batches():
    cfg = AugmentationConfig()
    a = BalancedSampler(_dataset(), 8, 3, seed=4, augmentation=cfg)
    b = BalancedSampler(_dataset(), 8, 3, seed=4, augmentation=cfg)
    c = BalancedSampler(_dataset(), 8, 3, seed=5, augmentation=cfg)
    for _ in range(3):
        x, y, z = a.sample(), b.sample(), c.sample()
        assert torch.equal(x.image, y.image) and torch.equal(x.target, y.target)
    assert not torch.equal(x.image, z.image)


def test_augmented_stream_resumes_exactly_from_state_and_by_skipping():
    cfg = AugmentationConfig()
    full = BalancedSampler(_dataset(), 8, 2, seed=1, augmentation=cfg)
    batches = [full.sample() for _ in range(5)]
    restored = BalancedSampler(_dataset(), 8, 2, seed=1, augmentation=cfg)
    first = BalancedSampler(_dataset(), 8, 2, seed=1, augmentation=cfg)
    for _ in range(3):
        first.sample()
    restored.set_state(first.get_state())
    skipped = BalancedSampler(_dataset(), 8, 2, seed=1, augmentation=cfg)
    skipped.skip(3)
    for k in (3, 4):
        r, s = restored.sample(), skipped.sample()
        assert torch.equal(r.image, batches[k].image) and torch.equal(s.image, batches[k].image)
        assert torch.equal(r.target, batches[k].target) and torch.equal(s.target, batches[k].target)


def test_without_augmentation_the_stream_is_the_plain_one():
    plain = BalancedSampler(_dataset(), 8, 2, seed=1)
    off = BalancedSampler(_dataset(), 8, 2, seed=1, augmentation=AugmentationConfig.off())
    assert torch.equal(plain.sample().image, off.sample().image)


@pytest.mark.parametrize("kwargs, match", [
    ({"p_noise": 1.5}, "p_noise must be a probability"),
    ({"scale": (1.2, 0.8)}, "scale must be a range"),
    ({"lowres_zoom": (0.5, 2.0)}, "lowres_zoom in"),
    ({"mirror_axes": (3,)}, "mirror_axes must be distinct"),
    ({"rotation_deg": -1.0}, "rotation_deg must be >= 0"),
    ({"domain_randomization": -0.1}, "domain_randomization must be a probability"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentationConfig(**kwargs)


def test_config_round_trips_through_a_dict():
    cfg = AugmentationConfig(domain_randomization=0.5, mirror_axes=(0, 2))
    assert AugmentationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown augmentation settings"):
        AugmentationConfig.from_dict({"p_nosie": 0.1})


def test_intensity_transforms_keep_shape_and_stay_finite():
    x = torch.randn(2, 10, 11, 12)
    for y in (it.blur(x, [0.8, 0.0]), it.contrast(x, [1.2, 0.8]), it.gamma(x, [0.7, 1.4], [False, True]),
              it.low_resolution(x, [0.5, 1.0]), it.thick_slices(x, 0, 3),
              it.bias_field(x, torch.randn(2, 4, 4, 4) * 0.3)):
        assert y.shape == x.shape and torch.isfinite(y).all()
    np.testing.assert_allclose(it.blur(x, [0.0, 0.0]), x)
    g = it.gamma(x, [1.3, 1.3], [False, False])
    np.testing.assert_allclose(g.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-4)  # nnU-Net's retain_stats
    assert abs(float(it.gaussian_kernel(1.0).sum()) - 1.0) < 1e-6


def test_spatial_draws_respect_probabilities():
    rng = np.random.default_rng(0)
    never = AugmentationConfig(p_rotation=0, p_scale=0, p_elastic=0, p_mirror=0)
    assert not any(draw_spatial(rng, never).resamples for _ in range(20))
    always = AugmentationConfig(p_rotation=1, p_scale=1, p_elastic=1)
    assert all(draw_spatial(rng, always).resamples for _ in range(5))


def test_domain_randomisation_draws_new_contrasts_normalised_like_the_volume():
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[2:10, 2:10, 2:10] = 2
    labels[4:8, 4:8, 4:8] = 3
    counts = np.bincount(labels.reshape(-1), minlength=5).astype(np.int64)
    a = synthesize_patch(labels, counts, 2, np.random.default_rng(0))
    b = synthesize_patch(labels, counts, 2, np.random.default_rng(1))
    assert a.shape == (2, 12, 12, 12) and np.isfinite(a).all()
    assert not np.allclose(a, b)
    means, stds = draw_contrast(np.random.default_rng(2), 8)
    assert abs(means[4] - means[3]) >= 0.12  # a lesion never blends into its white matter
    mean, std = volume_statistics(np.array([0.0, 0.5, 1.0]), np.zeros(3), np.array([10, 10, 10]))
    assert mean == pytest.approx(0.75) and std == pytest.approx(0.25)


def test_synthesised_volumes_stay_in_the_range_of_real_normalised_scans():
    # a brain-like case: background, CSF, GM, WM, a lesion, three head classes
    counts = np.array([500_000, 20_000, 60_000, 50_000, 3_000, 0, 0, 0, 80_000, 30_000, 20_000])
    rng = np.random.default_rng(0)
    spreads = []
    for _ in range(3000):
        means, stds, mean, std = draw_volume_contrast(rng, counts)
        spreads.append(np.abs(means[counts > 0] - mean).max() / std)
        raw_mean, raw_std = volume_statistics(means, stds, counts)
        assert mean == raw_mean and std >= raw_std
    assert max(spreads) <= MAX_Z + 1e-9
    # without the redraw, some draws lie far outside (the failure this guards against)
    rng = np.random.default_rng(0)
    raw = []
    for _ in range(3000):
        means, stds = draw_contrast(rng, counts.shape[0])
        mean, std = volume_statistics(means, stds, counts)
        raw.append(np.abs(means[counts > 0] - mean).max() / std)
    assert max(raw) > 2 * MAX_Z


def test_a_contrast_without_foreground_contrast_is_widened_not_kept():
    counts = np.array([1000, 10, 10])

    class Flat:  # every draw: background 0, both brain classes at 0.5 with no noise
        def uniform(self, lo, hi, size=None):  # means 0.5, spreads 0, background 0
            return np.full(size, 0.5 if hi == 1.0 else 0.0) if size is not None else 0.0

        def random(self):
            return 1.0

    means, stds, mean, std = draw_volume_contrast(Flat(), counts, tries=3)
    assert np.abs(means[counts > 0] - mean).max() / std == pytest.approx(MAX_Z)


def test_sampler_refuses_domain_randomisation_without_label_maps():
    with pytest.raises(ValueError, match="domain randomisation and class gains need a generator label map"):
        BalancedSampler(_dataset(synth=False), 8, 2, augmentation=AugmentationConfig(domain_randomization=0.5))
    s = BalancedSampler(_dataset(synth=True), 8, 2, augmentation=AugmentationConfig(domain_randomization=1.0))
    assert torch.isfinite(s.sample().image).all()


def test_intensity_curve_keeps_order_and_statistics_and_changes_relative_contrast():
    # three tissues at 0.3, 0.65 and 0.95 (CSF, GM, WM in T1): a curve changes the GM/WM gap
    # relative to the CSF/GM gap, keeps their order, the channel's mean and std, and leaves channel 1
    x = torch.tensor([0.3, 0.65, 0.95]).repeat_interleave(200).reshape(1, 6, 10, 10).repeat(2, 1, 1, 1)
    knots = it.monotone_curve([3.0, 1.0, 1.0, 1.0, 1.0])
    y = it.intensity_curve(x, [knots, None])
    assert torch.equal(y[1], x[1])
    csf, gm, wm = (float(y[0].flatten()[k * 200]) for k in range(3))
    assert csf < gm < wm
    assert abs((wm - gm) / (gm - csf) - (0.95 - 0.65) / (0.65 - 0.3)) > 0.2
    np.testing.assert_allclose([float(y[0].mean()), float(y[0].std())], [float(x[0].mean()), float(x[0].std())],
                               rtol=1e-4)
    straight = it.intensity_curve(x, [it.monotone_curve([1.0] * 5), None])
    np.testing.assert_allclose(straight, x, atol=1e-5)
    with pytest.raises(ValueError, match="positive numbers"):
        it.monotone_curve([1.0, 0.0])


def test_intensity_curve_is_off_by_default_and_seeded_when_on():
    case = _case()
    plain = PatchAugmenter(AugmentationConfig())
    on = PatchAugmenter(AugmentationConfig(p_curve=1.0))
    args = (case.image, case.target, (10, 11, 9), (8, 8, 8))
    a = plain(*args, np.random.default_rng(3), case.pad_values)
    b = on(*args, np.random.default_rng(3), case.pad_values)
    c = on(*args, np.random.default_rng(3), case.pad_values)
    assert np.array_equal(b[0], c[0]) and np.array_equal(b[1], c[1])
    assert np.array_equal(a[1], b[1])  # labels untouched
    # a straight curve (strength 0) draws the same numbers: the difference is the curve itself
    straight = PatchAugmenter(AugmentationConfig(p_curve=1.0, curve_strength=0.0))
    s = straight(*args, np.random.default_rng(3), case.pad_values)
    assert np.array_equal(s[1], b[1]) and not np.allclose(s[0], b[0], atol=1e-3)
    assert not np.allclose(a[0], b[0])
    # off (the default) draws nothing: a config saved before the option produces the same stream
    assert AugmentationConfig().p_curve == 0.0
    with pytest.raises(ValueError, match="p_curve must be a probability"):
        AugmentationConfig(p_curve=2.0)
    with pytest.raises(ValueError, match="curve_strength must be >= 0"):
        AugmentationConfig(curve_strength=-1.0)


def test_class_gains_keep_the_brain_brightness_and_tie_lesions_to_white_matter():
    counts = np.array([100, 10, 30, 20, 5, 0, 0, 0])
    g = draw_class_gains(np.random.default_rng(0), 2, counts, 0.3)
    assert g.shape == (2, 8) and (g > 0).all()
    np.testing.assert_allclose(g[:, 0], 1.0)  # air stays air
    np.testing.assert_allclose(g[:, 4:8], np.repeat(g[:, 3:4], 4, axis=1))  # lesions move with WM
    np.testing.assert_allclose(g[:, 1:] @ counts[1:] / counts[1:].sum(), 1.0)  # the brain's mean factor
    assert not np.allclose(g[0, 1:4], g[1, 1:4])  # each channel its own contrast
    flat = draw_class_gains(np.random.default_rng(0), 1, counts, 0.0)
    np.testing.assert_allclose(flat, 1.0)


def test_class_gain_field_follows_the_labels_and_is_smooth_at_borders():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[:, :, 5:] = 1
    gains = np.array([[1.0, 3.0]])
    f = class_gain_field(labels, gains, sigma=1.0)
    assert f.shape == (1, 10, 10, 10)
    np.testing.assert_allclose(f[0, :, :, 0], 1.0, atol=1e-3)
    np.testing.assert_allclose(f[0, :, :, 9], 3.0, atol=1e-3)
    assert 1.2 < float(f[0, 5, 5, 4]) < 2.8 and 1.2 < float(f[0, 5, 5, 5]) < 2.8  # partial volume
    with pytest.raises(ValueError, match="gains cover only 2 classes"):
        class_gain_field(labels + 1, gains)


def test_class_gains_change_tissue_contrast_on_the_image_itself_and_leave_labels():
    case = _case(synth=True)
    quiet = {k: 0.0 for k in ("p_rotation", "p_scale", "p_elastic", "p_mirror", "p_noise", "p_blur",
                              "p_brightness", "p_contrast", "p_bias", "p_lowres", "p_thick_slices",
                              "p_gamma", "p_gamma_inverted")}
    args = (case.image, case.target, (10, 11, 9), (12, 12, 12))
    plain = PatchAugmenter(AugmentationConfig(**quiet))(*args, np.random.default_rng(3), case.pad_values,
                                                        case.synth, case.synth_counts)
    on = PatchAugmenter(AugmentationConfig(**quiet, p_class_gain=1.0, class_gain_std=0.5))
    a = on(*args, np.random.default_rng(3), case.pad_values, case.synth, case.synth_counts)
    b = on(*args, np.random.default_rng(3), case.pad_values, case.synth, case.synth_counts)
    assert np.array_equal(a[0], b[0])  # seeded
    assert np.array_equal(a[1], plain[1])  # labels untouched
    inner = a[1] == 2
    ratio = (a[0][0][inner].mean() - case.pad_values[0]) / (plain[0][0][inner].mean() - case.pad_values[0])
    outer = a[1] == 1
    ratio_outer = (a[0][0][outer].mean() - case.pad_values[0]) / (plain[0][0][outer].mean() - case.pad_values[0])
    assert abs(ratio - ratio_outer) > 0.05  # the two tissues moved apart or together
    # no label map: the sampler refuses; off (the default) draws nothing
    assert AugmentationConfig().p_class_gain == 0.0 and not AugmentationConfig().uses_label_maps
    assert AugmentationConfig(p_class_gain=0.5).uses_label_maps
    with pytest.raises(ValueError, match="class gains need a generator label map"):
        BalancedSampler(_dataset(synth=False), 8, 2, augmentation=AugmentationConfig(p_class_gain=0.5))
    s = BalancedSampler(_dataset(synth=True), 8, 2, seed=1, augmentation=AugmentationConfig(p_class_gain=1.0))
    t = BalancedSampler(_dataset(synth=True), 8, 2, seed=1, augmentation=AugmentationConfig())
    assert not torch.equal(s.sample().image, t.sample().image)
    with pytest.raises(ValueError, match="p_class_gain must be a probability"):
        AugmentationConfig(p_class_gain=1.5)
    with pytest.raises(ValueError, match="class_gain_std must be >= 0"):
        AugmentationConfig(class_gain_std=-0.1)
