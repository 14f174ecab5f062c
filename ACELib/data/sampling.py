"""The paper's balanced mini-batches of patches.

Each patch: pick a dataset with equal probability, then one of the classes present in a case of it
with equal probability, then a case containing that class, then a voxel of that class; the patch is
centred on that voxel and padded where it crosses the volume border (images with the channel's
minimum, labels with background). Randomness is drawn from one seeded ``numpy`` generator, so a
sampler with the same seed yields the same batches, and its state can be saved and restored.

Hetero-modal training (``layout``): datasets may have different modalities. Each patch is placed
into the layout's channels (zeros where its dataset has no image) and the batch carries a
``present`` mask. Modality dropout with probability p (``modality_subsets``):

* ``"uniform"``: with probability p a patch keeps a subset of its dataset's modalities drawn
  uniformly among the non-empty ones (the full set included), otherwise all of them. Half the
  patches (p = 0.5) still show the network everything the dataset has.
* ``"single"``: with probability p a patch keeps one of its dataset's modalities (each equally
  likely), otherwise all of them: the model learns each image alone and all together, and the
  pairs and triples only through the fusion's mean.
* ``"shared"``: with probability p a patch keeps, with chance 1/2, the modalities that every
  dataset has (the anatomy dataset's T1 in the tumour scenario; only when that is a smaller,
  non-empty part of the patch's own), otherwise a uniformly drawn non-empty subset: the input of
  the model that sees only the common modalities is trained on every dataset's labels.
* ``"independent"``: each present modality is dropped with probability p (at least one is kept);
  the rule of models trained before ``"uniform"`` existed.

The draw comes from a seed that the patch takes from the generator, like its augmentation seed, so
:meth:`BalancedSampler.skip` stays exact.

One-image training (``one_channel``): datasets may have different modalities, and every patch shows
the network one of its case's images, each equally likely (the label map is the case's whatever the
contrast), so a single-input model learns every contrast the datasets hold.

:class:`SamplerStream` runs samplers in ``torch.utils.data.DataLoader`` worker processes, one
generator per worker, seeded by :func:`stream_seed` from (seed, rank, worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ACELib.data.augment import AugmentationConfig, PatchAugmenter
from ACELib.data.case import LoadedCase
from ACELib.data.loading import LoadedDataset
from ACELib.data.patches import crop

SUBSET_RULES = {
    "uniform": "a dropped patch keeps a uniformly drawn non-empty subset of its modalities",
    "single": "it keeps one of them",
    "shared": "it keeps the modalities every dataset has (half the time) or a uniform subset",
    "independent": "each modality is dropped on its own, as models trained before these rules",
}
"""How modality dropout draws the modalities a patch keeps, with a line each (see the module docstring)."""
MODALITY_SUBSETS = tuple(SUBSET_RULES)
DEFAULT_SUBSET_RULE = "uniform"


@dataclass
class Batch:
    """A training batch.

    Attributes:
        image: ``(B, C, P, P, P)`` float32.
        target: ``(B, P, P, P)`` int64 joint indices.
        annotated: ``(B, C)`` bool, labels each sample's dataset annotates (C = joint classes).
        candidates: ``(B, C, C)`` bool, each sample's candidate table.
        dataset: ``(B,)`` int64, index of each sample's dataset.
        present: ``(B, M)`` bool, the modalities each sample has (hetero-modal layout), or None
            (every sample has every channel).
        view: ``(V, 1, P, P, P)`` float32, one-image training with contrast views: the teacher
            image (the modality every dataset has) of the samples ``view_sample`` that show another
            of their case's images, augmented with them; None without views.
        view_sample: ``(V,)`` int64, the sample each view belongs to.
    """

    image: torch.Tensor
    target: torch.Tensor
    annotated: torch.Tensor
    candidates: torch.Tensor
    dataset: torch.Tensor
    present: torch.Tensor | None = None
    view: torch.Tensor | None = None
    view_sample: torch.Tensor | None = None

    def _map(self, fn) -> Batch:
        return Batch(*(None if t is None else fn(t) for t in (
            self.image, self.target, self.annotated, self.candidates, self.dataset, self.present, self.view,
            self.view_sample)))

    def to(self, device) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> Batch:
        """Page-locked copy (called by a ``DataLoader`` with ``pin_memory=True``)."""
        return self._map(lambda t: t.pin_memory())


def extract_patch(case: LoadedCase, center: Sequence[int], size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Patch of ``size`` (D, H, W) centred on ``center``, padded outside the volume.

    Returns:
        ``(image (C, *size) float32, target (*size) uint8)``.
    """
    return crop(case.image, center, size, case.pad_values), crop(case.target, center, size, 0)


