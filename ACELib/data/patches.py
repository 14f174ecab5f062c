"""Cut a box out of a volume, padded where it leaves the volume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def crop(array: np.ndarray, center: Sequence[int], size: Sequence[int], fill) -> np.ndarray:
    """The box of ``size`` (D, H, W) centred on ``center`` (voxel ``size // 2`` of the box).

    Args:
        array: ``(D, H, W)`` or ``(C, D, H, W)``.
        fill: value outside the volume: a scalar, or ``(C,)`` one per channel.

    Returns:
        ``(*size)`` or ``(C, *size)``, the dtype of ``array``.
    """
    spatial = array.shape[-3:]
    lead = array.shape[:-3]
    src, dst = [], []
    for c, s, n in zip(center, size, spatial):
        st = int(c) - int(s) // 2
        lo, hi = max(st, 0), min(st + int(s), n)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - st, max(hi, lo) - st))
    out = np.empty((*lead, *(int(s) for s in size)), dtype=array.dtype)
    fill = np.asarray(fill, dtype=array.dtype)
    out[...] = fill.reshape(fill.shape + (1, 1, 1)) if fill.ndim else fill
    out[(Ellipsis, *dst)] = array[(Ellipsis, *src)]
    return out


__all__ = ["crop"]
