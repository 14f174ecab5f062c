"""Reading and writing 3D images (NIfTI, NRRD, MHA) through SimpleITK, with their geometry.

Array layout, stated once for the whole project: an image in memory is a numpy array indexed
``[z, y, x]`` (SimpleITK's ``GetArrayFromImage`` order; ``D, H, W`` in tensor terms), and a
multi-channel image is ``(C, D, H, W)``. Its :class:`Geometry` is in ITK's physical convention
(LPS): ``size``/``spacing``/``origin`` in ``(x, y, z)`` order and a row-major 3x3 ``direction``.
This module is the only place where axis orders are converted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ACELib.io.atomic import atomic_image_path
from ACELib.io.image_checks import check_nifti_data, check_voxels

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass(frozen=True)
class Geometry:
    """Where the voxels of a 3D image are in physical space (ITK/LPS convention).

    Attributes:
        size: voxels along ``(x, y, z)``.
        spacing: mm along ``(x, y, z)``.
        origin: physical position of voxel ``(0, 0, 0)``.
        direction: row-major 3x3 direction cosines (9 floats).
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def shape(self) -> tuple[int, int, int]:
        """numpy array shape ``(D, H, W)`` = ``(z, y, x)``."""
        return (self.size[2], self.size[1], self.size[0])

    @classmethod
    def from_sitk(cls, img: sitk.Image | sitk.ImageFileReader) -> Geometry:
        """The geometry of an image, or of the header an image reader has read."""
        return cls(
            size=tuple(int(s) for s in img.GetSize()),
            spacing=tuple(float(s) for s in img.GetSpacing()),
            origin=tuple(float(o) for o in img.GetOrigin()),
            direction=tuple(float(d) for d in img.GetDirection()),
        )

    @classmethod
    def for_array(cls, shape: Sequence[int], spacing: Sequence[float] | None = None) -> Geometry:
        """The geometry of a ``(D, H, W)`` array whose voxels are ``spacing`` ``(x, y, z)`` mm apart
        (1 mm when None), origin at 0 and identity direction: an array taken as stored."""
        return cls(tuple(int(n) for n in reversed(tuple(shape))),
                   tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))

    def at_origin(self) -> Geometry:
        """The same voxel grid (size and spacing) with its origin at 0 and the identity direction."""
        return Geometry(self.size, self.spacing, (0.0, 0.0, 0.0))

    def apply_to(self, img: sitk.Image) -> sitk.Image:
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img

    def differences(self, other: Geometry, tol: float = 1e-4) -> list[str]:
        """Human-readable list of what differs between two geometries (empty when they agree)."""
        out = []
        if tuple(self.size) != tuple(other.size):
            out.append(f"size {self.size} vs {other.size}")
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if a.shape != b.shape or not np.allclose(a, b, atol=tol * max(1.0, float(np.abs(a).max(initial=0)))):
                out.append(f"{name} {np.round(a, 4).tolist()} vs {np.round(b, 4).tolist()}")
        return out

    def to_dict(self) -> dict:
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(tuple(d["size"]), tuple(d["spacing"]), tuple(d["origin"]), tuple(d["direction"]))

    def index_to_physical(self) -> np.ndarray:
        """``(4, 4)`` matrix mapping ``(x, y, z, 1)`` voxel indices to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.direction).reshape(3, 3) @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m


def image_suffix(path: str | os.PathLike) -> str:
    """The image suffix of ``path`` (``.nii.gz`` counts as one), or raise naming the supported ones."""
    name = str(path).lower()
    for s in IMAGE_SUFFIXES:
        if name.endswith(s):
            return s
    raise ValueError(f"{str(path)!r}: unsupported image file type; expected one of {list(IMAGE_SUFFIXES)}")


def read_sitk(path: str | os.PathLike) -> sitk.Image:
    """Read an image file, refusing truncated or damaged data and NaN/Inf voxels (see
    :mod:`ACELib.io.image_checks`).

    Raises:
        FileNotFoundError: no such file. ValueError: naming ``path``: unsupported file type, unreadable
            header, data cut short or damaged, non-finite voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    suffix = image_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        check_nifti_data(path)  # ITK reads short NIfTI data as zeros and NaN as 0: refuse those first
    reader = _header_reader(path, suffix)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"{str(path)!r}: truncated or damaged: the header reads but the voxel data does not "
                         f"({_itk_reason(exc)})") from None


