"""A hetero-modal U-Net (HeMIS-style fusion, Havaei et al. 2016): one model for any non-empty subset
of its modalities.

Layout::

    x (B, M, D, H, W), present (B, M) bool
      -> per modality m: stem_m = Conv3d(1 -> base, 3x3x3) -> BatchNorm3d -> ReLU   (own weights and BN)
      -> fusion over the modalities *present in each sample*:
         concat(mean, variance)  (B, 2 base, ...)   (variance 0 when one modality is present)
         -> Conv3d(2 base -> base, 1x1x1) -> BatchNorm3d -> ReLU
      -> the paper's U-Net body (:class:`UNet3D` with ``in_channels = base``) whose first block keeps
         only its second convolution (the stems play the role of the first one)
      -> (B, num_classes, D, H, W) logits

Absent modalities are never computed and never enter the mean or the variance (they are not
zero-filled into it), so the fused features, and the output, do not depend on the order in which
the modalities are stacked, nor on what an absent channel holds. Each stem's batch norm sees only
the samples that have its modality.

Cost: against the single-input :class:`UNet3D` of the same width (whose first convolution costs
``27 base`` multiply-adds per voxel), the ``M`` stems and the fusion add ``(M - 1) 27 base + 2 base^2``
multiply-adds per voxel; the rest is the same network. For the paper's
width (32) and four modalities that is 1.03x the FLOPs of a single-input :class:`UNet3D`, for the quick
profile's (8, depth 3) 1.08x (measured with PyTorch's FLOP counter, ``benchmarks/hetero_cost.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ACELib.networks.unet import UNet3D, UNetConfig

KIND = "hetero"
"""The ``"kind"`` value of a hetero-modal network's description in a model file."""


def fuse_modalities(features: list[torch.Tensor | None], present: torch.Tensor) -> torch.Tensor:
    """HeMIS fusion: per-sample mean and (population) variance over the present modalities.

    Args:
        features: one entry per modality: ``(B, C, D, H, W)`` float features (any values in rows of
            absent samples; they are ignored), or None when no sample of the batch has it.
        present: ``(B, M)`` bool, ``M == len(features)``; every row has at least one True.

    Returns:
        ``(B, 2 C, D, H, W)`` float32: ``concat(mean, variance)``; the variance is 0 where one
        modality is present. Exact two-pass statistics (no ``E[x^2] - E[x]^2`` cancellation).

    Raises:
        ValueError: ``present`` of the wrong shape, or a row with no modality present.
    """
    B = present.shape[0]
    if present.ndim != 2 or present.shape[1] != len(features):
        raise ValueError(f"present must be (B, M) with M = {len(features)}, got shape {tuple(present.shape)}")
    counts = present.sum(dim=1)  # (B,)
    if bool((counts == 0).any()):
        raise ValueError(f"present: every sample needs at least one modality, got counts {counts.tolist()}")
    used = [(m, f) for m, f in enumerate(features) if f is not None]
    if not used:
        raise ValueError("fuse_modalities: no features given")
    ref = used[0][1]
    shape = (B, 1) + (1,) * (ref.ndim - 2)  # broadcast (B,) over (C, D, H, W)
    w = present.to(torch.float32)
    n = counts.to(torch.float32).reshape(shape)
    total = torch.zeros(ref.shape, dtype=torch.float32, device=ref.device)
    for m, f in used:
        total = total + f.float() * w[:, m].reshape(shape)
    mean = total / n
    sq = torch.zeros_like(mean)
    for m, f in used:
        sq = sq + (f.float() - mean).square() * w[:, m].reshape(shape)
    return torch.cat([mean, sq / n], dim=1)


