"""Choosing the compute device: CUDA, then Apple MPS, then CPU, with an explicit override."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an explicit device must be available.

    Raises:
        ValueError: unknown device name, or the requested accelerator is not available.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {list(DEVICE_CHOICES)} (optionally 'cuda:N'), got {device!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was requested but Apple MPS is not available on this machine")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype used on ``device`` (bf16 where supported on CUDA, else fp16), None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
