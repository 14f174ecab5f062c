"""Training-side loading brings every case to the canonical orientation (in memory and through the cache):
a dataset stored in RAS or sagittal order loads to the same arrays as the same dataset stored in LPS."""

import numpy as np
import pytest
from factory import add_synth_maps, make_tiny_task

from ACELib.data.loading import load_datasets
from ACELib.data.preprocessing import Preprocessing
from ACELib.labels import load_task

SHAPE = (9, 12, 10)
RAS = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)
SAGITTAL = (0, 0, -1.0, 1.0, 0, 0, 0, -1.0, 0)  # index x -> posterior, y -> inferior, z -> right


def _load(root, direction, prep, cache):
    task = load_task(make_tiny_task(root, n_anatomy=1, n_lesion=1, n_test=0, shape=SHAPE, direction=direction))
    return load_datasets(task, prep, lambda ds: task.input_modalities, cache_dir=(root / "cache") if cache else None)


def _stored_geometry_as_canonical(direction):
    """Reorient the array that make_tiny_task writes the way loading must: see the factory's subject()."""
    from ACELib.io.image import Geometry
    from ACELib.io.orientation import reorientation

    geom = Geometry(tuple(reversed(SHAPE)), (1.5, 1.2, 2.0), (10.0, -20.0, 5.0), direction)
    return reorientation(geom)


@pytest.mark.parametrize("cache", [False, True], ids=["memory", "cache"])
@pytest.mark.parametrize("direction", [RAS, SAGITTAL], ids=["RAS", "sagittal"])
def test_loaded_cases_are_canonical(tmp_path, direction, cache):
    loaded = _load(tmp_path / "stored", direction, Preprocessing(), cache)
    turn = _stored_geometry_as_canonical(direction)
    for ds in loaded:
        for case in ds.cases:
            np.testing.assert_allclose(np.asarray(case.geometry.direction).reshape(3, 3), np.eye(3), atol=1e-12)
            assert case.geometry.differences(turn.target) == []
            assert case.image.shape[1:] == turn.target.shape


@pytest.mark.parametrize("cache", [False, True], ids=["memory", "cache"])
def test_same_arrays_whatever_the_storage(tmp_path, cache):
    """The factory writes the same array under different headers, i.e. differently oriented heads; the
    canonical arrays are therefore the stored array reoriented, and the targets follow the images."""
    lps = _load(tmp_path / "lps", (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), Preprocessing(), cache)
    ras = _load(tmp_path / "ras", RAS, Preprocessing(), cache)
    turn = _stored_geometry_as_canonical(RAS)
    for a, b in zip(lps, ras):
        for ca, cb in zip(a.cases, b.cases):
            np.testing.assert_allclose(turn.apply(ca.image), cb.image, atol=1e-6)  # float sums in another order
            np.testing.assert_array_equal(turn.apply(ca.target), cb.target)


def test_without_orientation_the_array_is_kept_as_stored(tmp_path):
    loaded = _load(tmp_path / "old", RAS, Preprocessing(orientation=None), cache=False)
    assert loaded[0].cases[0].geometry.direction == RAS


@pytest.mark.parametrize("direction", [RAS, SAGITTAL], ids=["RAS", "sagittal"])
def test_generator_label_maps_are_reoriented_with_their_case(tmp_path, direction):
    """A ``synthTr`` map stored on its case's grid is turned like the label map, not refused."""
    task = load_task(make_tiny_task(tmp_path, n_anatomy=1, n_lesion=1, n_test=0, shape=SHAPE, direction=direction))
    stored = add_synth_maps(task)
    loaded = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities, synth=True)
    turn = _stored_geometry_as_canonical(direction)
    for ds in loaded:
        for case in ds.cases:
            np.testing.assert_array_equal(case.synth, turn.apply(stored[case.name]))
            assert case.synth.shape == case.target.shape
