"""Subject anatomy and lesions: deformation, ventricles, mass effect, WMH placement, tumour and edema."""

from __future__ import annotations

import numpy as np
import pytest

from ACELib.phantoms.anatomy import (
    CSF,
    GM,
    WM,
    distance_mm,
    mass_effect,
    random_deformation,
    source_points,
    warp_anatomy,
)
from ACELib.phantoms.lesions import edema_mask, pick_tumour_centre, tumour_core, wmh_mask


def _anatomy(template, seed=0, **kwargs):
    deform = random_deformation(np.random.default_rng(seed), template, **kwargs)
    return warp_anatomy(template, source_points(template, deform))


def test_no_deformation_gives_the_template(template):
    anatomy = _anatomy(template, rotation_deg=0, scale=0, translation_mm=0, warp_mm=0)
    np.testing.assert_allclose(anatomy.fractions, template.fractions, atol=1e-4)
    np.testing.assert_array_equal(anatomy.tissue, template.tissue_labels())


def test_subjects_differ_and_fractions_stay_a_partition(template):
    a, b = _anatomy(template, 1), _anatomy(template, 2)
    assert not np.array_equal(a.tissue, b.tissue)
    for anatomy in (a, b):
        assert anatomy.fractions.min() >= 0
        np.testing.assert_allclose(anatomy.fractions.sum(axis=0), 1.0, atol=1e-5)
        assert np.all(anatomy.tissue[anatomy.ventricles] == CSF)


def test_ventricle_enlargement_grows_the_ventricles(template):
    still = dict(rotation_deg=0, scale=0, translation_mm=0, warp_mm=0)
    volumes = [_anatomy(template, 0, enlargement_mm=e, **still).fractions[CSF].sum() for e in (0.0, 3.0, 6.0)]
    assert volumes[0] < volumes[1] < volumes[2]


@pytest.mark.parametrize(("name", "value"), [("warp_mm", -1.0), ("enlargement_mm", -0.5), ("scale", -0.1)])
def test_random_deformation_rejects_negative_sizes(template, name, value):
    with pytest.raises(ValueError, match=f"{name} must be >= 0"):
        random_deformation(np.random.default_rng(0), template, **{name: value})


def test_mass_effect_reads_closer_to_the_centre_and_leaves_far_points():
    rng = np.random.default_rng(0)
    centre = np.array([10.0, -5.0, 3.0])
    pts = (centre[:, None] + rng.normal(0, 30, (3, 200))).astype(np.float32)
    moved = mass_effect(pts, centre, radius_mm=10.0, strength=0.5)
    before = np.linalg.norm(pts - centre[:, None], axis=0)
    after = np.linalg.norm(moved - centre[:, None], axis=0)
    assert np.all(after <= before + 1e-4)
    far = before > 80
    np.testing.assert_allclose(moved[:, far], pts[:, far], atol=1e-3)
    # one-to-one along a ray: the read radius grows with the radius
    ray = (centre[:, None] + np.outer([1.0, 0.0, 0.0], np.linspace(0, 60, 200))).astype(np.float32)
    assert np.all(np.diff(mass_effect(ray, centre, 10.0, 0.9)[0]) > 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"radius_mm": 10.0, "strength": 1.0}, r"strength must be in \[0, 1\)"),
    ({"radius_mm": 0.0, "strength": 0.5}, "radius_mm must be > 0"),
])
def test_mass_effect_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mass_effect(np.zeros((3, 4), dtype=np.float32), (0.0, 0.0, 0.0), **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wmh_are_white_matter_near_the_ventricles_with_the_requested_load(template, seed):
    anatomy = _anatomy(template, seed, enlargement_mm=2.0)
    rng = np.random.default_rng(seed)
    mask = wmh_mask(rng, anatomy, load_ml=20.0)
    assert np.all(anatomy.tissue[mask] == WM)
    assert float(mask.sum()) * anatomy.voxel_ml == pytest.approx(20.0, abs=2 * anatomy.voxel_ml + 1.0)
    dist = distance_mm(anatomy.ventricles, anatomy.geometry)
    assert dist[mask].mean() < dist[anatomy.tissue == WM].mean()


def test_wmh_load_controls_the_volume(template):
    anatomy = _anatomy(template, 4)
    sizes = [int(wmh_mask(np.random.default_rng(0), anatomy, load).sum()) for load in (0.0, 5.0, 40.0)]
    assert sizes[0] == 0 and 0 < sizes[1] < sizes[2]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"load_ml": -1.0}, "load_ml must be >= 0"),
    ({"load_ml": 1.0, "periventricular_share": 1.5}, r"periventricular_share must be in \[0, 1\]"),
])
def test_wmh_mask_rejects_bad_arguments(template, kwargs, match):
    with pytest.raises(ValueError, match=match):
        wmh_mask(np.random.default_rng(0), _anatomy(template), **kwargs)


def test_tumour_core_and_edema(template):
    """The edema surrounds the core on GM/WM only and favours white matter far beyond its share."""
    edema_tissue = np.zeros(4, dtype=int)
    for seed in range(4):
        anatomy = _anatomy(template, seed)
        rng = np.random.default_rng(seed)
        z, y, x = pick_tumour_centre(rng, anatomy.tissue, anatomy.geometry, 20.0)
        assert anatomy.tissue[z, y, x] == WM
        centre = np.asarray(anatomy.geometry.origin) + np.asarray(anatomy.geometry.spacing) * [x, y, z]
        core, necrosis = tumour_core(rng, anatomy, centre, 20.0, necrosis_fraction=0.5)
        assert core[z, y, x] and np.all(core[necrosis]) and np.all(anatomy.tissue[core] > 0)
        edema = edema_mask(rng, anatomy, core, extent_mm=30.0)
        assert not np.any(edema & core)
        assert set(np.unique(anatomy.tissue[edema])) <= {GM, WM}
        edema_tissue += np.bincount(anatomy.tissue[edema], minlength=4)
    brain_wm_share = (template.tissue_labels() == WM).sum() / np.isin(template.tissue_labels(), (GM, WM)).sum()
    assert edema_tissue.sum() > 0
    assert edema_tissue[WM] / edema_tissue.sum() > max(0.6, 1.5 * brain_wm_share)


def test_no_edema_without_extent(template):
    anatomy = _anatomy(template)
    core = np.zeros(anatomy.tissue.shape, dtype=bool)
    core[12, 16, 12] = True
    assert not edema_mask(np.random.default_rng(0), anatomy, core, 0.0).any()
    with pytest.raises(ValueError, match="extent_mm must be >= 0"):
        edema_mask(np.random.default_rng(0), anatomy, core, -1.0)


def test_tumour_needs_white_matter(template):
    with pytest.raises(ValueError, match="no white matter"):
        pick_tumour_centre(np.random.default_rng(0), np.zeros(template.shape, np.uint8), template.geometry, 10.0)