class HeteroUNet3D(nn.Module):
    """``(B, M, D, H, W)`` + ``(B, M)`` present mask -> ``(B, num_classes, D, H, W)`` logits.

    Args:
        config: the network's sizes; ``config.in_channels`` is the number of modalities ``M``.

    Attributes:
        stems: ``stems[m]``, modality ``m``'s first convolution (1 -> base) with its own batch norm.
        fusion: 1x1x1 convolution of ``concat(mean, variance)`` (2 base -> base) with batch norm.
        body: a :class:`UNet3D` with ``in_channels = base``; ``body.encoders[0]`` keeps one convolution.

    Example::

        net = HeteroUNet3D(UNetConfig(in_channels=4, num_classes=6, base_channels=8, depth=3))
        logits = net(x, present)          # x (2, 4, 32, 32, 32); present (2, 4) bool
    """

    kind = KIND

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise TypeError(f"HeteroUNet3D: config must be a UNetConfig, got {type(config).__name__}")
        self.config = config
        base = config.base_channels
        self.stems = nn.ModuleList(_conv_bn_relu(1, base, 3) for _ in range(config.in_channels))
        self.fusion = _conv_bn_relu(2 * base, base, 1)
        self.body = UNet3D(UNetConfig(base, config.num_classes, base, config.depth))
        self.body.encoders[0] = _conv_bn_relu(base, base, 3)  # its first convolution is the stems'
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation as :meth:`UNet3D.reset_parameters` (same rules, all modules)."""
        UNet3D.reset_parameters(self)

    def to_dict(self) -> dict:
        """The network description of a model file: the config plus ``"kind": "hetero"``."""
        return {**self.config.to_dict(), "kind": KIND}

    def check_input(self, x: torch.Tensor, present: torch.Tensor) -> None:
        """Raise ``TypeError``/``ValueError`` unless ``x`` is ``(B, M, D, H, W)`` float and ``present``
        ``(B, M)`` bool with at least one modality per sample."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"HeteroUNet3D input x must be a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
        M = self.config.in_channels
        if x.ndim != 5 or x.shape[1] != M:
            raise ValueError(f"HeteroUNet3D input x must be (B, {M}, D, H, W), got shape {tuple(x.shape)}")
        if not isinstance(present, torch.Tensor) or present.dtype != torch.bool:
            raise TypeError(f"HeteroUNet3D present must be a bool tensor, got {getattr(present, 'dtype', type(present))}")
        if tuple(present.shape) != (x.shape[0], M):
            raise ValueError(f"HeteroUNet3D present must be (B, M) = {(x.shape[0], M)}, got {tuple(present.shape)}")
        if not bool(present.any(dim=1).all()):
            raise ValueError(f"HeteroUNet3D present: every sample needs at least one modality, got {present.tolist()}")

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every voxel.

        Args:
            x: ``(B, M, D, H, W)`` float; channels of absent modalities are ignored (any value).
            present: ``(B, M)`` bool, which modalities each sample has; None: all of them.

        Returns:
            ``(B, num_classes, D, H, W)`` logits (no softmax).
        """
        if present is None:
            present = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        present = present.to(x.device)
        self.check_input(x, present)
        spatial = tuple(x.shape[2:])  # (D, H, W)
        mult = self.config.size_multiple
        pad = [(-s) % mult for s in spatial]
        if any(pad):  # pad the input (as UNet3D does), so the stems see the same borders
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
        features: list[torch.Tensor | None] = []
        for m, stem in enumerate(self.stems):
            rows = present[:, m]
            if not bool(rows.any()):
                features.append(None)
                continue
            if bool(rows.all()):
                features.append(stem(x[:, m : m + 1]))
                continue
            # only the samples that have modality m enter its stem (and its batch-norm statistics)
            part = stem(x[rows, m : m + 1])
            full = part.new_zeros((x.shape[0], *part.shape[1:]))
            full[rows] = part
            features.append(full)
        fused = self.fusion(fuse_modalities(features, present).to(x.dtype))
        out = self.body(fused)
        if any(pad):
            out = out[:, :, : spatial[0], : spatial[1], : spatial[2]]
        return out


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    """``Conv3d(kernel, no bias) -> BatchNorm3d -> ReLU`` (batch norm folds into the convolution at inference)."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def network_kind(description: dict) -> str:
    """``"unet"`` or ``"hetero"``: the kind of a model file's network description (default ``"unet"``)."""
    return str(description.get("kind", "unet"))


def build_network(description: dict) -> nn.Module:
    """A freshly initialised network from a model file's description (:class:`UNet3D` or
    :class:`HeteroUNet3D`, by its ``"kind"``).

    Raises:
        ValueError: an unknown kind (the valid ones are listed) or invalid sizes.
    """
    kind = network_kind(description)
    sizes = {k: v for k, v in description.items() if k != "kind"}
    if kind == "unet":
        return UNet3D(UNetConfig.from_dict(sizes))
    if kind == KIND:
        return HeteroUNet3D(UNetConfig.from_dict(sizes))
    raise ValueError(f"network kind must be one of ['unet', {KIND!r}], got {kind!r}")


def network_description(net: nn.Module) -> dict:
    """What a model file records of ``net`` (inverse of :func:`build_network`)."""
    if isinstance(net, HeteroUNet3D):
        return net.to_dict()
    return net.config.to_dict()
