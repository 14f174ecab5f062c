"""Write synthetic volumes as DICOM series (one file per slice, SimpleITK's DICOM writer) for tests."""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ACELib.io.image import Geometry


def write_dicom_series(folder: Path, array: np.ndarray, geometry: Geometry, uid: str, description: str,
                       number: int) -> None:
    """Write an int16 ``(D, H, W)`` volume as one DICOM file per slice (SimpleITK's DICOM writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = geometry.apply_to(sitk.GetImageFromArray(array.astype(np.int16)))
    d = img.GetDirection()
    tags = {"0008|0060": "MR", "0008|103e": description, "0020|000e": uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|0011": str(number), "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0018|0050": str(geometry.spacing[2]), "0008|0008": "DERIVED\\SECONDARY"}
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved = locale.setlocale(locale.LC_ALL)  # GDCM's writer sets the process locale to "C": restore it after
    try:
        _write_slices(writer, img, tags, folder, uid, description)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_slices(writer, img, tags, folder, uid, description) -> None:
    for k in range(img.GetDepth()):
        piece = img[:, :, k]
        for tag, value in tags.items():
            piece.SetMetaData(tag, value)
        piece.SetMetaData("0020|0032", "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, k))))
        piece.SetMetaData("0020|0013", str(k + 1))
        piece.SetMetaData("0008|0018", f"{uid}.{k + 1}")
        writer.SetFileName(str(folder / f"{description}_{k:03d}.dcm"))
        writer.Execute(piece)
