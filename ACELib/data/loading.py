"""Load a task's training datasets into memory, once: normalised images, joint targets, class voxels."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ACELib.data.cache import cached_case
from ACELib.data.case import LoadedCase, attach_synth, channel_indices, load_case
from ACELib.data.check import data_error
from ACELib.data.contract import list_cases, read_dataset_info
from ACELib.data.preprocessing import Preprocessing
from ACELib.labels import DatasetSpec, Task, annotated_mask, candidate_table
from ACELib.progress import Progress

log = logging.getLogger(__name__)


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


def load_datasets(task: Task, prep: Preprocessing, modalities: Callable[[DatasetSpec], Sequence[str]],
                  datasets: Sequence[DatasetSpec] | None = None, seed: int = 0,
                  progress: Progress | None = None, cache_dir: str | os.PathLike | None = None,
                  synth: bool = True) -> list[LoadedDataset]:
    """Load every case of ``datasets`` (default: the task's training datasets).

    This is training's one pass over the voxels, and where they are checked (:func:`load_case`):
    every case is read even after a bad one, and the problems of all are raised together.

    Args:
        modalities: for each dataset, the modalities to load, in order (the single model passes the
            task's common modalities; a Multi-UNet member its dataset's own).
        cache_dir: keep preprocessed cases in this folder and memory-map them instead of holding
            them in RAM (see :mod:`ACELib.data.cache`); built on first use, reused while valid.
        synth: read the cases' generator label maps (domain randomisation, class gains); with a cache
            they are read from their files and held in RAM (one byte per voxel).

    Raises:
        DatasetError: listing every case file whose voxels are unusable (each message names its file).
    """
    datasets = list(datasets if datasets is not None else task.train_datasets)
    rng = np.random.default_rng(seed)
    listed = []
    for ds in datasets:
        folder = task.dataset_path(ds)
        listed.append((ds, list_cases(folder, read_dataset_info(folder))))
    total = sum(len(c) for _, c in listed)
    done, out, problems = 0, [], []
    for ds, cases in listed:
        mods = tuple(modalities(ds))
        chans = channel_indices(ds, mods)
        loaded, built = [], 0
        for case in cases:
            try:
                if cache_dir is None:
                    loaded.append(load_case(task, ds, case, chans, prep, rng, synth=synth))
                else:
                    entry, fresh = cached_case(task, ds, case, mods, prep, cache_dir)
                    loaded.append(attach_synth(entry, case, prep) if synth else entry)
                    built += fresh
            except ValueError as exc:  # the case's files name themselves in the message
                problems.append(str(exc))
            done += 1
            if progress:
                progress(done, total, f"loading {ds.name}/{case.name}")
        out.append(LoadedDataset(ds, mods, annotated_mask(task, ds), candidate_table(task, ds), loaded))
        log.info("dataset %s: %d cases, classes %s", ds.name, len(loaded), out[-1].classes)
        if cache_dir is not None:
            log.info("dataset %s: cache in %s, %d entries built, %d reused", ds.name, cache_dir, built,
                     len(loaded) - built)
    if problems:
        raise data_error(problems)
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


__all__ = ["LoadedCase", "LoadedDataset", "load_datasets", "split_validation"]
