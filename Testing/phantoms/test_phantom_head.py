"""Extracerebral CSF, skull-on heads, the shifted-scanner test set and the generator label maps."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ACELib.labels import load_task
from ACELib.phantoms import make_scenario, make_subject
from ACELib.phantoms.head import add_extracerebral_csf, draw_head_shape
from ACELib.phantoms.mri import CLASSES

TINY_SPACING = 8.0


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_every_subject_has_extracerebral_csf_that_widens_with_atrophy(template, scanner):
    from ACELib.phantoms.anatomy import warp_anatomy
    from ACELib.phantoms.fields import grid_points

    anatomy = warp_anatomy(template, grid_points(template.geometry))
    before = float(anatomy.fractions[1].sum())
    rng = np.random.default_rng(0)
    thin = add_extracerebral_csf(anatomy, rng, draw_head_shape(np.random.default_rng(1), atrophy_mm=0.0))
    wide = add_extracerebral_csf(anatomy, rng, draw_head_shape(np.random.default_rng(1), atrophy_mm=8.0))
    assert before < thin.fractions[1].sum() < wide.fractions[1].sum()  # CSF volume (partial voxels at 8 mm)
    np.testing.assert_allclose(thin.fractions.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(thin.fractions[2:], anatomy.fractions[2:])  # GM and WM are untouched
    with pytest.raises(ValueError, match="atrophy_mm must be >= 0"):
        draw_head_shape(rng, atrophy_mm=-1.0)


def test_skull_on_subject_wraps_the_brain_and_labels_it_background(scanner):
    pytest.importorskip("nilearn")
    from ACELib.phantoms import load_template

    big = load_template(TINY_SPACING, margin_mm=24.0)
    plain = make_subject(big, np.random.default_rng(4), scanner, lesion="none")
    head = make_subject(big, np.random.default_rng(4), scanner, lesion="none", head=True)
    np.testing.assert_array_equal(plain.tissue, head.tissue)  # head tissue is background in every label map
    classes = set(np.unique(head.synth).tolist())
    assert {CLASSES.index("skull"), CLASSES.index("fat")} <= classes
    assert not set(np.unique(plain.synth).tolist()) & {8, 9, 10}
    outside = head.tissue == 0
    assert head.images["T1"][outside].mean() > 2 * plain.images["T1"][outside].mean()  # fat and scalp shine
    assert head.synth.shape == head.tissue.shape and head.synth.dtype == np.uint8


def test_scenario_writes_shifted_test_set_and_generator_maps(tmp_path, template):
    task_file = make_scenario("wmh", tmp_path / "out", spacing=TINY_SPACING, counts=(1, 1, 1), seed=2, shifted=2,
                              head=0.5)
    task = load_task(task_file)
    assert [d.name for d in task.test_datasets] == ["test", "shifted"]
    shifted = task.dataset_path(task.test_datasets[1])
    assert shifted.name == "Dataset004_WMHShifted" and len(list((shifted / "labelsTr").iterdir())) == 2
    for ds in task.datasets:
        root = task.dataset_path(ds)
        for label in (root / "labelsTr").iterdir():
            synth = _read(root / "synthTr" / label.name)
            assert synth.shape == _read(label).shape and synth.max() < len(CLASSES)
    # the shifted scanner is skull-on for every case when heads are asked for
    for label in (shifted / "synthTr").iterdir():
        assert (_read(label) == CLASSES.index("skull")).any()
    with pytest.raises(ValueError, match="shifted must be a non-negative number of cases"):
        make_scenario("wmh", tmp_path / "bad", spacing=TINY_SPACING, counts=(1, 1, 1), shifted=-1)
    with pytest.raises(ValueError, match=r"head must be a probability in \[0, 1\]"):
        make_scenario("wmh", tmp_path / "bad2", spacing=TINY_SPACING, counts=(1, 1, 1), head=2.0)


def test_training_reads_the_generator_maps_for_domain_randomisation(tmp_path, template):
    from ACELib.data.augment import AugmentationConfig
    from ACELib.data.loading import load_datasets
    from ACELib.data.preprocessing import Preprocessing
    from ACELib.data.sampling import BalancedSampler

    task = load_task(make_scenario("wmh", tmp_path / "out", spacing=TINY_SPACING, counts=(1, 2, 1), seed=3))
    datasets = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities)
    assert all(c.synth is not None and c.synth.shape == c.target.shape for d in datasets for c in d.cases)
    sampler = BalancedSampler(datasets, 8, 3, seed=0, augmentation=AugmentationConfig(domain_randomization=1.0))
    batch = sampler.sample()
    assert batch.image.shape == (3, 2, 8, 8, 8) and bool(batch.image.isfinite().all())
