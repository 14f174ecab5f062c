"""Checks that an image file is whole before (and after) it is read: every image read goes through them.

SimpleITK's NIfTI reader accepts a file whose voxel data is cut short (the missing voxels become 0),
a header without any voxel data, and turns NaN/Inf voxels into 0. :func:`check_nifti_data` therefore
streams the voxel data of a NIfTI file once (decompressing ``.nii.gz`` chunk by chunk, so nothing of
the declared size is allocated) and compares its length with what the header declares, counting
non-finite values on the way. The other formats (NRRD, MetaImage) raise on short data in ITK itself
and keep NaN, so :func:`check_voxels` on the array read suffices for them.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

_CHUNK = 1 << 16  # bytes per streamed read (gzip buffers internally)


def _nifti_header(path: Path) -> tuple[object, int]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise ValueError(f"{str(path)!r}: not a readable NIfTI header ({exc})") from None
    # where the voxels start: vox_offset, or (written as 0 by some writers) right after header and extensions
    return img.header, int(img.dataobj.offset)


def check_nifti_data(path: str | os.PathLike) -> None:
    """Raise unless the voxel data of a NIfTI file is complete and finite.

    Raises:
        ValueError: naming ``path``: the file holds fewer voxel bytes than its header declares
            (truncated, or a header without data), the compressed stream is damaged, or voxels are
            NaN/Inf.
    """
    path = Path(path)
    header, offset = _nifti_header(path)
    dtype = header.get_data_dtype()
    shape = header.get_data_shape()
    voxels = int(np.prod(shape, dtype=np.int64)) if shape else 0
    expected = voxels * dtype.itemsize
    compressed = str(path).lower().endswith(".gz")
    if not compressed:  # refuse before reading anything when the file is plainly too short
        available = path.stat().st_size - offset
        if available < expected:
            raise ValueError(_short_message(path, shape, expected, max(available, 0)))
    got, bad = _stream_voxels(path, compressed, offset, expected, dtype)
    if got < expected:
        raise ValueError(_short_message(path, shape, expected, got))
    if bad:
        raise ValueError(f"{str(path)!r}: {bad} of {voxels} voxels are NaN or Inf; "
                         "replace them (e.g. by 0) before using the image")


def _short_message(path: Path, shape, expected: int, got: int) -> str:
    return (f"{str(path)!r}: truncated or damaged: the header declares {tuple(int(s) for s in shape)} voxels "
            f"({expected} bytes of voxel data) but the file holds {got} bytes")


def _stream_voxels(path: Path, compressed: bool, offset: int, expected: int, dtype: np.dtype) -> tuple[int, int]:
    """``(voxel bytes present, non-finite voxel count)``, reading at most ``expected`` bytes."""
    floating = np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating)
    skip, got, bad, carry = offset, 0, 0, b""
    for chunk in _file_bytes(path, compressed):
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
        chunk = chunk[: expected - got]
        got += len(chunk)
        if floating and chunk:
            chunk = carry + chunk
            usable = len(chunk) - len(chunk) % dtype.itemsize
            values = np.frombuffer(chunk[:usable], dtype=dtype)
            bad += int(values.size - np.count_nonzero(np.isfinite(values)))
            carry = chunk[usable:]
        if got >= expected:
            break
    return got, bad


def _file_bytes(path: Path, compressed: bool):
    """The (decompressed) bytes of a file, chunk by chunk; a damaged gzip stream just ends early."""
    with open(path, "rb") as f:
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 16) if compressed else None
        while raw := f.read(_CHUNK):
            if inflate is None:
                yield raw
                continue
            while raw:
                try:
                    yield inflate.decompress(raw)
                except zlib.error:
                    return
                raw = inflate.unused_data if inflate.eof else b""
                if inflate.eof:  # a further gzip member follows
                    inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)


def check_voxels(array: np.ndarray, path: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``path`` when ``array`` is empty or holds NaN/Inf voxels."""
    if array.size == 0:
        raise ValueError(f"{str(path)!r}: the image has no voxels (size {tuple(array.shape)})")
    if np.issubdtype(array.dtype, np.floating):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ValueError(f"{str(path)!r}: {bad} of {array.size} voxels are NaN or Inf; "
                             "replace them (e.g. by 0) before using the image")


def constant_value(array: np.ndarray) -> float | None:
    """The single value of an image whose voxels are all equal (blank), else None."""
    if array.size == 0:
        return None
    lo, hi = array.min(), array.max()
    return float(lo) if lo == hi else None


def integer_labels(array: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """A label map as int64; values that are not whole numbers (0.5, say) are refused, never truncated.

    Raises:
        ValueError: naming ``path`` and a few of the offending values.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return array.astype(np.int64, copy=False)
    rounded = np.rint(array)
    off = np.abs(rounded - array) > 1e-3
    if off.any():
        examples = sorted({float(v) for v in array[off][:1000].tolist()})[:5]
        raise ValueError(f"{str(path)!r}: a label map must hold integer values, found {int(off.sum())} voxels "
                         f"with non-integer values such as {examples}")
    return rounded.astype(np.int64)
