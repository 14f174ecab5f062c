"""Canonical voxel orientation: permute and flip array axes so that the direction is closest to a target.

Scans arrive stored in any voxel order: axial slices from the feet up or the head down, RAS or LPS
in-plane axes (a NIfTI written by most converters is ``RAS`` in ITK terms), sagittal acquisitions
with the slice axis along left-right, and oblique headers. A network sees only the array, so the
same head in two storages would be two different inputs. Training and inference therefore bring
every image to one *canonical orientation* first (recorded in the model file), and inference maps
its result back with the exact inverse.

Only axis permutations and flips are used: no voxel is interpolated, an oblique header keeps its
obliquity (the canonical grid is the same set of voxels, with the index axes chosen closest to the
target's axes), and labels in physical space are unchanged.

An orientation code has three letters, one of ``L/R``, ``P/A``, ``S/I`` each, naming the physical
direction (ITK's LPS space) toward which the index axes ``x, y, z`` increase: ``"LPS"`` is the
identity direction, the same convention as SimpleITK's ``DICOMOrient`` and nibabel's axis codes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ACELib.io.image import Geometry

#: letter -> (physical LPS axis, sign of the index direction along it)
_LETTERS = {"L": (0, 1), "R": (0, -1), "P": (1, 1), "A": (1, -1), "S": (2, 1), "I": (2, -1)}
CANONICAL_ORIENTATION = "LPS"


def check_orientation(code: str) -> str:
    """Return ``code`` upper-cased, or raise ``ValueError`` saying what a valid code looks like."""
    text = str(code).upper()
    axes = sorted(_LETTERS[c][0] for c in text if c in _LETTERS)
    if len(text) != 3 or axes != [0, 1, 2] or any(c not in _LETTERS for c in text):
        raise ValueError(f"orientation must be three letters, one of L/R, P/A and S/I each (e.g. "
                         f"{CANONICAL_ORIENTATION!r}, 'RAS', 'ASL'), got {code!r}")
    return text


def orientation_code(geometry: Geometry) -> str:
    """The closest orientation code of a geometry (``"LPS"`` for the identity direction)."""
    d = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    names = ("LR", "PA", "SI")
    out = []
    for j in range(3):  # index axis j: its dominant physical axis and sign
        p = int(np.argmax(np.abs(d[:, j])))
        out.append(names[p][0 if d[p, j] >= 0 else 1])
    return "".join(out)


@dataclass(frozen=True)
class Reorientation:
    """How an image's grid maps onto its reoriented grid, both ways, exactly.

    Index axis ``k`` (of ``x, y, z``) of the target grid is index axis ``axes[k]`` of the source
    grid, reversed when ``flips[k]``.

    Attributes:
        source: the grid as stored. target: the reoriented grid (same voxels, same physical space).
    """

    source: Geometry
    target: Geometry
    axes: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    @property
    def is_identity(self) -> bool:
        return self.axes == (0, 1, 2) and not any(self.flips)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """An array ``(..., D, H, W)`` on :attr:`source` as an array on :attr:`target` (a view where possible)."""
        array = _check_shape(array, self.source, "array")
        if self.is_identity:
            return array
        n = array.ndim
        lead = list(range(n - 3))
        # numpy axis n-1-k holds index axis k; target index axis k comes from source index axis axes[k]
        order = lead + [n - 1 - self.axes[k] for k in (2, 1, 0)]
        out = np.transpose(array, order)
        flip_axes = tuple(n - 1 - k for k in range(3) if self.flips[k])
        return np.flip(out, flip_axes) if flip_axes else out

    def invert(self, array: np.ndarray) -> np.ndarray:
        """An array ``(..., D, H, W)`` on :attr:`target` back on :attr:`source` (exact inverse of :meth:`apply`)."""
        array = _check_shape(array, self.target, "array")
        if self.is_identity:
            return array
        n = array.ndim
        flip_axes = tuple(n - 1 - k for k in range(3) if self.flips[k])
        out = np.flip(array, flip_axes) if flip_axes else array
        order = list(range(n - 3)) + [n - 1 - self.axes[k] for k in (2, 1, 0)]  # as in apply()
        inverse = [int(i) for i in np.argsort(order)]
        return np.transpose(out, inverse)


def _check_shape(array: np.ndarray, geometry: Geometry, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim < 3 or tuple(array.shape[-3:]) != geometry.shape:
        raise ValueError(f"{name} of shape {array.shape} does not end with the grid's shape {geometry.shape} (D, H, W)")
    return array


def reorientation(geometry: Geometry, code: str | None = CANONICAL_ORIENTATION) -> Reorientation:
    """The permutation and flips that bring ``geometry`` closest to orientation ``code``.

    ``code=None`` gives the identity (old model files without an orientation). For an oblique grid the
    assignment maximises the summed alignment of the index axes with the target axes.
    """
    if code is None:
        return Reorientation(geometry, geometry)
    code = check_orientation(code)
    d = np.asarray(geometry.direction, dtype=np.float64).reshape(3, 3)
    want = [_LETTERS[c] for c in code]  # target index axis k -> (physical axis, sign)
    axes = max(itertools.permutations(range(3)),
               key=lambda perm: sum(abs(d[want[k][0], perm[k]]) for k in range(3)))
    flips = tuple(bool(np.sign(d[want[k][0], axes[k]]) * want[k][1] < 0) for k in range(3))
    origin = np.asarray(geometry.origin, dtype=np.float64)
    columns = []
    for k in range(3):
        j = axes[k]
        col = d[:, j]
        if flips[k]:
            origin = origin + col * geometry.spacing[j] * (geometry.size[j] - 1)
            col = -col
        columns.append(col)
    target = Geometry(size=tuple(int(geometry.size[j]) for j in axes),
                      spacing=tuple(float(geometry.spacing[j]) for j in axes),
                      origin=tuple(float(o) for o in origin),
                      direction=tuple(float(v) for v in np.stack(columns, axis=1).reshape(-1)))
    return Reorientation(geometry, target, tuple(int(a) for a in axes), flips)


def reorient(array: np.ndarray, geometry: Geometry, code: str | None = CANONICAL_ORIENTATION
             ) -> tuple[np.ndarray, Reorientation]:
    """Reorient an array ``(..., D, H, W)`` on ``geometry`` to ``code``.

    Returns:
        ``(array, turn)``: the reoriented array (on ``turn.target``) and the :class:`Reorientation`,
        whose :meth:`~Reorientation.invert` maps results back onto ``geometry`` exactly.
    """
    turn = reorientation(geometry, code)
    return turn.apply(array), turn
