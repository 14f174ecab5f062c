"""The 3D U-Net of the paper's Appendix A (additive skip connections).

How Appendix A's "each path is a sequence of four convolution blocks" maps onto this module
(``depth = 4``, the paper's setting):

* **Contraction path**: ``depth`` blocks at ``depth`` resolutions with ``base, 2 base, 4 base, 8 base``
  channels (32, 64, 128, 256 in the paper), joined by ``depth - 1 = 3`` max-poolings 2x2x2.
  The last contraction block (the deepest, 256 channels at 1/8 resolution) is the bottleneck.
* **Expansion path**: four blocks as well, *the bottleneck counted as its first block* (it is the
  block where the contraction path turns into the expansion path; its output is trivially "added to
  the input of the corresponding block"). The remaining ``depth - 1 = 3`` expansion blocks (128, 64,
  32 channels) are joined by ``depth - 1`` transposed convolutions 2x2x2 with stride 2, each halving
  the channel count. The output of the contraction block at the same resolution is **added**
  (not concatenated) to each transposed convolution's output, so an expansion block's first
  convolution sees the same number of channels as the skip (e.g. 128), not twice as many.
* A 1x1x1 convolution maps the last expansion block to ``num_classes`` **logits**; the softmax of
  Appendix A belongs to the loss and to inference (see ``docs/architecture.md``).

This is the reading that keeps the paper's stated widths (32 -> 256, "doubled in every max-pooling
and halved in every transposed convolution") and a symmetric U: 7 convolution blocks, 3 poolings,
3 transposed convolutions. It costs about 166 k multiply-adds (332 kFLOP) per voxel for 2 input
channels and 5 classes. A reading with four poolings would need a 512-channel bottleneck, which
the paper never mentions.

A block is ``(Conv3d 3x3x3, padding 1 -> BatchNorm3d -> ReLU) x 2``. Convolutions followed by batch
normalisation have no bias (batch normalisation subtracts the batch mean, so such a bias is an
unused parameter; the BN shift plays its role); the transposed convolutions and the 1x1x1 head have
a bias, initialised to zero.

Initialisation (He et al. 2015, "fan_in" mode, ReLU gain): every convolution weight is drawn from
``N(0, 2 / fan_in)`` where ``fan_in`` is the number of inputs that reach one output value:
``in_channels * k^3`` for a convolution, ``in_channels`` for a 2x2x2 stride-2 transposed
convolution (each output voxel is reached by exactly one kernel tap per input channel; PyTorch's own
fan computation would use ``out_channels * 8`` there). Biases are zero, batch-norm weights one.

Inputs whose spatial size is not a multiple of ``2 ** (depth - 1)`` are padded at the far end of
each axis (replicate padding) up to the next multiple and the logits are cropped back, so the
output always has the input's spatial size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`UNet3D` (saved as JSON beside the weights).

    Attributes:
        in_channels: input channels (MR modalities), >= 1.
        num_classes: output channels (joint labels, background included), >= 2.
        base_channels: channels of the first block (32 in the paper), >= 1.
        depth: resolutions = blocks per path (4 in the paper), >= 1; ``depth - 1`` poolings.
    """

    in_channels: int
    num_classes: int
    base_channels: int = 32
    depth: int = 4

    def __post_init__(self) -> None:
        minimum = {"in_channels": 1, "num_classes": 2, "base_channels": 1, "depth": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"UNetConfig.{name} must be an int, got {type(value).__name__} ({value!r})")
            if value < low:
                raise ValueError(f"UNetConfig.{name} must be >= {low}, got {value}")

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the contraction blocks, from the first to the bottleneck."""
        return tuple(self.base_channels * 2**i for i in range(self.depth))

    @property
    def size_multiple(self) -> int:
        """Spatial sizes that need no padding are multiples of this (``2 ** (depth - 1)``)."""
        return 2 ** (self.depth - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> UNetConfig:
        """Build from a mapping (e.g. parsed JSON).

        Raises:
            TypeError: ``data`` is not a mapping.
            ValueError: unknown or missing keys (all of them named), or invalid values.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"UNetConfig.from_dict expects a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"UNetConfig: unknown keys {unknown}; valid keys are {sorted(known)}")
        missing = sorted(k for k in ("in_channels", "num_classes") if k not in data)
        if missing:
            raise ValueError(f"UNetConfig: missing required keys {missing}")
        return cls(**dict(data))


