"""A preprocessed cache of training cases on disk, memory-mapped at training time.

A dataset of 500 cases x 4 modalities at 240x240x155 is about 140 GB as float32: it does not fit in
RAM. Each case is therefore read, resampled, normalised and converted to joint labels once, and
written as plain ``.npy`` arrays that later runs memory-map with ``np.load(mmap_mode=...)``: the operating
system pages in only the voxels a patch touches, and processes on one machine (distributed ranks,
sampling workers) share those pages. Layout::

    <cache_dir>/<dataset>/<case>/<modalities>/     e.g. cache/anatomy/sub-001/T1+FLAIR/
        image.npy          (C, D, H, W) float32, resampled and normalised, channels in that order
        target.npy         (D, H, W) uint8 joint label indices
        class_voxels.npz   "<k>": int64 flat voxel indices of joint class k (at most max_per_class)
        meta.json          the entry's key, geometry, per-channel padding values, sources

An entry is valid while its key matches: a SHA-256 over the cache format version, every source
file's path, size and modification time, the preprocessing settings, the modalities, the task's
joint labels and the dataset's label mapping, and ``max_per_class``. A stale or missing entry is
rebuilt; the new entry is written in a temporary folder and renamed into place, so a crash never
leaves a half-written entry and concurrent builders (ranks sharing a cache) cannot corrupt one.

Images and targets are bit-identical to :func:`ACELib.data.case.load_case`. Class voxel lists are
identical as long as no class has more than ``max_per_class`` voxels; beyond that, the uniform
subsample is drawn from a generator seeded by the entry's key (not by the run's seed and loading
order), so that an entry is reusable by every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ACELib.data.case import LoadedCase, channel_indices, load_case
from ACELib.data.contract import Case, list_cases, read_dataset_info
from ACELib.data.preprocessing import Preprocessing
from ACELib.io.image import Geometry
from ACELib.labels import DatasetSpec, Task

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def cache_key(task: Task, ds: DatasetSpec, case: Case, modalities: Sequence[str], prep: Preprocessing,
              max_per_class: int) -> str:
    """SHA-256 (hex) of everything an entry's content depends on (see the module docstring).

    Raises:
        FileNotFoundError: a source file of the case is missing.
    """
    sources = []
    for p in (*case.image_paths, case.label_path):
        if p is None:
            continue
        st = Path(p).stat()
        sources.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    payload = {
        "version": CACHE_FORMAT_VERSION,
        "sources": sources,
        "preprocessing": prep.to_dict(),
        "modalities": list(modalities),
        "joint_labels": [[lab.name, lab.value] for lab in task.labels],
        "dataset_labels": {str(k): v for k, v in sorted(ds.labels.items())},
        "dataset_modalities": list(ds.modalities),
        "max_per_class": int(max_per_class),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def entry_dir(cache_dir: str | os.PathLike, dataset: str, case: str, modalities: Sequence[str]) -> Path:
    """Folder of one entry: ``<cache_dir>/<dataset>/<case>/<mod1+mod2...>`` (unsafe characters replaced)."""
    tag = "+".join(_UNSAFE.sub("_", m) for m in modalities)
    return Path(cache_dir) / _UNSAFE.sub("_", dataset) / _UNSAFE.sub("_", case) / tag


class CachedCase(LoadedCase):
    """A :class:`LoadedCase` whose image and target are memory-mapped from a cache entry.

    Pickling sends the entry's folder, not the arrays, and unpickling maps them again, so that
    sampling workers started with ``spawn`` or ``forkserver`` stay cheap. A generator label map
    attached after loading (:func:`ACELib.data.case.attach_synth`; it is not in the entry) travels
    with it.
    """

    entry: Path

    def __getstate__(self) -> dict:
        return {"entry": str(self.entry), "synth": self.synth, "synth_counts": self.synth_counts}

    def __setstate__(self, state: dict) -> None:
        other = open_entry(state["entry"])
        self.__dict__.update(other.__dict__)
        self.synth, self.synth_counts = state.get("synth"), state.get("synth_counts")


def open_entry(entry: str | os.PathLike) -> CachedCase:
    """Map a built entry (``image.npy`` copy-on-write, ``target.npy`` read-only, both ``np.memmap``).

    Raises:
        FileNotFoundError: ``entry`` is not a built cache entry.
    """
    entry = Path(entry)
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{str(entry)!r} is not a cache entry (no meta.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    # copy-on-write: pages are shared and read lazily like "r", but the array reports itself writable,
    # so torch.from_numpy (validation) takes it without a warning; a write would stay in this process
    image = np.load(entry / "image.npy", mmap_mode="c")
    target = np.load(entry / "target.npy", mmap_mode="r")
    with np.load(entry / "class_voxels.npz") as z:
        class_voxels = {int(k): z[k] for k in sorted(z.files, key=int)}
    case = CachedCase(meta["case"], meta["dataset"], image, target, Geometry.from_dict(meta["geometry"]), class_voxels,
                      np.asarray(meta["pad_values"], dtype=np.float32))
    case.entry = entry
    return case


def _read_key(entry: Path) -> str | None:
    try:
        return json.loads((entry / "meta.json").read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError):
        return None


def build_entry(task: Task, ds: DatasetSpec, case: Case, modalities: Sequence[str], prep: Preprocessing,
                entry: str | os.PathLike, key: str, max_per_class: int) -> None:
    """Preprocess one case and write its entry (temporary folder, then rename into place)."""
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(key[:16], 16))
    loaded = load_case(task, ds, case, channel_indices(ds, modalities), prep, rng, max_per_class)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".tmp", dir=entry.parent))
    try:
        np.save(tmp / "image.npy", np.ascontiguousarray(loaded.image, dtype=np.float32))
        np.save(tmp / "target.npy", np.ascontiguousarray(loaded.target, dtype=np.uint8))
        np.savez(tmp / "class_voxels.npz", **{str(k): v for k, v in loaded.class_voxels.items()})
        meta = {
            "format_version": CACHE_FORMAT_VERSION, "key": key, "case": case.name, "dataset": ds.name,
            "modalities": list(modalities), "shape": list(loaded.image.shape),
            "geometry": loaded.geometry.to_dict(),
            "pad_values": [float(v) for v in loaded.pad_values],
            "classes": sorted(loaded.class_voxels),
            "preprocessing": prep.to_dict(),
            "sources": [str(p) for p in (*case.image_paths, case.label_path) if p is not None],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        _install(tmp, entry, key)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, entry: Path, key: str) -> None:
    """Rename ``tmp`` onto ``entry``; a stale entry is moved aside first, a valid one (built
    concurrently by another process) is kept and ``tmp`` dropped."""
    for _ in range(3):
        try:
            os.rename(tmp, entry)
            return
        except OSError:
            if not entry.exists():
                continue
            if _read_key(entry) == key:
                return
            stale = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".stale", dir=entry.parent))
            try:
                os.rename(entry, stale / "old")
            except OSError:
                pass  # someone else moved it first
            shutil.rmtree(stale, ignore_errors=True)
    raise OSError(f"could not install cache entry {str(entry)!r} (another process keeps replacing it)")


def cached_case(task: Task, ds: DatasetSpec, case: Case, modalities: Sequence[str], prep: Preprocessing,
                cache_dir: str | os.PathLike, max_per_class: int = 200_000) -> tuple[CachedCase, bool]:
    """Open a case's cache entry, building it first when missing or stale.

    Args:
        modalities: channels to cache, in order (names of ``ds.modalities``).

    Returns:
        ``(case, built)``: the memory-mapped case and whether the entry was (re)built now.

    Raises:
        ValueError: a modality is missing, ``max_per_class`` < 1, or the label map has undeclared values.
        FileNotFoundError: a source file is missing.
    """
    if int(max_per_class) < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class}")
    entry, built = _ensure_entry(task, ds, case, tuple(modalities), prep, cache_dir, max_per_class)
    return open_entry(entry), built


def _ensure_entry(task: Task, ds: DatasetSpec, case: Case, modalities: tuple[str, ...], prep: Preprocessing,
                  cache_dir: str | os.PathLike, max_per_class: int) -> tuple[Path, bool]:
    """Build the case's entry when it is missing or stale; returns ``(entry folder, built now)``."""
    if case.label_path is None:
        raise ValueError(f"case {case.name!r} of dataset {ds.name!r} has no label file")
    entry = entry_dir(cache_dir, ds.name, case.name, modalities)
    key = cache_key(task, ds, case, modalities, prep, max_per_class)
    if _read_key(entry) == key:
        return entry, False
    log.debug("cache: building %s", entry)
    build_entry(task, ds, case, modalities, prep, entry, key, max_per_class)
    return entry, True


def build_cache(task: Task, prep: Preprocessing, modalities: Callable[[DatasetSpec], Sequence[str]],
                cache_dir: str | os.PathLike, datasets: Sequence[DatasetSpec] | None = None,
                shard: tuple[int, int] = (0, 1), max_per_class: int = 200_000) -> int:
    """Build the missing or stale entries of one shard of the cases, without mapping them.

    Processes of one machine split the work (``shard=(local_rank, local_world_size)``) before they
    all load the cache, so the build takes 1/N of the time.

    Args:
        modalities: for each dataset, the modalities to cache, in order (as for ``load_datasets``).
        datasets: default the task's training datasets.
        shard: ``(index, count)``: this call builds the cases ``index, index + count, ...`` of the
            concatenated case lists.

    Returns:
        The number of entries built.
    """
    index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    all_cases = []
    for ds in (datasets if datasets is not None else task.train_datasets):
        folder = task.dataset_path(ds)
        all_cases += [(ds, c) for c in list_cases(folder, read_dataset_info(folder))]
    return sum(_ensure_entry(task, ds, case, tuple(modalities(ds)), prep, cache_dir, max_per_class)[1]
               for ds, case in all_cases[index::count])
