"""The preprocessed case cache (built once, reused, invalidated) and parallel sampling workers."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from factory import add_synth_maps, make_tiny_task

from ACELib.data import cache
from ACELib.data.cache import build_cache, cache_key, cached_case, entry_dir, open_entry
from ACELib.data.contract import list_cases, read_dataset_info, write_case
from ACELib.data.loading import load_datasets
from ACELib.data.preprocessing import Preprocessing
from ACELib.data.sampling import BalancedSampler, SamplerStream, stream_seed
from ACELib.labels import load_task

SHAPE = (13, 15, 11)


@pytest.fixture
def task(tmp_path):
    return load_task(make_tiny_task(tmp_path / "data", n_anatomy=2, n_lesion=2, n_test=0, shape=SHAPE))


@pytest.fixture
def builds(monkeypatch):
    """Count entry builds."""
    calls = []
    real = cache.build_entry

    def counting(*args, **kw):
        calls.append(args[2].name)
        return real(*args, **kw)

    monkeypatch.setattr(cache, "build_entry", counting)
    return calls


def _load(task, root, prep=None, mods=None):
    return load_datasets(task, prep or Preprocessing(), lambda ds: mods or task.input_modalities, cache_dir=root)


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in sorted(root.rglob("*.npy"))}


def test_cache_equals_in_memory_and_is_memory_mapped(task, tmp_path):
    ref = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities)
    got = _load(task, tmp_path / "cache")
    assert [len(d.cases) for d in got] == [2, 2]
    for a, b in zip(ref, got):
        assert a.classes == b.classes
        for ca, cb in zip(a.cases, b.cases):
            assert isinstance(cb.image, np.memmap) and isinstance(cb.target, np.memmap)
            assert cb.image.dtype == np.float32 and cb.image.shape == (2, *SHAPE) and cb.target.dtype == np.uint8
            assert np.array_equal(ca.image, cb.image) and np.array_equal(ca.target, cb.target)
            assert ca.geometry == cb.geometry and np.array_equal(ca.pad_values, cb.pad_values)
            assert sorted(ca.class_voxels) == sorted(cb.class_voxels)
            assert all(np.array_equal(ca.class_voxels[k], cb.class_voxels[k]) for k in ca.class_voxels)
    # the same seed draws the same batches from either
    x = BalancedSampler(ref, patch_size=(5, 7, 6), batch_size=3, seed=4).sample()
    y = BalancedSampler(got, patch_size=(5, 7, 6), batch_size=3, seed=4).sample()
    assert torch.equal(x.image, y.image) and torch.equal(x.target, y.target)


def test_second_load_reuses_every_entry(task, tmp_path, builds):
    root = tmp_path / "cache"
    _load(task, root)
    assert len(builds) == 4
    before = _mtimes(root)
    _load(task, root)
    assert len(builds) == 4 and _mtimes(root) == before
    # no temporary folders left behind
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]


def _rewrite_first_lesion_image(task, scale):
    folder = task.dataset_path(task.dataset("lesion"))
    case = list_cases(folder, read_dataset_info(folder))[0]
    image, label, geom = case.read()
    write_case(folder, case.name, image * scale, geom, label, overwrite=True)
    st = os.stat(case.image_paths[0])  # make the change visible even on coarse-mtime filesystems
    os.utime(case.image_paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    return case.name


@pytest.mark.parametrize("change, rebuilt", [
    ("source", 1),          # one source file rewritten: only its case
    ("normalization", 4),   # preprocessing settings: every case
    ("spacing", 4),
])
def test_changes_invalidate_entries(task, tmp_path, builds, change, rebuilt):
    root = tmp_path / "cache"
    _load(task, root)
    builds.clear()
    prep = Preprocessing()
    if change == "source":
        name = _rewrite_first_lesion_image(task, scale=3.0)
    elif change == "normalization":
        prep = Preprocessing(normalization="none")
    else:
        prep = Preprocessing(spacing=(1.5, 1.2, 1.0))
    got = _load(task, root, prep)
    assert len(builds) == rebuilt
    if change == "source":
        assert builds == [name]
    ref = load_datasets(task, prep, lambda ds: task.input_modalities)
    for a, b in zip(ref, got):
        for ca, cb in zip(a.cases, b.cases):
            assert np.array_equal(ca.image, cb.image) and np.array_equal(ca.target, cb.target)
    builds.clear()
    _load(task, root, prep)
    assert builds == []


def test_modality_selections_are_separate_entries(task, tmp_path, builds):
    root = tmp_path / "cache"
    _load(task, root)
    flair = _load(task, root, mods=("FLAIR",))
    assert len(builds) == 8
    assert flair[0].cases[0].image.shape == (1, *SHAPE)
    ds = task.dataset("anatomy")
    assert entry_dir(root, "anatomy", "anatomy_000", ("FLAIR",)).is_dir()
    assert entry_dir(root, ds.name, "anatomy_000", ("T1", "FLAIR")).is_dir()


def test_stale_or_broken_entry_is_rebuilt(task, tmp_path, builds):
    root = tmp_path / "cache"
    _load(task, root)
    entry = entry_dir(root, "anatomy", "anatomy_001", task.input_modalities)
    meta = json.loads((entry / "meta.json").read_text())
    meta["key"] = "0" * 64
    (entry / "meta.json").write_text(json.dumps(meta))
    builds.clear()
    got = _load(task, root)
    assert builds == ["anatomy_001"]
    assert json.loads((entry / "meta.json").read_text())["key"] != "0" * 64
    assert isinstance(got[0].cases[1].image, np.memmap)


def test_key_depends_on_label_mapping(task):
    ds = task.dataset("anatomy")
    folder = task.dataset_path(ds)
    case = list_cases(folder, read_dataset_info(folder))[0]
    prep = Preprocessing()
    key = cache_key(task, ds, case, task.input_modalities, prep, 100)
    narrowed = type(ds)(ds.name, ds.path, ds.modalities, {1: "CSF", 2: "GM", 3: "GM"})
    assert cache_key(task, narrowed, case, task.input_modalities, prep, 100) != key
    assert cache_key(task, ds, case, task.input_modalities, prep, 99) != key
    assert cache_key(task, ds, case, task.input_modalities, prep, 100) == key


def test_cached_case_pickles_as_a_reference(task, tmp_path):
    case = _load(task, tmp_path / "cache")[0].cases[0]
    blob = pickle.dumps(case)
    assert len(blob) < 1000 < case.image.nbytes
    back = pickle.loads(blob)
    assert isinstance(back.image, np.memmap) and np.array_equal(back.image, case.image)
    assert sorted(back.class_voxels) == sorted(case.class_voxels)


def test_generator_label_maps_come_with_cached_cases_and_travel_to_workers(task, tmp_path):
    stored = add_synth_maps(task)
    memory = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities, synth=True)
    cached = _load(task, tmp_path / "cache")
    for a, b in zip(memory, cached):
        for ca, cb in zip(a.cases, b.cases):
            assert ca.synth is not None and np.array_equal(ca.synth, cb.synth)
            assert np.array_equal(ca.synth_counts, cb.synth_counts) and isinstance(cb.image, np.memmap)
    case = cached[0].cases[0]
    assert np.array_equal(case.synth, stored[case.name])  # LPS, no resampling: as stored
    back = pickle.loads(pickle.dumps(case))
    assert np.array_equal(back.synth, case.synth) and np.array_equal(back.synth_counts, case.synth_counts)
    without = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities, cache_dir=tmp_path / "cache",
                            synth=False)
    assert without[0].cases[0].synth is None


def test_shards_build_the_cache_between_them(task, tmp_path, builds):
    root, mods = tmp_path / "cache", lambda ds: task.input_modalities
    counts = [build_cache(task, Preprocessing(), mods, root, shard=(i, 3)) for i in range(3)]
    assert counts == [2, 1, 1] and sorted(builds) == ["anatomy_000", "anatomy_001", "lesion_000", "lesion_001"]
    assert build_cache(task, Preprocessing(), mods, root) == 0
    _load(task, root)
    assert len(builds) == 4  # loading found every entry built
    with pytest.raises(ValueError, match=r"shard must be \(index, count\) with 0 <= index < count, got \(3, 3\)"):
        build_cache(task, Preprocessing(), mods, root, shard=(3, 3))


@pytest.mark.parametrize("call, match", [
    (lambda t, ds, c, root: cached_case(t, ds, c, t.input_modalities, Preprocessing(), root, max_per_class=0),
     "max_per_class must be >= 1, got 0"),
    (lambda t, ds, c, root: cached_case(t, ds, c, ("T2",), Preprocessing(), root),
     r"lacks modalities \['T2'\]"),
    (lambda t, ds, c, root: open_entry(root / "nowhere"), "is not a cache entry"),
])
def test_bad_inputs(task, tmp_path, call, match):
    ds = task.dataset("lesion")
    folder = task.dataset_path(ds)
    case = list_cases(folder, read_dataset_info(folder))[0]
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        call(task, ds, case, tmp_path)


# ------------------------------------------------------------------ parallel sampling workers
def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_worker_streams_differ_and_are_reproducible(task, tmp_path):
    datasets = _load(task, tmp_path / "cache")
    stream = SamplerStream(datasets, patch_size=5, batch_size=2, seed=3)
    w0, w1 = stream.worker_sampler(0, 2), stream.worker_sampler(1, 2)
    a, b = w0.sample(), w1.sample()
    assert not torch.equal(a.image, b.image)

    def loader():
        return torch.utils.data.DataLoader(SamplerStream(datasets, 5, 2, seed=3), batch_size=None, num_workers=2)

    first, second = _take(loader(), 6), _take(loader(), 6)
    assert all(torch.equal(x.image, y.image) and torch.equal(x.target, y.target) for x, y in zip(first, second))
    # batch i comes from worker i % 2: the loader's stream is the workers' streams interleaved
    assert torch.equal(first[0].image, a.image) and torch.equal(first[1].image, b.image)
    # a stream opened at step 3 continues where the run stopped
    resumed = _take(torch.utils.data.DataLoader(SamplerStream(datasets, 5, 2, seed=3, start_step=3),
                                                batch_size=None, num_workers=2), 3)
    assert all(torch.equal(x.image, y.image) for x, y in zip(resumed, first[3:]))
    # streams restarted at step 3 are new ones, and continue exactly too
    restarted = _take(torch.utils.data.DataLoader(SamplerStream(datasets, 5, 2, seed=3, start_step=3, origin=3),
                                                  batch_size=None, num_workers=2), 4)
    assert not any(torch.equal(restarted[0].image, x.image) for x in first)
    later = _take(torch.utils.data.DataLoader(SamplerStream(datasets, 5, 2, seed=3, start_step=4, origin=3),
                                              batch_size=None, num_workers=2), 3)
    assert all(torch.equal(x.image, y.image) for x, y in zip(later, restarted[1:]))
    with pytest.raises(ValueError, match=r"origin must be None or in \[0, start_step=2\], got 3"):
        SamplerStream(datasets, 5, 2, start_step=2, origin=3)


def test_restarted_and_ranked_streams_are_new():
    seeds = {stream_seed(0), stream_seed(0, rank=1), stream_seed(0, worker=1), stream_seed(0, restart=1),
             stream_seed(1), stream_seed(0, rank=1, worker=1)}
    assert len(seeds) == 6
    assert stream_seed(5, 2, 1, 7) == stream_seed(5, 2, 1, 7)
    with pytest.raises(ValueError, match="rank must be >= 0, got -1"):
        stream_seed(0, rank=-1)
