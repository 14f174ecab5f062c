"""Canonical orientation: axis permutations and flips only, identical to SimpleITK's DICOMOrient, exact inverse."""

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from factory import oblique_direction

from ACELib.io.image import Geometry, to_sitk
from ACELib.io.orientation import check_orientation, orientation_code, reorient, reorientation

SIGNED_PERMUTATIONS = [(perm, signs) for perm in itertools.permutations(range(3))
                       for signs in itertools.product((1, -1), repeat=3)]


def storage(perm, signs, oblique: bool) -> Geometry:
    d = np.zeros((3, 3))
    for k in range(3):
        d[perm[k], k] = signs[k]
    if oblique:
        d = np.asarray(oblique_direction((12.0, -8.0, 5.0))).reshape(3, 3) @ d
    return Geometry((5, 6, 7), (1.0, 1.5, 2.0), (3.0, -4.0, 5.0), tuple(d.ravel()))


@pytest.mark.parametrize("oblique", [False, True], ids=["axis-aligned", "oblique"])
@pytest.mark.parametrize(("perm", "signs"), SIGNED_PERMUTATIONS)
def test_matches_dicomorient_and_inverts_exactly(perm, signs, oblique):
    geom = storage(perm, signs, oblique)
    array = np.random.default_rng(0).normal(size=geom.shape).astype(np.float32)
    out, turn = reorient(array, geom, "LPS")
    ref = sitk.DICOMOrient(to_sitk(array, geom), "LPS")
    assert np.array_equal(sitk.GetArrayFromImage(ref), out)
    np.testing.assert_allclose(turn.target.origin, ref.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(turn.target.direction, ref.GetDirection(), atol=1e-12)
    np.testing.assert_allclose(turn.target.spacing, ref.GetSpacing())
    assert np.array_equal(turn.invert(out), array)
    channels = np.stack([array, -array])  # (C, D, H, W) works the same
    assert np.array_equal(turn.invert(turn.apply(channels)), channels)


@pytest.mark.parametrize("code", ["RAS", "ASL", "IPR"])
def test_other_codes_match_dicomorient(code):
    geom = storage((1, 2, 0), (1, -1, 1), oblique=False)
    array = np.arange(np.prod(geom.shape), dtype=np.float32).reshape(geom.shape)
    out, turn = reorient(array, geom, code)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.DICOMOrient(to_sitk(array, geom), code)), out)
    assert orientation_code(turn.target) == code


def test_oblique_header_keeps_its_obliquity_and_voxel_positions():
    geom = storage((2, 0, 1), (-1, 1, -1), oblique=True)
    turn = reorientation(geom)
    d = np.asarray(turn.target.direction).reshape(3, 3)
    np.testing.assert_allclose(d, np.asarray(oblique_direction((12.0, -8.0, 5.0))).reshape(3, 3), atol=1e-12)
    # every voxel centre keeps its physical position: compare the two index-to-physical maps on all voxels
    src = np.stack(np.meshgrid(*[np.arange(n) for n in geom.size], indexing="ij"), -1).reshape(-1, 3)
    marker = np.zeros(geom.shape, np.int64)
    marker[src[:, 2], src[:, 1], src[:, 0]] = np.arange(len(src))
    moved = turn.apply(marker)
    dst = np.stack(np.meshgrid(*[np.arange(n) for n in turn.target.size], indexing="ij"), -1).reshape(-1, 3)
    ids = moved[dst[:, 2], dst[:, 1], dst[:, 0]]
    p_src = (geom.index_to_physical() @ np.c_[src, np.ones(len(src))].T).T[ids, :3]
    p_dst = (turn.target.index_to_physical() @ np.c_[dst, np.ones(len(dst))].T).T[:, :3]
    np.testing.assert_allclose(p_dst, p_src, atol=1e-9)


def test_none_is_the_identity():
    geom = storage((1, 0, 2), (-1, 1, 1), oblique=False)
    turn = reorientation(geom, None)
    assert turn.is_identity and turn.target == geom


@pytest.mark.parametrize(("code", "reason"), [("LP", "two letters"), ("LLS", "L twice"), ("XPS", "unknown letter"),
                                              ("LRS", "L and R"), ("", "empty")])
def test_bad_codes_are_refused(code, reason):
    with pytest.raises(ValueError, match="orientation must be three letters, one of L/R, P/A and S/I each"):
        check_orientation(code)


def test_wrong_array_shape_is_named():
    turn = reorientation(storage((0, 1, 2), (1, 1, -1), oblique=False))
    with pytest.raises(ValueError, match=r"array of shape \(3, 3, 3\) does not end with the grid's shape \(7, 6, 5\)"):
        turn.apply(np.zeros((3, 3, 3)))
