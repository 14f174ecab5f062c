"""Load a task's training datasets into memory, once: normalised images, joint targets, class voxels."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ACELib.data.contract import SYNTH_FOLDER, Case, list_cases, read_dataset_info
from ACELib.data.preprocessing import Preprocessing
from ACELib.io.image import Geometry, read_image
from ACELib.labels import IGNORE_INDEX, DatasetSpec, Task, annotated_mask, candidate_table, to_joint

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


@dataclass
class LoadedCase:
    """One training case in memory.

    Attributes:
        image: ``(C, D, H, W)`` float32, normalised, channels in the requested modality order.
        target: ``(D, H, W)`` uint8 joint label indices.
        class_voxels: joint index -> flat voxel indices (int64) of that class (subsampled).
        pad_values: ``(C,)`` float32, each channel's minimum: the value patches are padded with
            outside the volume (computed from ``image`` when None).
        synth: ``(D, H, W)`` uint8 generator label map (domain randomisation), or None.
        synth_counts: ``(K,)`` int64 voxels of each generator class (computed from ``synth``).
    """

    name: str
    dataset: str
    image: np.ndarray
    target: np.ndarray
    geometry: Geometry
    class_voxels: dict[int, np.ndarray] = field(default_factory=dict)
    pad_values: np.ndarray | None = None
    synth: np.ndarray | None = None
    synth_counts: np.ndarray | None = None

    def __post_init__(self):
        if self.pad_values is None:
            self.pad_values = self.image.reshape(self.image.shape[0], -1).min(axis=1).astype(np.float32)
        if self.synth is not None and self.synth_counts is None:
            self.synth_counts = np.bincount(self.synth.reshape(-1), minlength=1).astype(np.int64)


@dataclass
class LoadedDataset:
    """A dataset in memory with its label-space tables.

    Attributes:
        annotated: ``(C,)`` bool, joint labels the dataset annotates.
        candidates: ``(C, C)`` bool candidate table (see :func:`ACELib.labels.candidate_table`).
    """

    spec: DatasetSpec
    modalities: tuple[str, ...]
    annotated: np.ndarray
    candidates: np.ndarray
    cases: list[LoadedCase]

    @property
    def classes(self) -> list[int]:
        """Joint indices present in at least one case, sorted."""
        return sorted({c for case in self.cases for c in case.class_voxels})


def channel_indices(ds: DatasetSpec, modalities: Sequence[str]) -> list[int]:
    """Positions of ``modalities`` among the dataset's channels (clear error when one is missing)."""
    missing = [m for m in modalities if m not in ds.modalities]
    if missing:
        raise ValueError(
            f"dataset {ds.name!r} lacks modalities {missing} (it has {list(ds.modalities)})"
        )
    return [ds.modalities.index(m) for m in modalities]


def class_voxel_index(target: np.ndarray, rng: np.random.Generator, max_per_class: int) -> dict[int, np.ndarray]:
    """Flat indices of each class's voxels, at most ``max_per_class`` (uniform subsample) per class.

    Ignore voxels (:data:`ACELib.labels.IGNORE_INDEX`) are no class: patches are never centred on them.
    """
    flat = target.reshape(-1)
    out = {}
    for c in np.unique(flat):
        if c == IGNORE_INDEX:
            continue
        idx = np.flatnonzero(flat == c)
        if idx.size > max_per_class:
            idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
        out[int(c)] = idx.astype(np.int64)
    return out


def load_case(task: Task, ds: DatasetSpec, case: Case, channels: Sequence[int], prep: Preprocessing,
              rng: np.random.Generator, max_per_class: int = 200_000) -> LoadedCase:
    """Read, reorient (``prep.orientation``), resample, normalise and convert one case."""
    image, label, geom = case.read()
    if label is None:
        raise ValueError(f"case {case.name!r} of dataset {ds.name!r} has no label file")
    turn = prep.reorientation(geom)
    image = np.ascontiguousarray(turn.apply(image[list(channels)]))
    label, geom = np.ascontiguousarray(turn.apply(label)), turn.target
    image, new_geom = prep.resample(image, geom)
    label, _ = prep.resample(label.astype(np.int16), geom, is_label=True)
    target, _ = to_joint(task, ds, label, source=str(case.label_path))
    target = target.astype(np.uint8)
    return LoadedCase(case.name, ds.name, prep.normalize(image), target, new_geom,
                      class_voxel_index(target, rng, max_per_class), synth=_read_synth(case, geom, prep))