class ConvBlock(nn.Sequential):
    """Two ``Conv3d(3x3x3, padding=1) -> BatchNorm3d -> ReLU`` layers: ``(B, in, D, H, W) -> (B, out, D, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.in_channels = in_channels
        self.out_channels = out_channels


class UNet3D(nn.Module):
    """The paper's U-Net: ``(B, in_channels, D, H, W)`` float -> ``(B, num_classes, D, H, W)`` logits.

    Build with a config or with its fields as keywords::

        net = UNet3D(UNetConfig(in_channels=2, num_classes=5))
        net = UNet3D(in_channels=2, num_classes=5, base_channels=4, depth=2)

    Attributes:
        encoders: the contraction blocks; ``encoders[-1]`` is the bottleneck.
        ups: transposed convolutions, ``ups[i]`` maps ``channels[i + 1] -> channels[i]``.
        decoders: expansion blocks after the bottleneck, ``decoders[i]`` works at ``channels[i]``.
        head: the final 1x1x1 convolution.

    Raises:
        TypeError: both a config and keywords, or neither, are given.
    """

    def __init__(self, config: UNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is None:
            if not kwargs:
                raise TypeError("UNet3D needs a UNetConfig or its fields as keywords (in_channels, num_classes, ...)")
            config = UNetConfig.from_dict(kwargs)
        elif kwargs:
            raise TypeError(f"UNet3D: give either a config or keywords, not both (got keywords {sorted(kwargs)})")
        if not isinstance(config, UNetConfig):
            raise TypeError(f"UNet3D: config must be a UNetConfig, got {type(config).__name__}")
        self.config = config
        ch = config.channels
        self.encoders = nn.ModuleList(
            ConvBlock(config.in_channels if i == 0 else ch[i - 1], ch[i]) for i in range(config.depth)
        )
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.ups = nn.ModuleList(
            nn.ConvTranspose3d(ch[i + 1], ch[i], kernel_size=2, stride=2) for i in range(config.depth - 1)
        )
        self.decoders = nn.ModuleList(ConvBlock(ch[i], ch[i]) for i in range(config.depth - 1))
        self.head = nn.Conv3d(ch[0], config.num_classes, kernel_size=1)
        self.reset_parameters()

    @classmethod
    def from_dict(cls, data: Mapping) -> UNet3D:
        """A freshly initialised network from a config mapping (see :meth:`UNetConfig.from_dict`)."""
        return cls(UNetConfig.from_dict(data))

    def reset_parameters(self) -> None:
        """He initialisation (fan_in, ReLU gain), zero biases, batch-norm weight 1 / bias 0."""
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose3d):
                # each output voxel is reached by one tap per input channel (kernel == stride)
                fan_in = m.in_channels * math.prod(m.kernel_size) // math.prod(m.stride)
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
            elif isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``TypeError``/``ValueError`` unless ``x`` is a ``(B, in_channels, D, H, W)`` float tensor."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"UNet3D input x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 5:
            raise ValueError(f"UNet3D input x must be 5D (B, C, D, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"UNet3D input x must have {self.config.in_channels} channels (expected), "
                f"got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        if not x.is_floating_point():
            raise TypeError(f"UNet3D input x must be a floating-point tensor, got {x.dtype}")
        if min(x.shape[2:]) < 1 or x.shape[0] < 1:
            raise ValueError(f"UNet3D input x has an empty dimension: shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for every voxel.

        Args:
            x: ``(B, in_channels, D, H, W)`` float; any ``D, H, W >= 1``.

        Returns:
            ``(B, num_classes, D, H, W)`` logits (no softmax).

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: ``x`` is not 5D or its channel count differs from ``in_channels``.
        """
        self.check_input(x)
        spatial = tuple(x.shape[2:])  # (D, H, W)
        m = self.config.size_multiple
        pad = [(-s) % m for s in spatial]
        if any(pad):
            # F.pad lists the last axis first: (W_lo, W_hi, H_lo, H_hi, D_lo, D_hi); pad at the far end only
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
        skips = []
        for i, block in enumerate(self.encoders):
            if i > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        # x is the bottleneck output: the first block of the expansion path
        for i in reversed(range(len(self.decoders))):
            x = self.ups[i](x) + skips[i]  # additive skip: channels stay channels[i]
            x = self.decoders[i](x)
        x = self.head(x)
        if any(pad):
            x = x[:, :, : spatial[0], : spatial[1], : spatial[2]]
        return x


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (elements) of ``model``; buffers such as batch-norm statistics are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
