"""A loaded model that segments whole volumes: preprocessing, sliding windows, fusion, resampling back."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ACELib.data.preprocessing import Preprocessing
from ACELib.device import autocast_dtype, resolve_device
from ACELib.inference.fast import optimize_for_inference, plan_window
from ACELib.inference.label_sources import combine_passes
from ACELib.inference.model_file import (
    ALL_MODALITIES,
    ANY_SUBSET,
    MemberSpec,
    ModelMetadata,
    build_networks,
    read_model_file,
    save_model,
)
from ACELib.inference.sliding_window import sliding_window_logits
from ACELib.io.image import Geometry, resample_like
from ACELib.labels import JointLabel
from ACELib.networks import UNetConfig, fuse_label_maps
from ACELib.networks.hetero import network_kind
from ACELib.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_WINDOW_VOXELS = 160 ** 3


@dataclass
class Prediction:
    """Result of :meth:`SegmentationModel.predict`.

    Attributes:
        labels: ``(D, H, W)`` uint8 joint label *values*.
        probabilities: ``(K, D, H, W)`` float32 softmax over the joint labels (single model only).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None = None


class SegmentationModel:
    """A model ready for inference (see :func:`load_model`): one joint network, or the members of a
    Multi-UNet (one :class:`MemberSpec` each, label maps fused by :func:`fuse_label_maps`)."""

    def __init__(self, metadata: ModelMetadata, networks: Sequence[torch.nn.Module], device: str | torch.device = "auto"):
        self.metadata = metadata
        self.networks = [n.eval() for n in networks]
        self.device = torch.device("cpu")
        self._fast: list[torch.nn.Module] | None = None  # folded, channels-last copies for inference
        self.to(device)

    @property
    def labels(self) -> tuple[JointLabel, ...]:
        return self.metadata.labels

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.metadata.modalities

    def to(self, device: str | torch.device) -> SegmentationModel:
        self.device = resolve_device(device)
        self.networks = [n.to(self.device) for n in self.networks]
        self._fast = None
        return self

    def fast_networks(self) -> list[torch.nn.Module]:
        """Inference copies of the networks (batch norm folded, channels-last), built once per device."""
        if self._fast is None:
            self._fast = [optimize_for_inference(n, self.device) for n in self.networks]
        return self._fast

    def save(self, path: str | os.PathLike):
        """Write the model file (weights are copied to the CPU; the model stays where it is)."""
        return save_model(path, self.metadata, self.networks)

    # ------------------------------------------------------------------ inference
    def predict(self, image: np.ndarray, spacing: Sequence[float] | None = None, *,
                geometry: Geometry | None = None,
                window: Sequence[int] | None = None, overlap: float = 0.25, batch_size: int = 1,
                window_voxels: int = DEFAULT_WINDOW_VOXELS,
                amp: bool | None = None, return_probabilities: bool = False,
                progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
                modalities: Sequence[str] | None = None) -> Prediction:
        """Segment one volume.

        The image is brought to the model's canonical orientation (axis permutations and flips only,
        when the model records one and ``geometry`` is given), resampled and normalised as in
        training; the labels are mapped back onto exactly the input's grid.

        Args:
            image: ``(C, D, H, W)`` raw intensities, in the order of :attr:`modalities`, or of
                ``modalities`` when given.
            spacing: voxel spacing ``(x, y, z)`` in mm; needed when the model resamples.
            geometry: the image's full geometry (spacing and direction); preferred over ``spacing``,
                and needed for the orientation (without it the array is taken as stored, i.e. as if
                its direction were the identity).
            window: sliding window (D, H, W); None plans the fewest, largest windows within
                ``window_voxels`` that overlap by a margin (``overlap`` is then not used).
            overlap, batch_size: sliding-window settings for an explicit ``window``.
            amp: mixed precision (default: on for CUDA).
            return_probabilities: also return softmax maps (single models only).
            progress: ``progress(done, total, message)``; cancel: returns True to stop.
            modalities: the name of each channel of ``image`` (any order); a hetero-modal model
                (``metadata.modality_subsets``) takes any subset it accepts, the others need all of
                theirs. None: all of :attr:`modalities`, in their order.

        Raises:
            ValueError: wrong channel count, modalities the model does not accept (an empty, unknown or
                incomplete list), a geometry that does not fit, or non-finite voxels.
            Cancelled: ``cancel()`` returned True.
        """
        image = np.asarray(image)
        names = self.metadata.input_names(self.modalities if modalities is None else modalities)
        self.metadata.check_modalities(names)
        if image.ndim != 4 or image.shape[0] != len(names):
            raise ValueError(
                f"image must be (C, D, H, W) with C = {len(names)} channels {list(names)}, got shape {image.shape}"
            )
        order = [names.index(m) for m in self.modalities if m in names]  # model order, present ones
        image, names = image[order], tuple(names[i] for i in order)
        prep = self.metadata.preprocessing
        if geometry is None:
            if prep.spacing is not None and spacing is None:
                raise ValueError("this model resamples to a fixed spacing: pass the image's geometry or spacing (x, y, z)")
            geometry = Geometry.for_array(image.shape[1:], spacing)
        elif geometry.shape != image.shape[1:]:
            raise ValueError(f"geometry of shape {geometry.shape} (D, H, W) does not fit the image, shape {image.shape}")
        elif spacing is not None and not np.allclose(spacing, geometry.spacing):
            raise ValueError(f"spacing {tuple(spacing)} disagrees with the geometry's {geometry.spacing}; pass one")
        turn = prep.reorientation(geometry)
        # resampling depends only on size and spacing: a local grid keeps results independent of the header
        geom = turn.target.at_origin()
        work, work_geom = prep.resample(np.ascontiguousarray(turn.apply(image), dtype=np.float32), geom)
        work = prep.normalize(work)
        joint, probs = self._segment(work, window, overlap, batch_size, window_voxels, amp,
                                     return_probabilities, progress, cancel, names)
        values = np.array([lab.value for lab in self.labels], dtype=np.uint8)[joint]
        if work_geom != geom:  # back to the (reoriented) input grid
            values = resample_like(values, work_geom, geom, is_label=True)
            if probs is not None:
                probs = np.stack([resample_like(p, work_geom, geom, is_label=False) for p in probs])
        values = np.ascontiguousarray(turn.invert(values))
        probs = np.ascontiguousarray(turn.invert(probs)) if probs is not None else None
        return Prediction(values, probs)

    def _segment(self, work: np.ndarray, window, overlap, batch_size, window_voxels, amp, return_probabilities,
                 progress, cancel, names: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Joint label indices ``(D, H, W)`` uint8 of a preprocessed ``(C, D, H, W)`` image whose channels
        are ``names`` (in model order; default all :attr:`modalities`), and ``(K, D, H, W)`` float32
        probabilities over all joint labels when asked (single models)."""
        names = tuple(self.modalities if names is None else names)
        x = torch.from_numpy(work).to(self.device)
        use_amp = (self.device.type == "cuda") if amp is None else amp
        dtype = autocast_dtype(self.device) if use_amp else None
        if window is None:
            window, overlap = plan_window(work.shape[1:], window_voxels), 0.0
        joint_maps, probs = [], None
        n = len(self.networks)
        for i, (net, member) in enumerate(zip(self.fast_networks(), self.metadata.members)):
            sub_progress = None
            if progress is not None:
                def sub_progress(d, t, msg, i=i, name=member.name):
                    progress(i * t + d, n * t, msg if n == 1 else f"{msg} ({name})")

            passes = self.metadata.inference_passes(names)
            if len(passes) > 1 and network_kind(member.network) == "hetero":
                scores = self._combined_probabilities(net, member, x, passes, names, dtype,
                                                      (window, overlap, batch_size), sub_progress, cancel)
            else:
                member_input, run = member_runner(net, member, x, names, self.device, dtype)
                scores = sliding_window_logits(run, member_input, len(member.classes), window, overlap, batch_size,
                                               progress=sub_progress, cancel=cancel)
                if n == 1 and return_probabilities:
                    scores = torch.softmax(scores, dim=0)
            if n == 1 and return_probabilities:
                probs = scores
            classes = torch.tensor(member.classes, device=scores.device)
            joint_maps.append(classes[scores.argmax(0)])
            del scores
        joint = joint_maps[0] if n == 1 else fuse_label_maps(joint_maps, priority=list(range(n)))
        joint = torch.as_tensor(joint).to("cpu").numpy().astype(np.uint8)
        prob_np = None
        if probs is not None:
            prob_np = np.zeros((len(self.labels), *probs.shape[1:]), dtype=np.float32)
            prob_np[list(self.metadata.members[0].classes)] = probs.float().cpu().numpy()
        return joint, prob_np

    def _combined_probabilities(self, net, member, x: torch.Tensor, passes, names, dtype, windowing, progress,
                                cancel) -> torch.Tensor:
        """``(K, D, H, W)`` probabilities of a hetero-modal member, each label read from the pass over
        the modalities it was trained with (:func:`ACELib.inference.label_sources.combine_passes`)."""
        window, overlap, batch_size = windowing
        probs = {}
        for j, sub in enumerate(passes):
            keep = [names.index(m) for m in sub]
            member_input, run = member_runner(net, member, x[keep], sub, self.device, dtype)
            pass_progress = None
            if progress is not None:
                def pass_progress(d, t, msg, j=j):
                    progress(j * t + d, len(passes) * t, f"{msg} (inputs {'+'.join(passes[j])})")
            logits = sliding_window_logits(run, member_input, len(member.classes), window, overlap, batch_size,
                                           progress=pass_progress, cancel=cancel)
            probs[sub] = torch.softmax(logits.float(), dim=0)
        index = {self.labels[c].name: k for k, c in enumerate(member.classes)}
        return combine_passes(probs, self.metadata.label_sources, names, index.get)


def member_runner(net: torch.nn.Module, member, x: torch.Tensor, names: Sequence[str], device: torch.device,
                  dtype: torch.dtype | None):
    """A member's input and the window function for :func:`sliding_window_logits`.

    Args:
        x: ``(C, D, H, W)`` preprocessed channels named ``names``.

    Returns:
        ``(input (C_m, D, H, W), run(batch (B, C_m, ...)) -> logits)``; a hetero-modal member gets all
        its modalities with zeros for absent ones, and ``run`` hands it the present mask.
    """
    hetero = network_kind(member.network) == "hetero"
    if hetero:
        present = torch.tensor([m in names for m in member.modalities], dtype=torch.bool, device=device)
        member_input = x.new_zeros((len(member.modalities), *x.shape[1:]))
        for i, m in enumerate(member.modalities):
            if m in names:
                member_input[i] = x[names.index(m)]
    else:
        member_input = x[[names.index(m) for m in member.modalities]]

    def run(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if hetero:
                return net(batch, present.expand(batch.shape[0], -1))
            return net(batch)

    return member_input, run


def load_model(path: str | os.PathLike, device: str | torch.device = "auto",
               expected_sha256: str | None = None) -> SegmentationModel:
    """Load a model file (never unpickles); verify its SHA-256 first when ``expected_sha256`` is given."""
    meta, nets = read_model_file(path, expected_sha256)
    log.info("loaded %s model %s (%s) with labels %s", meta.kind, path, ", ".join(meta.modalities),
             [lab.name for lab in meta.labels])
    return SegmentationModel(meta, nets, device)


def create_model(labels: Sequence[JointLabel], modalities: Sequence[str], base_channels: int = 32, depth: int = 4,
                 seed: int = 0, preprocessing: Preprocessing | None = None, device: str = "cpu",
                 hetero: bool = False):
    """A fresh, untrained single joint model (for training, and for tests of the front ends).

    Args:
        hetero: a hetero-modal network that takes any non-empty subset of ``modalities``.

    Returns:
        :class:`SegmentationModel` in eval mode.
    """
    labels = tuple(labels)
    cfg = UNetConfig(in_channels=len(modalities), num_classes=len(labels), base_channels=base_channels, depth=depth)
    network = {**cfg.to_dict(), "kind": "hetero"} if hetero else cfg.to_dict()
    meta = ModelMetadata(labels=labels, members=(MemberSpec("joint", tuple(modalities), tuple(range(len(labels))),
                                                            network),),
                         preprocessing=preprocessing or Preprocessing(),
                         modality_subsets=ANY_SUBSET if hetero else ALL_MODALITIES)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        nets = build_networks(meta)
    return SegmentationModel(meta, nets, device)
