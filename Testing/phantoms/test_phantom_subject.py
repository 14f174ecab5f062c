"""One phantom subject: labels consistent with images, label maps, reproducibility, scanners."""

from __future__ import annotations

import numpy as np
import pytest

from ACELib.phantoms import (
    BASE_CONTRAST,
    CLASSES,
    LESION_KINDS,
    MODALITIES,
    Scanner,
    draw_scanner,
    make_subject,
    synthesize,
)
from ACELib.phantoms.mri import thick_slices

ALL = ("T1", "T1c", "T2", "FLAIR")


def _means(subject, modality, n_labels):
    joint, image = subject.joint, subject.images[modality]
    return [float(image[joint == v].mean()) for v in range(n_labels)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wmh_subject_intensities_follow_the_labels(template, scanner, seed):
    s = make_subject(template, np.random.default_rng(seed), scanner, lesion="wmh", wmh_load_ml=20.0)
    bg, csf, gm, wm, wmh = _means(s, "FLAIR", 5)
    assert bg < csf < min(gm, wm) and max(gm, wm) < wmh  # FLAIR: lesions bright, CSF dark
    bg, csf, gm, wm, wmh = _means(s, "T1", 5)
    assert bg < csf < gm < wm and wmh < wm  # T1: lesions dark


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tumour_subject_intensities_follow_the_labels(template, scanner, seed):
    s = make_subject(template, np.random.default_rng(seed), scanner, modalities=ALL, lesion="tumor",
                     tumour_radius_mm=20.0)
    joint = s.joint
    assert (joint == 5).any()
    wm = {m: float(s.images[m][joint == 3].mean()) for m in ALL}
    tumour = {m: float(s.images[m][joint == 5].mean()) for m in ALL}
    assert tumour["T1"] < wm["T1"]
    assert tumour["T1c"] > wm["T1c"]  # enhancing tumour
    assert tumour["FLAIR"] > wm["FLAIR"] and tumour["T2"] > wm["T2"]
    if (joint == 4).any():
        assert float(s.images["FLAIR"][joint == 4].mean()) > wm["FLAIR"]
        assert float(s.images["T1"][joint == 4].mean()) < wm["T1"]


@pytest.mark.parametrize(("lesion", "values"), [("none", {0}), ("wmh", {0, 1}), ("tumor", {0, 1, 2})])
def test_label_maps(template, scanner, lesion, values):
    s = make_subject(template, np.random.default_rng(7), scanner, modalities=("T1",), lesion=lesion,
                     wmh_load_ml=15.0, tumour_radius_mm=20.0)
    assert s.tissue.dtype == np.uint8 and s.lesion.dtype == np.uint8
    assert set(np.unique(s.tissue)) == {0, 1, 2, 3}
    assert set(np.unique(s.lesion)) == values
    # the joint map is the tissue map with the lesions on top (WMH/edema 4, tumour 5)
    expected = np.where(s.lesion > 0, s.lesion + 3, s.tissue)
    np.testing.assert_array_equal(s.joint, expected)
    assert s.images["T1"].shape == s.geometry.shape == template.shape


def test_wmh_are_labelled_white_matter_in_the_tissue_map(template, scanner):
    s = make_subject(template, np.random.default_rng(3), scanner, lesion="wmh", wmh_load_ml=10.0)
    assert (s.lesion == 1).any()
    assert np.all(s.tissue[s.lesion == 1] == 3)
    assert s.info["wmh_ml"] == pytest.approx(float((s.lesion == 1).sum()) * template.spacing**3 / 1000)


def test_same_seed_same_subject_other_seed_other_subject(template, scanner):
    def make(seed):
        return make_subject(template, np.random.default_rng(seed), scanner, modalities=ALL, lesion="tumor")

    a, b, c = make(11), make(11), make(12)
    for m in ALL:
        np.testing.assert_array_equal(a.images[m], b.images[m])
    np.testing.assert_array_equal(a.joint, b.joint)
    assert not np.array_equal(a.joint, c.joint)
    assert not np.array_equal(a.images["T1"], c.images["T1"])


def test_stack_orders_channels(template, scanner):
    s = make_subject(template, np.random.default_rng(0), scanner, modalities=("T1", "FLAIR"))
    stacked = s.stack(("FLAIR", "T1"))
    assert stacked.shape == (2, *template.shape) and stacked.dtype == np.float32
    np.testing.assert_array_equal(stacked[0], s.images["FLAIR"])
    with pytest.raises(ValueError, match=r"no \['T2'\] image"):
        s.stack(("T2",))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lesion": "tumour"}, r"lesion must be one of \['none', 'wmh', 'tumor'\]"),
    ({"modalities": ("T1", "PD")}, "modalities must be a non-empty subset"),
    ({"modalities": ()}, "modalities must be a non-empty subset"),
    ({"deformation": -1.0}, "deformation must be >= 0"),
    ({"lesion": "wmh", "wmh_load_ml": -2.0}, "wmh_load_ml must be >= 0"),
    ({"lesion": "tumor", "tumour_radius_mm": 0.0}, "tumour_radius_mm must be > 0"),
])
def test_make_subject_rejects_bad_arguments(template, scanner, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_subject(template, np.random.default_rng(0), scanner, **kwargs)


def test_lesion_kinds_are_documented():
    assert LESION_KINDS == ("none", "wmh", "tumor")
    assert set(BASE_CONTRAST) == set(MODALITIES)


def test_scanners_differ_and_keep_the_contrast_order():
    a = draw_scanner(np.random.default_rng(1), "a")
    b = draw_scanner(np.random.default_rng(2), "b")
    assert a.contrast != b.contrast and a.gain != b.gain
    for scanner in (a, b):
        for m, base in BASE_CONTRAST.items():
            assert list(np.argsort(scanner.contrast[m], kind="stable")) == list(np.argsort(base, kind="stable"))
    assert draw_scanner(np.random.default_rng(1), "a") == a
    with pytest.raises(ValueError, match=r"thick_slice_probability must be in \[0, 1\]"):
        draw_scanner(np.random.default_rng(0), "x", thick_slice_probability=2.0)


def test_synthesize_is_a_partial_volume_mix(template):
    """Without noise, blur, bias or texture, the image is the fraction-weighted mean intensity."""
    quiet = Scanner("quiet", BASE_CONTRAST, gain=1.0, gamma=1.0, blur_voxels=0.0, bias_std=0.0, noise=0.0,
                    jitter=0.0)
    fractions = np.zeros((len(CLASSES), *template.shape), dtype=np.float32)
    fractions[:4] = template.fractions
    texture = np.zeros(template.shape, dtype=np.float32)
    image = synthesize(fractions, template.geometry, quiet, "T1", np.random.default_rng(0), texture)
    expected = np.tensordot(np.asarray(BASE_CONTRAST["T1"], dtype=np.float32), fractions, axes=1)
    np.testing.assert_allclose(image, np.rint(expected), atol=1.0)
    with pytest.raises(ValueError, match="modality must be one of"):
        synthesize(fractions, template.geometry, quiet, "DWI", np.random.default_rng(0))


def test_thick_slices_average_along_z(template):
    geom = template.geometry
    image = np.zeros(geom.shape, dtype=np.float32)
    image[::2] = 1.0  # alternating slices: averaging two slices gives 0.5 everywhere
    thick = thick_slices(image, geom, 2 * geom.spacing[2])
    np.testing.assert_allclose(thick[1:-1], 0.5, atol=1e-6)
    np.testing.assert_array_equal(thick_slices(image, geom, 0.0), image)
