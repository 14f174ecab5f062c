"""Dice, HD95 and AVD of binary masks: hand-computed fixtures, edge cases, a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ACELib.metrics import absolute_volume_difference, dice, hd95, mask_counts, surface


def box(shape=(10, 10, 10), z=(2, 6), y=(2, 6), x=(2, 6)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[z[0] : z[1], y[0] : y[1], x[0] : x[1]] = True
    return m


DICE_CASES = [
    # 4^3 = 64 voxels each; shifted by 2 along x -> overlap 4*4*2 = 32 -> 2*32 / 128
    (box(), box(x=(4, 8)), 0.5),
    # 4^3 inside 4*4*6: overlap 64 -> 2*64 / (64 + 96)
    (box(), box(x=(2, 8)), 2 * 64 / 160),
    (box(), box(x=(6, 10)), 0.0),
    (box(), box(), 1.0),
]


@pytest.mark.parametrize("pred, gt, expected", DICE_CASES)
def test_dice_hand_computed(pred, gt, expected):
    assert dice(pred, gt) == pytest.approx(expected, abs=1e-12)
    assert dice(gt, pred) == pytest.approx(expected, abs=1e-12)


def test_counts_and_integer_masks():
    c = mask_counts(box().astype(np.uint8) * 3, box(x=(4, 8)).astype(np.int16))
    assert (c.tp, c.fp, c.fn, c.n_pred, c.n_ref) == (32, 32, 32, 64, 64)


HD_CASES = [
    # (pred, gt, spacing (x, y, z), expected HD95 in mm)
    # one voxel shift along x (array axis 2) at 2 mm: x-faces are 2 mm apart, side faces coincide
    (box(), box(x=(3, 7)), (2.0, 1.0, 1.0), 2.0),
    # the same shift along y (array axis 1) is measured with the y spacing
    (box(), box(y=(3, 7)), (2.0, 1.0, 1.0), 1.0),
    (box(), box(z=(3, 7)), (1.0, 1.0, 3.0), 3.0),
    # single voxels offset by (x, y, z) = (1, 2, 3) voxels at spacing (0.5, 1.5, 2.0)
    (box(z=(1, 2), y=(1, 2), x=(1, 2)), box(z=(4, 5), y=(3, 4), x=(2, 3)), (0.5, 1.5, 2.0),
     math.sqrt(0.5**2 + 3.0**2 + 6.0**2)),
    (box(), box(), (0.7, 0.9, 3.0), 0.0),
]


@pytest.mark.parametrize("pred, gt, spacing, expected", HD_CASES)
def test_hd95_hand_computed(pred, gt, spacing, expected):
    assert hd95(pred, gt, spacing) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert hd95(gt, pred, spacing) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def _brute_force_hd95(p, g, spacing):
    scale = np.array(spacing[::-1])  # (x, y, z) spacing -> array axes (z, y, x)
    sp, sg = np.argwhere(surface(p)) * scale, np.argwhere(surface(g)) * scale
    d = np.sqrt(((sp[:, None, :] - sg[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


@pytest.mark.parametrize("seed, shape, spacing", [(0, (9, 11, 13), (1.0, 1.0, 1.0)),
                                                  (1, (12, 7, 10), (0.7, 1.3, 2.1)),
                                                  (2, (5, 17, 8), (3.0, 0.5, 1.0))])
def test_hd95_matches_brute_force_on_random_masks(seed, shape, spacing):
    rng = np.random.default_rng(seed)
    p, g = rng.random(shape) > 0.8, rng.random(shape) > 0.85
    p[:, :2] = False  # leave part of the bounding box to one mask only
    assert hd95(p, g, spacing) == pytest.approx(_brute_force_hd95(p, g, spacing), rel=1e-5)


def test_surface_counts_image_border_as_outside():
    assert surface(box()).sum() == 64 - 8  # 4^3 box minus its 2^3 interior
    full = np.ones((3, 3, 3), dtype=bool)
    assert surface(full).sum() == 26  # only the centre is interior
    # a mask cut by the image border still has a surface there
    assert hd95(full, full, (1, 1, 1)) == 0.0


AVD_CASES = [
    (box(x=(2, 8)), box(), 50.0),  # 96 vs 64 voxels
    (box(x=(2, 5)), box(), 25.0),  # 48 vs 64
    (box(x=(6, 10)), box(), 0.0),  # same volume, no overlap: AVD is blind to position
]


@pytest.mark.parametrize("pred, gt, expected", AVD_CASES)
def test_absolute_volume_difference(pred, gt, expected):
    assert absolute_volume_difference(pred, gt, (0.5, 2.0, 1.5)) == pytest.approx(expected)


EMPTY = np.zeros((6, 7, 8), dtype=bool)
SOME = box((6, 7, 8), (1, 3), (1, 4), (2, 6))
EDGE_CASES = [
    # (pred, gt, dice, hd95, avd) -- the policy of ACELib.metrics.masks
    (EMPTY, EMPTY, 1.0, 0.0, 0.0),
    (SOME, EMPTY, 0.0, math.inf, math.inf),
    (EMPTY, SOME, 0.0, math.inf, 100.0),
    (SOME, SOME, 1.0, 0.0, 0.0),  # perfect prediction
]


@pytest.mark.parametrize("pred, gt, d, h, a", EDGE_CASES)
def test_edge_case_policy(pred, gt, d, h, a):
    assert dice(pred, gt) == d
    assert hd95(pred, gt, (1.0, 2.0, 3.0)) == h
    assert absolute_volume_difference(pred, gt) == a


BAD = [
    (lambda: dice(np.zeros((3, 3, 3)), np.zeros((3, 3, 4))), ValueError, r"pred_mask has shape \(3, 3, 3\), gt_mask has shape \(3, 3, 4\)"),
    (lambda: hd95(np.zeros((3, 3)), np.zeros((3, 3))), ValueError, r"hd95 needs 3D masks \(D, H, W\), got shape \(3, 3\)"),
    (lambda: hd95(SOME, SOME, (1.0, 1.0)), ValueError, r"spacing must be three positive numbers \(x, y, z\)"),
    (lambda: hd95(SOME, SOME, (1.0, 0.0, 1.0)), ValueError, r"spacing must be three positive numbers"),
    (lambda: absolute_volume_difference(SOME, SOME, "abc"), ValueError, r"spacing must be three positive numbers"),
    (lambda: dice(np.array(["a"]), np.array(["b"])), TypeError, r"pred_mask must be a boolean or numeric mask"),
]


@pytest.mark.parametrize("call, error, message", BAD)
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()
