"""One training case in memory: read, reorient, resample, normalise, convert to joint labels.

:func:`load_case` is the one loading pass: :mod:`ACELib.data.loading` holds its results in RAM and
:mod:`ACELib.data.cache` writes them to disk for memory-mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ACELib.data.check import image_value_problems, label_value_problems
from ACELib.data.contract import SYNTH_FOLDER, Case, DatasetError, read_dataset_info
from ACELib.data.preprocessing import Preprocessing
from ACELib.io.image import Geometry, read_image, read_image_header
from ACELib.labels import IGNORE_INDEX, DatasetSpec, Task, to_joint


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
              rng: np.random.Generator, max_per_class: int = 200_000, synth: bool = True) -> LoadedCase:
    """Read, check, reorient (``prep.orientation``), resample, normalise and convert one case.

    This is where training finds damaged voxels: each file is decoded once, here, and refused when it is
    truncated or holds NaN/Inf (:func:`ACELib.io.image.read_image`), when a channel is blank, or when
    the label map holds undeclared values or background alone (the checks of ``ace check``).

    Args:
        synth: read the case's generator label map (``synthTr``, for domain randomisation) when it has one.

    Raises:
        ValueError: naming the file: the problems above, or no label file.
    """
    image, label, geom = case.read()
    if label is None:
        raise ValueError(f"case {case.name!r} of dataset {ds.name!r} has no label file")
    _check_values(task, ds, case, image, label)
    stored = geom
    turn = prep.reorientation(geom)
    image = np.ascontiguousarray(turn.apply(image[list(channels)]))
    label, geom = np.ascontiguousarray(turn.apply(label)), turn.target
    image, new_geom = prep.resample(image, geom)
    label, _ = prep.resample(label.astype(np.int16), geom, is_label=True)
    target, _ = to_joint(task, ds, label, source=str(case.label_path))
    target = target.astype(np.uint8)
    return LoadedCase(case.name, ds.name, prep.normalize(image), target, new_geom,
                      class_voxel_index(target, rng, max_per_class),
                      synth=_read_synth(case, stored, turn, prep) if synth else None)


def _check_values(task: Task, ds: DatasetSpec, case: Case, image: np.ndarray, label: np.ndarray) -> None:
    """Raise ``DatasetError`` listing what the voxels of a case make unusable (see :func:`load_case`)."""
    problems = [p for path, channel in zip(case.image_paths, image) for p in image_value_problems(channel, path)]
    # dataset.json is read again only for the advice about an unmapped ignore label
    problems += label_value_problems(label, case.label_path, ds, lambda: read_dataset_info(task.dataset_path(ds)).labels)
    if problems:
        raise DatasetError("; ".join(problems))


def synth_path(case: Case):
    """Where the generator label map of ``case`` would be (beside ``labelsTr``), or None."""
    if case.label_path is None:
        return None
    return case.label_path.parent.parent / SYNTH_FOLDER / case.label_path.name


def attach_synth(loaded: LoadedCase, case: Case, prep: Preprocessing) -> LoadedCase:
    """Give a case loaded without it (from the cache) its generator label map, when it has one.

    Raises:
        ValueError: naming the map: not on its case's grid, or not on the loaded case's grid after
            preprocessing (a stale cache entry).
    """
    path = synth_path(case)
    if path is None or not path.exists():  # most datasets: no header read
        return loaded
    stored = read_image_header(case.label_path)
    synth = _read_synth(case, stored, prep.reorientation(stored), prep)
    if synth is None:
        return loaded
    if synth.shape != loaded.target.shape:
        raise ValueError(f"generator label map {str(synth_path(case))!r} gives shape {synth.shape} after "
                         f"preprocessing, its loaded case {loaded.target.shape}")
    loaded.synth, loaded.synth_counts = synth, np.bincount(synth.reshape(-1), minlength=1).astype(np.int64)
    return loaded


def _read_synth(case: Case, stored: Geometry, turn, prep: Preprocessing) -> np.ndarray | None:
    """The case's generator label map on the training grid, or None when the dataset has none.

    Args:
        stored: the case's geometry as stored (the map must be on it).
        turn: the case's reorientation (``prep.reorientation(stored)``), applied to the map as to the label.
    """
    path = synth_path(case)
    if path is None or not path.exists():
        return None
    synth, sgeom = read_image(path, dtype=np.int16)
    if sgeom.differences(stored):
        raise ValueError(f"generator label map {str(path)!r} is not on its case's grid: {sgeom.differences(stored)}")
    synth, _ = prep.resample(np.ascontiguousarray(turn.apply(synth)), turn.target, is_label=True)
    return synth.astype(np.uint8)
