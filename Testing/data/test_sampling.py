from collections import Counter

import numpy as np
import pytest
from factory import make_tiny_task

from ACELib.data.loading import load_datasets, split_validation
from ACELib.data.preprocessing import Preprocessing, normalize_intensities
from ACELib.data.sampling import BalancedSampler, extract_patch
from ACELib.labels import load_task


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    task = load_task(make_tiny_task(tmp_path_factory.mktemp("d"), n_anatomy=2, n_lesion=3, n_test=0,
                                    shape=(14, 16, 15)))
    return task, load_datasets(task, Preprocessing(), lambda ds: task.input_modalities)


def test_loading_converts_to_joint_and_indexes_classes(loaded):
    task, datasets = loaded
    anatomy, lesion = datasets
    assert anatomy.classes == [0, 1, 2, 3] and lesion.classes == [0, 4]
    case = lesion.cases[0]
    assert case.image.shape == (2, 14, 16, 15) and case.target.dtype == np.uint8
    flat = case.target.reshape(-1)
    assert np.all(flat[case.class_voxels[4]] == 4)
    assert lesion.annotated.tolist() == [True, False, False, False, True]


def test_balanced_draws(loaded):
    _, datasets = loaded
    sampler = BalancedSampler(datasets, patch_size=8, batch_size=7, seed=1)
    draws = [sampler.draw() for _ in range(4000)]
    per_ds = Counter(k for k, _, _ in draws)
    assert abs(per_ds[0] / 4000 - 0.5) < 0.03
    # within the lesion dataset, background and lesion centres are equally likely
    centres = Counter(int(c.target[v]) for k, c, v in draws if k == 1)
    assert abs(centres[4] / sum(centres.values()) - 0.5) < 0.04
    anat = Counter(int(c.target[v]) for k, c, v in draws if k == 0)
    assert all(abs(n / sum(anat.values()) - 0.25) < 0.04 for n in anat.values())


def test_batch_shapes_and_reproducible(loaded):
    _, datasets = loaded
    a = BalancedSampler(datasets, patch_size=(8, 6, 10), batch_size=3, seed=5)
    b = BalancedSampler(datasets, patch_size=(8, 6, 10), batch_size=3, seed=5)
    x, y = a.sample(), b.sample()
    assert x.image.shape == (3, 2, 8, 6, 10) and x.target.shape == (3, 8, 6, 10)
    assert x.annotated.shape == (3, 5) and x.candidates.shape == (3, 5, 5)
    assert (x.image == y.image).all() and (x.target == y.target).all()
    state = a.get_state()
    first = a.sample()
    a.set_state(state)
    assert (a.sample().image == first.image).all()


def test_patch_padding_at_border(loaded):
    _, datasets = loaded
    case = datasets[0].cases[0]
    img, tgt = extract_patch(case, (0, 0, 0), (6, 6, 6))
    assert img.shape == (2, 6, 6, 6) and tgt.shape == (6, 6, 6)
    assert np.array_equal(img[:, 3:, 3:, 3:], case.image[:, :3, :3, :3])
    assert (tgt[:3] == 0).all()
    assert np.allclose(img[:, 0, 0, 0], case.image.reshape(2, -1).min(1))


def test_validation_split(loaded):
    _, datasets = loaded
    train, val = split_validation(datasets, 0.34, seed=0)
    assert [len(d.cases) for d in val] == [1, 1] and [len(d.cases) for d in train] == [1, 2]
    with pytest.raises(ValueError, match=r"validation fraction must be in \[0, 1\), got 1.5"):
        split_validation(datasets, 1.5)


def test_sampler_bad_inputs(loaded):
    _, datasets = loaded
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        BalancedSampler(datasets, batch_size=0)
    with pytest.raises(ValueError, match="patch_size must be a positive int"):
        BalancedSampler(datasets, patch_size=(8, 8))


def test_zscore_over_foreground():
    rng = np.random.default_rng(0)
    img = np.zeros((1, 10, 10, 10), np.float32)
    img[0, 2:8, 2:8, 2:8] = rng.normal(100, 10, (6, 6, 6))
    out = normalize_intensities(img)
    fg = out[0, 2:8, 2:8, 2:8]
    assert abs(fg.mean()) < 1e-4 and abs(fg.std() - 1) < 1e-3
    with pytest.raises(ValueError, match="NaN or Inf"):
        normalize_intensities(np.full((1, 2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="normalization must be one of"):
        Preprocessing(normalization="minmax")