def synth_path(case: Case):
    """Where the generator label map of ``case`` would be (beside ``labelsTr``), or None."""
    if case.label_path is None:
        return None
    return case.label_path.parent.parent / SYNTH_FOLDER / case.label_path.name


def _read_synth(case: Case, geom: Geometry, prep: Preprocessing) -> np.ndarray | None:
    """The case's generator label map on the training grid, or None when the dataset has none."""
    path = synth_path(case)
    if path is None or not path.exists():
        return None
    synth, sgeom = read_image(path, dtype=np.int16)
    if sgeom.differences(geom):
        raise ValueError(f"generator label map {str(path)!r} is not on its case's grid: {sgeom.differences(geom)}")
    synth, _ = prep.resample(synth, geom, is_label=True)
    return synth.astype(np.uint8)


def load_datasets(task: Task, prep: Preprocessing, modalities: Callable[[DatasetSpec], Sequence[str]],
                  datasets: Sequence[DatasetSpec] | None = None, seed: int = 0,
                  progress: Progress | None = None, cache_dir: str | os.PathLike | None = None
                  ) -> list[LoadedDataset]:
    """Load every case of ``datasets`` (default: the task's training datasets).

    Args:
        modalities: for each dataset, the modalities to load, in order (the single model passes the
            task's common modalities; a Multi-UNet member its dataset's own).
        cache_dir: keep preprocessed cases in this folder and memory-map them instead of holding
            them in RAM (see :mod:`ACELib.data.cache`); built on first use, reused while valid.
    """
    if cache_dir is not None:
        from ACELib.data.cache import cached_case
    datasets = list(datasets if datasets is not None else task.train_datasets)
    rng = np.random.default_rng(seed)
    listed = []
    for ds in datasets:
        folder = task.dataset_path(ds)
        listed.append((ds, list_cases(folder, read_dataset_info(folder))))
    total = sum(len(c) for _, c in listed)
    done, out = 0, []
    for ds, cases in listed:
        mods = tuple(modalities(ds))
        chans = channel_indices(ds, mods)
        loaded, built = [], 0
        for case in cases:
            if cache_dir is None:
                loaded.append(load_case(task, ds, case, chans, prep, rng))
            else:
                entry, fresh = cached_case(task, ds, case, mods, prep, cache_dir)
                loaded.append(entry)
                built += fresh
            done += 1
            if progress:
                progress(done, total, f"loading {ds.name}/{case.name}")
        out.append(LoadedDataset(ds, mods, annotated_mask(task, ds), candidate_table(task, ds), loaded))
        log.info("dataset %s: %d cases, classes %s", ds.name, len(loaded), out[-1].classes)
        if cache_dir is not None:
            log.info("dataset %s: cache in %s, %d entries built, %d reused", ds.name, cache_dir, built,
                     len(loaded) - built)
    return out


def split_validation(datasets: Sequence[LoadedDataset], fraction: float, seed: int = 0
                     ) -> tuple[list[LoadedDataset], list[LoadedDataset]]:
    """Hold out ``fraction`` of each dataset's cases (at least one when the dataset has two or more).

    Returns:
        ``(train, validation)``, the same datasets with disjoint case lists.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for ds in datasets:
        n = len(ds.cases)
        k = 0 if fraction == 0 or n < 2 else max(1, int(round(fraction * n)))
        order = rng.permutation(n)
        held = set(order[:k].tolist())
        train.append(LoadedDataset(ds.spec, ds.modalities, ds.annotated, ds.candidates,
                                   [c for i, c in enumerate(ds.cases) if i not in held]))
        val.append(LoadedDataset(ds.spec, ds.modalities, ds.annotated, ds.candidates,
                                 [c for i, c in enumerate(ds.cases) if i in held]))
    return train, val