def read_image_header(path: str | os.PathLike) -> Geometry:
    """The geometry of a 3D scalar image, from its header alone: no voxel is read, so damaged or
    non-finite voxel data is found only when the image is read (:func:`read_image`).

    Raises:
        FileNotFoundError: no such file. ValueError: naming ``path``: unsupported file type, unreadable
            header, not a 3D scalar image, or (MHA, NRRD) a header declaring more data than the file holds.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    reader = _header_reader(path, image_suffix(path))
    _check_3d_scalar(reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents(), path)
    return Geometry.from_sitk(reader)


def _header_reader(path: Path, suffix: str) -> sitk.ImageFileReader:
    """An image reader of ``path`` whose header has been read (and checked against the file's size)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ValueError(f"{str(path)!r}: cannot be read as an image ({_itk_reason(exc)})") from None
    _check_declared_size(reader, path, suffix)
    return reader


def _itk_reason(exc: RuntimeError) -> str:
    return str(exc).strip().splitlines()[-1]


_MAX_COMPRESSION = 1100  # deflate cannot shrink data by more than about 1032:1
_COMPRESSED = re.compile(rb"^\s*(CompressedData\s*=\s*True|encoding\s*:\s*(gz|gzip|bz2|bzip2))\s*$", re.M | re.I)


def _check_declared_size(reader: sitk.ImageFileReader, path: Path, suffix: str) -> None:
    """Refuse, before allocating, a single-file image whose header declares more data than the file holds."""
    if suffix not in (".mha", ".nrrd"):
        return  # NIfTI is checked exactly; detached headers (.mhd, .nhdr) keep their data elsewhere
    voxels = int(np.prod(reader.GetSize(), dtype=np.int64)) * reader.GetNumberOfComponents()
    declared = voxels * _component_bytes(reader.GetPixelID(), reader.GetNumberOfComponents())
    with open(path, "rb") as f:
        compressed = _COMPRESSED.search(f.read(65536)) is not None
    size = path.stat().st_size
    if declared > (_MAX_COMPRESSION * size if compressed else size):
        raise ValueError(f"{str(path)!r}: truncated or damaged: the header declares {tuple(reader.GetSize())} "
                         f"voxels ({declared} bytes of voxel data) but the file holds only {size} bytes")


def _component_bytes(pixel_id: int, components: int) -> int:
    """Bytes per voxel component of a SimpleITK pixel type."""
    probe = sitk.Image([1, 1, 1], pixel_id, max(1, components))
    return sitk.GetArrayViewFromImage(probe).itemsize


def read_image(path: str | os.PathLike, dtype=np.float32) -> tuple[np.ndarray, Geometry]:
    """Read a 3D scalar image.

    Returns:
        ``(array, geometry)``: ``array`` is ``(D, H, W)`` of ``dtype``.

    Raises:
        ValueError: the image is not 3D, or has several components per voxel.
    """
    img = read_sitk(path)
    check_3d(img, path)
    array = sitk.GetArrayFromImage(img)
    check_voxels(array, path)
    return array.astype(dtype, copy=False), Geometry.from_sitk(img)


def check_3d(img: sitk.Image, path) -> None:
    """Raise ``ValueError`` unless ``img`` is a 3D scalar image (any 4D image is refused, even one of a single volume)."""
    _check_3d_scalar(img.GetDimension(), img.GetSize(), img.GetNumberOfComponentsPerPixel(), path)


def _check_3d_scalar(dim: int, size, components: int, path) -> None:
    if dim != 3:
        raise ValueError(f"{str(path)!r}: expected a 3D image, got {dim}D of size {size}")
    if components != 1:
        raise ValueError(f"{str(path)!r}: expected one value per voxel, got {components} components")


def read_channels(paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, Geometry]:
    """Read one file per modality into a ``(C, D, H, W)`` float32 array; all must share geometry.

    Raises:
        ValueError: naming the file whose geometry differs from the first's.
    """
    if not paths:
        raise ValueError("read_channels: no image paths given")
    arrays, geom0 = [], None
    for p in paths:
        arr, geom = read_image(p)
        if geom0 is None:
            geom0 = geom
        else:
            diff = geom0.differences(geom)
            if diff:
                raise ValueError(
                    f"{str(p)!r} does not share the geometry of {str(paths[0])!r}: " + "; ".join(diff)
                )
        arrays.append(arr)
    return np.stack(arrays), geom0


def to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A ``(D, H, W)`` array with ``geometry`` as a SimpleITK image."""
    if array.ndim != 3 or tuple(array.shape) != geometry.shape:
        raise ValueError(f"array of shape {array.shape} does not fit geometry of shape {geometry.shape} (D, H, W)")
    return geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))


def write_image(path: str | os.PathLike, array: np.ndarray, geometry: Geometry, compress: bool = True) -> None:
    """Write a ``(D, H, W)`` array with ``geometry`` atomically (temporary file, then rename)."""
    image_suffix(path)
    img = to_sitk(array, geometry)
    with atomic_image_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=compress)


def resample_like(array: np.ndarray, source: Geometry, target: Geometry, is_label: bool) -> np.ndarray:
    """Resample a ``(D, H, W)`` array from ``source`` onto ``target`` geometry (linear, or nearest for labels)."""
    img = to_sitk(array, source)
    ref = sitk.Image([int(s) for s in target.size], img.GetPixelID())
    target.apply_to(ref)
    interp = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(img, ref, sitk.Transform(), interp, 0.0, img.GetPixelID())
    return sitk.GetArrayFromImage(out)


def resample_to_spacing(array: np.ndarray, geometry: Geometry, spacing: Sequence[float], is_label: bool) -> tuple[np.ndarray, Geometry]:
    """Resample a ``(D, H, W)`` array to a new voxel ``spacing`` (x, y, z) covering the same extent."""
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers (x, y, z), got {spacing}")
    size = tuple(max(1, int(round(n * s / t))) for n, s, t in zip(geometry.size, geometry.spacing, spacing))
    target = Geometry(size, spacing, geometry.origin, geometry.direction)
    return resample_like(array, geometry, target, is_label), target
