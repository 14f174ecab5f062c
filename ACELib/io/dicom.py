"""DICOM input: a folder of DICOM files read as one 3D image per series, through SimpleITK's series reader.

A folder may hold several series (a study exported at once: T1, FLAIR, localisers...): they are
listed with their Series Instance UID and description, and one is chosen by UID. Geometry comes out
in the project's convention (see :mod:`ACELib.io.image`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ACELib.io.image import Geometry, check_3d, read_channels, read_image

_TAGS = {"description": "0008|103e", "modality": "0008|0060", "number": "0020|0011"}


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series of a folder: its UID, description, modality, series number and files."""

    uid: str
    description: str
    modality: str
    number: str
    files: tuple[str, ...]

    def __str__(self) -> str:
        what = " ".join(x for x in (self.modality, f"#{self.number}" if self.number else "", self.description) if x)
        return f"{self.uid} ({what or 'no description'}, {len(self.files)} files)"


def _tag(reader: sitk.ImageFileReader, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def _series_ids(folder: Path) -> tuple[str, ...]:
    """Series Instance UIDs in ``folder``, without ITK's warning on stderr for a folder that has none
    (every folder given as input is probed, most of them hold NIfTI files)."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The DICOM series directly inside ``folder`` (not in sub-folders), by series number then UID."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for uid in _series_ids(folder):
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[0])
        try:
            reader.ReadImageInformation()
            tags = {k: _tag(reader, v) for k, v in _TAGS.items()}
        except RuntimeError:
            tags = dict.fromkeys(_TAGS, "")
        out.append(SeriesInfo(uid, tags["description"], tags["modality"], tags["number"], files))
    return sorted(out, key=lambda s: (int(s.number) if s.number.isdigit() else 1 << 30, s.uid))


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder that directly holds at least one DICOM series."""
    return Path(path).is_dir() and bool(_series_ids(Path(path)))


def choose_series(folder: str | os.PathLike, series_uid: str | None = None) -> SeriesInfo:
    """The series of ``folder`` with ``series_uid``, or its only series when ``series_uid`` is None.

    Raises:
        ValueError: no series; an unknown UID; or several series and no UID, listing them all.
    """
    series = dicom_series(folder)
    if not series:
        raise ValueError(f"{str(folder)!r} is a folder without DICOM series (and not an image file)")
    listing = "\n  ".join(str(s) for s in series)
    if series_uid is None:
        if len(series) == 1:
            return series[0]
        raise ValueError(f"{str(folder)!r} holds {len(series)} DICOM series; choose one by UID with "
                         f"series_uid (--series UID):\n  {listing}")
    for s in series:
        if s.uid == series_uid:
            return s
    raise ValueError(f"{str(folder)!r} has no DICOM series {series_uid!r}; it holds:\n  {listing}")


def read_dicom(folder: str | os.PathLike, series_uid: str | None = None, dtype=np.float32
               ) -> tuple[np.ndarray, Geometry]:
    """Read one DICOM series of ``folder`` (see :func:`choose_series`) as ``(array (D, H, W), geometry)``.

    Raises:
        ValueError: see :func:`choose_series`; or the series cannot be read as one 3D image.
    """
    series = choose_series(folder, series_uid)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise ValueError(f"{str(folder)!r}: DICOM series {series.uid} cannot be read as one volume "
                         f"({str(exc).strip().splitlines()[-1]})") from None
    check_3d(img, f"{folder} (series {series.uid})")
    return sitk.GetArrayFromImage(img).astype(dtype, copy=False), Geometry.from_sitk(img)


def read_volume(path: str | os.PathLike, series_uid: str | None = None, dtype=np.float32
                ) -> tuple[np.ndarray, Geometry]:
    """An image file (NIfTI, NRRD, MHA) or a DICOM series folder as ``(array (D, H, W), geometry)``.

    Raises:
        ValueError: ``series_uid`` given for a file, or as :func:`read_dicom` / ``read_image``.
    """
    if Path(path).is_dir():
        return read_dicom(path, series_uid, dtype)
    if series_uid is not None:
        raise ValueError(f"series_uid {series_uid!r} given for {str(path)!r}, which is a file, not a DICOM folder")
    return read_image(path, dtype)


def read_inputs(paths: Sequence[str | os.PathLike], series_uids: Sequence[str | None] | None = None
                ) -> tuple[np.ndarray, Geometry]:
    """Like :func:`ACELib.io.image.read_channels`, where any path may also be a DICOM series folder.

    Args:
        series_uids: one per path (None: the folder's only series, or a file).

    Raises:
        ValueError: naming the input whose geometry differs from the first's.
    """
    uids = list(series_uids) if series_uids is not None else [None] * len(paths)
    if len(uids) != len(paths):
        raise ValueError(f"{len(uids)} series UIDs for {len(paths)} inputs")
    if not any(Path(p).is_dir() for p in paths):
        return read_channels(paths)
    arrays, geom0 = [], None
    for p, uid in zip(paths, uids):
        arr, geom = read_volume(p, uid)
        if geom0 is not None and geom0.differences(geom):
            raise ValueError(f"{str(p)!r} does not share the geometry of {str(paths[0])!r}: "
                             + "; ".join(geom0.differences(geom)))
        geom0 = geom0 or geom
        arrays.append(arr)
    return np.stack(arrays), geom0