class BalancedSampler:
    """Draw balanced mini-batches from several loaded datasets.

    Args:
        datasets: datasets whose cases share the channel count.
        patch_size: int or (D, H, W).
        batch_size: patches per batch (paper: 7).
        seed: the generator's seed (a distributed run passes a different seed per rank).
        augmentation: how patches are augmented (None or disabled: cut as they are). Each patch
            draws one seed for its augmentation from the generator, so a stream with augmentation
            can still be skipped ahead without augmenting (exact resume with workers).
        layout: hetero-modal training: the model's modalities, in channel order; every dataset's
            ``modalities`` must be among them (their cases may then differ in channel count).
            None: all cases share their channels and batches have no ``present`` mask.
        modality_dropout: probability in [0, 1) of modality dropout (see the module docstring);
            needs ``layout``.
        modality_subsets: one of :data:`MODALITY_SUBSETS`: how dropped modalities are drawn.
        one_channel: every patch is one of its case's channels, drawn uniformly (``(1, ...)``
            images; cases may differ in channel count); excludes ``layout``.
        contrast_views: (one_channel) a patch that shows another image than its case's teacher
            modality (the first modality every dataset has, when its dataset has others too) is
            augmented together with that teacher image, which the batch carries as its view.
    """

    def __init__(self, datasets: Sequence[LoadedDataset], patch_size: int | Sequence[int] = 32,
                 batch_size: int = 7, seed: int = 0, augmentation: AugmentationConfig | None = None,
                 layout: Sequence[str] | None = None, modality_dropout: float = 0.0,
                 modality_subsets: str = DEFAULT_SUBSET_RULE, one_channel: bool = False,
                 contrast_views: bool = False):
        self.datasets = [d for d in datasets if d.cases]
        if not self.datasets:
            raise ValueError("BalancedSampler: no dataset has a training case")
        if isinstance(patch_size, int):
            patch_size = (patch_size,) * 3
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ValueError(f"patch_size must be a positive int or three of them, got {patch_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.layout = None if layout is None else tuple(layout)
        self.modality_dropout = float(modality_dropout)
        if modality_subsets not in MODALITY_SUBSETS:
            raise ValueError(f"modality_subsets must be one of {list(MODALITY_SUBSETS)}, got {modality_subsets!r}")
        self.modality_subsets = modality_subsets
        self.one_channel = bool(one_channel)
        if self.one_channel and self.layout is not None:
            raise ValueError("one_channel (one image per patch) and layout (hetero-modal) exclude each other")
        if contrast_views and not self.one_channel:
            raise ValueError("contrast_views needs one_channel (one image per patch)")
        self._teacher = self._teacher_channels() if contrast_views else [None] * len(self.datasets)
        self._channel_maps = self._check_layout()
        self._shared = self._shared_masks()
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.augmenter = PatchAugmenter(augmentation) if augmentation is not None and augmentation.enabled else None
        if augmentation is not None and augmentation.uses_label_maps:
            missing = [c.name for d in self.datasets for c in d.cases if c.synth is None]
            if missing:
                raise ValueError(f"domain randomisation and class gains need a generator label map (synthTr) for every case; "
                                 f"{len(missing)} cases have none, e.g. {missing[:3]}")
        # per dataset: class -> cases containing it
        self._by_class = []
        for d in self.datasets:
            table: dict[int, list[LoadedCase]] = {}
            for case in d.cases:
                for c in case.class_voxels:
                    table.setdefault(c, []).append(case)
            self._by_class.append((sorted(table), table))

    def _check_layout(self) -> list[list[int]] | None:
        """Each dataset's channel positions in the layout (None without one); raises on a misfit."""
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if self.layout is None:
            if self.modality_dropout:
                raise ValueError("modality_dropout needs a layout (hetero-modal training)")
            if self.one_channel:
                return None
            channels = {c.image.shape[0] for d in self.datasets for c in d.cases}
            if len(channels) != 1:
                raise ValueError(f"all cases must have the same number of channels, got {sorted(channels)} "
                                 "(datasets with different modalities need a layout)")
            return None
        maps = []
        for d in self.datasets:
            unknown = [m for m in d.modalities if m not in self.layout]
            if unknown or len(d.modalities) == 0:
                raise ValueError(f"layout {list(self.layout)} lacks modalities {unknown} of dataset "
                                 f"{d.spec.name!r} (it has {list(d.modalities)})")
            wrong = [c.name for c in d.cases if c.image.shape[0] != len(d.modalities)]
            if wrong:
                raise ValueError(f"dataset {d.spec.name!r}: cases {wrong[:3]} do not have one channel per "
                                 f"modality {list(d.modalities)}")
            maps.append([self.layout.index(m) for m in d.modalities])
        return maps

    def _shared_masks(self) -> list[np.ndarray] | None:
        """Per dataset, which of its modalities every dataset has (``(C_k,)`` bool), all False where
        that is all of them (nothing to drop to) or none; None without a layout."""
        if self.layout is None:
            return None
        common = set.intersection(*(set(d.modalities) for d in self.datasets))
        masks = []
        for d in self.datasets:
            mask = np.array([m in common for m in d.modalities], dtype=bool)
            masks.append(mask if 0 < mask.sum() < len(mask) else np.zeros(len(mask), dtype=bool))
        return masks

    def _place(self, k: int, img: np.ndarray, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """A dataset-``k`` patch ``(C_k, ...)`` in the layout: ``(M, ...)`` image and ``(M,)`` present mask,
        with modality dropout drawn from ``rng`` (None: none)."""
        chans = self._channel_maps[k]
        keep = np.ones(len(chans), dtype=bool)
        if rng is not None and self.modality_subsets == "independent":
            keep = rng.random(len(chans)) >= self.modality_dropout
            if not keep.any():
                keep[int(rng.integers(len(chans)))] = True
        elif rng is not None and rng.random() < self.modality_dropout:
            if self.modality_subsets == "single":
                keep = np.zeros(len(chans), dtype=bool)
                keep[int(rng.integers(len(chans)))] = True
            elif self.modality_subsets == "shared" and self._shared[k].any() and rng.random() < 0.5:
                keep = self._shared[k].copy()
            else:
                bits = int(rng.integers(1, 2 ** len(chans)))  # a non-empty subset, each equally likely
                keep = np.array([(bits >> j) & 1 for j in range(len(chans))], dtype=bool)
        out = np.zeros((len(self.layout), *img.shape[1:]), dtype=img.dtype)
        present = np.zeros(len(self.layout), dtype=bool)
        for j, c in enumerate(chans):
            if keep[j]:
                out[c], present[c] = img[j], True
        return out, present

    @property
    def _draws_dropout(self) -> bool:
        return self.layout is not None and self.modality_dropout > 0

    def draw(self) -> tuple[int, LoadedCase, tuple[int, int, int]]:
        """One draw: ``(dataset index, case, centre voxel (z, y, x))``."""
        k = int(self.rng.integers(len(self.datasets)))
        classes, table = self._by_class[k]
        c = classes[int(self.rng.integers(len(classes)))]
        cases = table[c]
        case = cases[int(self.rng.integers(len(cases)))]
        voxels = case.class_voxels[c]
        flat = int(voxels[int(self.rng.integers(voxels.size))])
        return k, case, tuple(int(i) for i in np.unravel_index(flat, case.target.shape))

    def _teacher_channels(self) -> list[int | None]:
        """Per dataset, the channel of its teacher modality (the first that every dataset has), or None
        when it has no other modality (its patches need no view) or no modality is common."""
        common = [m for m in self.datasets[0].modalities if all(m in d.modalities for d in self.datasets)]
        return [d.modalities.index(common[0]) if common and len(d.modalities) > 1 else None
                for d in self.datasets]

    def _pick_channel(self, k: int, case: LoadedCase) -> tuple[LoadedCase, bool]:
        """(one_channel) The case with one of its channels, drawn from the generator, followed by its
        teacher channel when that is another (then True); else the case as it is."""
        if not self.one_channel:
            return case, False
        j = int(self.rng.integers(case.image.shape[0]))
        t = self._teacher[k]
        chans = slice(j, j + 1) if t is None or t == j else [j, t]  # a slice: no copy of the volume
        return replace(case, image=case.image[chans], pad_values=case.pad_values[chans]), isinstance(chans, list)

    def sample(self) -> Batch:
        images, targets, ds_idx, presents, views, view_sample = [], [], [], [], [], []
        for b in range(self.batch_size):
            k, case, center = self.draw()
            case, has_view = self._pick_channel(k, case)
            if self.augmenter is None:
                img, tgt = extract_patch(case, center, self.patch_size)
            else:
                rng = np.random.default_rng(int(self.rng.integers(2**63)))
                img, tgt = self.augmenter(case.image, case.target, center, self.patch_size, rng, case.pad_values,
                                          case.synth, case.synth_counts)
            if self.layout is not None:
                drop = np.random.default_rng(int(self.rng.integers(2**63))) if self._draws_dropout else None
                img, present = self._place(k, img, drop)
                presents.append(present)
            if has_view:
                img, view = img[:1], img[1:]
                views.append(view)
                view_sample.append(b)
            images.append(img)
            targets.append(tgt)
            ds_idx.append(k)
        ann = np.stack([self.datasets[k].annotated for k in ds_idx])
        cand = np.stack([self.datasets[k].candidates for k in ds_idx])
        return Batch(
            torch.from_numpy(np.stack(images)),
            torch.from_numpy(np.stack(targets).astype(np.int64)),
            torch.from_numpy(ann),
            torch.from_numpy(cand),
            torch.tensor(ds_idx, dtype=torch.int64),
            present=torch.from_numpy(np.stack(presents)) if presents else None,
            view=torch.from_numpy(np.stack(views)) if views else None,
            view_sample=torch.tensor(view_sample, dtype=torch.int64) if views else None,
        )

    def __iter__(self):
        while True:
            yield self.sample()

    def skip(self, batches: int) -> None:
        """Advance the generator past ``batches`` batches without extracting their patches."""
        for _ in range(int(batches) * self.batch_size):
            _, case, _ = self.draw()
            if self.one_channel:
                self.rng.integers(case.image.shape[0])
            if self.augmenter is not None:
                self.rng.integers(2**63)
            if self._draws_dropout:
                self.rng.integers(2**63)

    def get_state(self) -> dict:
        """The generator state (JSON-serialisable), to resume the same stream of batches."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def stream_seed(seed: int, rank: int = 0, worker: int = 0, restart: int = 0) -> int:
    """Seed of one sampling stream, derived from ``(seed, rank, worker, restart)`` by numpy's
    ``SeedSequence`` (statistically independent streams for different tuples).

    Args:
        seed: the run's seed (>= 0).
        rank: the process's rank in a distributed run.
        worker: 0 for the in-process sampler, ``1 + id`` for DataLoader worker ``id``.
        restart: 0, or ``1 + step`` for streams restarted at ``step`` (a resume that cannot continue
            the saved streams exactly).
    """
    for name, v in (("seed", seed), ("rank", rank), ("worker", worker), ("restart", restart)):
        if int(v) < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    words = np.random.SeedSequence([int(seed), int(rank), int(worker), int(restart)]).generate_state(2, np.uint32)
    return int(words[0]) << 32 | int(words[1])


class SamplerStream(torch.utils.data.IterableDataset):
    """Endless balanced batches for ``DataLoader(stream, batch_size=None, num_workers=N)``.

    Each worker ``w`` of ``N`` runs its own :class:`BalancedSampler` seeded with
    ``stream_seed(seed, rank, 1 + w)``; the loader hands out batches round-robin (batch ``i`` comes
    from worker ``i % N``), so the stream of batches depends only on (seed, rank, N). In a stream
    opened at ``start_step``, each worker skips the draws of the batches its stream made for steps
    before it, so a resumed run continues the same stream (same N required). Streams restarted at
    step ``origin`` (a resume that could not continue the saved ones) are seeded with
    ``restart = 1 + origin`` and count their batches from there.

    Args:
        datasets, patch_size, batch_size, augmentation, layout, modality_dropout, modality_subsets,
            one_channel, contrast_views: as for :class:`BalancedSampler`.
        seed, rank: see :func:`stream_seed`.
        start_step: batches already consumed by the run.
        origin: None for streams that began with the run, else the step where they were restarted.
    """

    def __init__(self, datasets: Sequence[LoadedDataset], patch_size: int | Sequence[int], batch_size: int,
                 seed: int = 0, rank: int = 0, start_step: int = 0, origin: int | None = None,
                 augmentation: AugmentationConfig | None = None, layout: Sequence[str] | None = None,
                 modality_dropout: float = 0.0, modality_subsets: str = DEFAULT_SUBSET_RULE,
                 one_channel: bool = False, contrast_views: bool = False):
        super().__init__()
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        if origin is not None and not 0 <= origin <= start_step:
            raise ValueError(f"origin must be None or in [0, start_step={start_step}], got {origin}")
        # check the arguments up front
        BalancedSampler(datasets, patch_size, batch_size, seed=0, layout=layout, modality_dropout=modality_dropout,
                        modality_subsets=modality_subsets, one_channel=one_channel, contrast_views=contrast_views)
        self.datasets, self.patch_size, self.batch_size = list(datasets), patch_size, batch_size
        self.seed, self.rank, self.start_step, self.origin = seed, rank, start_step, origin
        self.augmentation = augmentation
        self.layout, self.modality_dropout, self.modality_subsets = layout, modality_dropout, modality_subsets
        self.one_channel, self.contrast_views = one_channel, contrast_views

    def worker_sampler(self, worker: int, num_workers: int) -> BalancedSampler:
        """The sampler of loader worker ``worker`` of ``num_workers``, positioned at ``start_step``.

        A loader hands out its first batch from worker 0, so worker ``w`` of a loader opened ``k``
        batches into the streams plays the stream of worker ``(w + k) % num_workers``.
        """
        done = self.start_step - (self.origin or 0)
        tag = 0 if self.origin is None else self.origin + 1
        role = (worker + done) % num_workers
        sampler = BalancedSampler(self.datasets, self.patch_size, self.batch_size,
                                  seed=stream_seed(self.seed, self.rank, 1 + role, tag),
                                  augmentation=self.augmentation, layout=self.layout,
                                  modality_dropout=self.modality_dropout, modality_subsets=self.modality_subsets,
                                  one_channel=self.one_channel, contrast_views=self.contrast_views)
        sampler.skip(len(range(role, done, num_workers)))
        return sampler

    def __iter__(self):
        info = torch.utils.data.get_worker_info()  # (the DataLoader's workers already run 1 torch thread)
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        yield from self.worker_sampler(worker, num_workers)
