"""The base anatomy of every phantom: the MNI ICBM152 2009 template shipped inside nilearn.

nilearn's wheel holds the skull-stripped T1 and the GM/WM probability maps of the ICBM152 2009
template (197 x 233 x 189 voxels at 1 mm). There is no CSF map: CSF is what the brain mask holds
beyond GM and WM. nilearn is an optional dependency (``pip install ace-segmentation[bench]``) and is
imported only when a template is first loaded.

The template is brought into the project's conventions in one place, :func:`nifti_to_itk` (nibabel
arrays are indexed ``[i, j, k]`` with a RAS affine; the project uses ``[z, y, x]`` arrays with an ITK/LPS
:class:`~ACELib.io.image.Geometry`), then resampled onto a brain-centred grid with identity direction
(array axes run towards Left, Posterior, Superior), so that physical point = origin + spacing * index.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ACELib.io.image import Geometry, to_sitk

log = logging.getLogger(__name__)

TISSUES = ("background", "CSF", "GM", "WM")
"""Order of the tissue fraction maps (and tissue label values 0..3)."""

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_MASK_THRESHOLD = 0.2  # nilearn's own threshold on the template T1 for its brain mask
# Box (RAS mm) that holds the lateral and third ventricles of the MNI template and little sulcal CSF.
_VENTRICLE_BOX_RAS = ((-30.0, 30.0), (-45.0, 35.0), (-5.0, 35.0))


@dataclass(frozen=True, eq=False)
class Template:
    """The template resampled onto a phantom grid.

    Attributes:
        fractions: ``(4, D, H, W)`` float32 tissue fractions in :data:`TISSUES` order; they sum to 1.
        ventricles: ``(D, H, W)`` float32 in 0..1, the lateral and third ventricles.
        geometry: the grid (identity direction, LPS).
    """

    fractions: np.ndarray
    ventricles: np.ndarray
    geometry: Geometry

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.geometry.shape

    @property
    def spacing(self) -> float:
        return float(self.geometry.spacing[0])

    def tissue_labels(self) -> np.ndarray:
        """``(D, H, W)`` uint8 tissue label of each voxel (0 background, 1 CSF, 2 GM, 3 WM)."""
        return np.argmax(self.fractions, axis=0).astype(np.uint8)

    def centre_mm(self) -> np.ndarray:
        """Physical centre (LPS mm, ``(x, y, z)``) of the brain."""
        brain = 1.0 - self.fractions[0].astype(np.float64)
        total = brain.sum()
        zyx = [np.dot(brain.sum(axis=tuple(a for a in range(3) if a != axis)), np.arange(n)) / total
               for axis, n in enumerate(self.shape)]
        return np.asarray(self.geometry.origin) + np.asarray(self.geometry.spacing) * np.asarray(zyx[::-1])


def nifti_to_itk(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, Geometry]:
    """Convert a NIfTI array and its RAS affine (nibabel's convention) to the project's convention.

    nibabel indexes arrays ``[i, j, k]`` and maps voxel ``(i, j, k, 1)`` to RAS millimetres with a
    ``4 x 4`` affine. ITK (and this project) uses LPS millimetres (x and y negated) and arrays indexed
    ``[k, j, i]``. This is the only place where the phantoms convert between the two.

    Args:
        array: ``(I, J, K)`` voxel array as nibabel returns it.
        affine: ``(4, 4)`` voxel-to-RAS affine.

    Returns:
        ``(array, geometry)``: the array transposed to ``(K, J, I)`` = ``(D, H, W)`` and its geometry.

    Raises:
        ValueError: the array is not 3D or the affine is not ``4 x 4`` with non-degenerate columns.
    """
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"array must be 3D (I, J, K), got shape {array.shape}")
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4 x 4, got shape {affine.shape}")
    lps = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"affine has a zero column: {affine.tolist()}")
    direction = lps / spacing  # columns are the directions of the i, j, k axes
    origin = _RAS_TO_LPS @ affine[:3, 3]
    geometry = Geometry(
        size=tuple(int(n) for n in array.shape),
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(o) for o in origin),
        direction=tuple(float(d) for d in direction.reshape(-1)),
    )
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0))), geometry


_MISSING_NILEARN = (
    "the phantoms need the MNI ICBM152 template shipped with nilearn, which is not installed: "
    "pip install ace-segmentation[bench]  (or: pip install nilearn)"
)
_NILEARN_FILES = {  # inside nilearn/datasets/data/ (nilearn >= 0.8)
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def require_nilearn() -> None:
    """Raise ``ImportError`` naming the extra to install when nilearn (the template) is missing.

    Commands that build phantoms call this before creating anything, so a missing extra leaves no folder.
    """
    if importlib.util.find_spec("nilearn") is None:
        raise ImportError(_MISSING_NILEARN)


def _nilearn_datasets():
    try:
        from nilearn import datasets
    except ImportError as exc:
        raise ImportError(_MISSING_NILEARN) from exc
    return datasets


def _read_mni_maps() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The template's T1, GM and WM maps as ``(I, J, K)`` float32 arrays in 0..1 with their RAS affines.

    The files are read with nibabel from nilearn's package folder, which avoids importing nilearn
    (seconds); nilearn's own loaders are the fallback should the files move.

    Raises:
        ImportError: nilearn is not installed.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_MISSING_NILEARN)
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    paths = {name: folder / file for name, file in _NILEARN_FILES.items()}
    if all(p.is_file() for p in paths.values()):
        import nibabel as nib

        images = {name: nib.load(str(p)) for name, p in paths.items()}
    else:
        datasets = _nilearn_datasets()
        images = {"t1": datasets.load_mni152_template(resolution=1),
                  "gm": datasets.load_mni152_gm_template(resolution=1),
                  "wm": datasets.load_mni152_wm_template(resolution=1)}
    maps = {}
    for name, img in images.items():
        data = np.asarray(img.dataobj, dtype=np.float32)
        maps[name] = (data / max(float(data.max()), 1e-12), np.asarray(img.affine))  # 0..1, as nilearn does
    return maps


@functools.lru_cache(maxsize=1)
def _load_mni_1mm() -> tuple[np.ndarray, np.ndarray, Geometry]:
    """Tissue fractions ``(4, D, H, W)`` and ventricle mask of the template at its native 1 mm."""
    maps = {}
    geometry = None
    for name, (data, affine) in _read_mni_maps().items():
        arr, geom = nifti_to_itk(data, affine)
        if geometry is not None and geometry.differences(geom):
            raise ValueError(f"the MNI152 {name} map is not on the T1 grid: {geometry.differences(geom)}")
        geometry = geom
        maps[name] = np.clip(arr, 0.0, 1.0)
    gm, wm = maps["gm"], maps["wm"]
    over = np.maximum(gm + wm, 1.0)
    gm, wm = gm / over, wm / over
    brain = np.maximum((maps["t1"] > _MASK_THRESHOLD).astype(np.float32), gm + wm)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    fractions = np.stack([1.0 - brain, csf, gm, wm]).astype(np.float32)
    ventricles = _ventricle_mask(csf, geometry)
    log.debug("MNI152 template: %s voxels, ventricles %.1f ml", geometry.size, ventricles.sum() / 1000.0)
    return fractions, ventricles, geometry


def _ventricle_mask(csf: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Ventricles of the template: mostly-CSF voxels of the central box, large components only."""
    to_ras = _RAS_TO_LPS @ geometry.index_to_physical()[:3]  # (3, 4): (x, y, z, 1) index -> RAS mm
    z, y, x = (np.arange(n, dtype=np.float64) for n in csf.shape)
    box = np.ones(csf.shape, dtype=bool)
    for axis, (lo, hi) in enumerate(_VENTRICLE_BOX_RAS):
        m = to_ras[axis]
        coord = m[0] * x[None, None, :] + m[1] * y[None, :, None] + m[2] * z[:, None, None] + m[3]
        box &= (coord > lo) & (coord < hi)
    candidates = (csf > 0.5) & box
    region = _bounding_box(candidates)
    if region is None:
        raise ValueError("no ventricle found in the MNI152 template (unexpected template content)")
    comps = sitk.ConnectedComponent(sitk.GetImageFromArray(candidates[region].astype(np.uint8)))
    comps = sitk.GetArrayFromImage(sitk.RelabelComponent(comps))
    sizes = np.bincount(comps.reshape(-1))
    keep = np.flatnonzero(sizes[1:] >= 0.05 * sizes[1]) + 1
    out = np.zeros(csf.shape, dtype=np.float32)
    out[region] = np.isin(comps, keep)
    return out


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Slices of the smallest box holding every True voxel of a 3D mask (None when empty)."""
    out = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hit.size == 0:
            return None
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)  # type: ignore[return-value]


def phantom_grid(spacing: float, margin_mm: float = 4.0, multiple: int = 8) -> Geometry:
    """The brain-centred grid of the phantoms at ``spacing`` mm (identity direction, LPS).

    Args:
        spacing: isotropic voxel size in mm (> 0).
        margin_mm: space kept around the brain's bounding box.
        multiple: each size is rounded up to a multiple of this (U-Net friendly); 1 keeps it tight.

    Raises:
        ValueError: ``spacing``, ``margin_mm`` or ``multiple`` out of range.
        ImportError: nilearn is not installed.
    """
    _check_grid_args(spacing, margin_mm, multiple)
    fractions, _, geometry = _load_mni_1mm()
    box = _bounding_box(fractions[0] < 0.5)
    corners = np.array([[sl.start for sl in box], [sl.stop - 1 for sl in box]], dtype=np.float64)[:, ::-1]
    to_lps = geometry.index_to_physical()
    pts = np.array([[corners[a][0], corners[b][1], corners[c][2], 1.0]
                    for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    lps = (to_lps @ pts.T)[:3]
    lo, hi = lps.min(axis=1) - margin_mm, lps.max(axis=1) + margin_mm
    size = [int(math.ceil((b - a) / spacing)) + 1 for a, b in zip(lo, hi)]
    size = [multiple * int(math.ceil(n / multiple)) for n in size]
    centre = (lo + hi) / 2.0
    origin = centre - spacing * (np.asarray(size) - 1) / 2.0
    return Geometry(tuple(size), (float(spacing),) * 3, tuple(float(o) for o in origin))


def _check_grid_args(spacing, margin_mm, multiple) -> None:
    if not isinstance(spacing, (int, float)) or not 0.5 <= float(spacing) <= 16.0:
        raise ValueError(f"spacing must be a number of mm in 0.5..16, got {spacing!r}")
    if not isinstance(margin_mm, (int, float)) or margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm!r}")
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive integer, got {multiple!r}")


@functools.lru_cache(maxsize=4)
def load_template(spacing: float = 3.0, margin_mm: float = 4.0, multiple: int = 8) -> Template:
    """The MNI152 template on the phantom grid at ``spacing`` mm (cached per argument set).

    Maps are smoothed before resampling (Gaussian with sigma ``0.4 * sqrt(spacing**2 - 1)`` mm) so
    that coarse voxels hold the tissue fractions of their volume. The returned arrays are read-only.

    Args:
        spacing: isotropic voxel size in mm, e.g. 1.0 (full profile) or 3.0 (quick profile).
        margin_mm, multiple: see :func:`phantom_grid`.

    Returns:
        The :class:`Template`.

    Raises:
        ValueError: arguments out of range.
        ImportError: nilearn is not installed.
    """
    _check_grid_args(spacing, margin_mm, multiple)
    spacing = float(spacing)
    fractions, ventricles, source = _load_mni_1mm()
    target = phantom_grid(spacing, margin_mm, multiple)
    # average blocks of f^3 voxels first (exact partial volumes, and far less to smooth), f <= spacing / 1.5
    factor = max(1, int(spacing / (1.5 * max(source.spacing))))
    maps = [_block_mean(arr, factor) for arr in (*fractions[1:], ventricles)]
    source = _block_geometry(source, factor, maps[0].shape)
    sigma = 0.4 * math.sqrt(max(spacing**2 - max(source.spacing) ** 2, 0.0))
    ref = target.apply_to(sitk.Image([int(s) for s in target.size], sitk.sitkFloat32))
    out = []
    for arr in maps:
        img = to_sitk(arr, source)
        if sigma > 0:
            img = sitk.SmoothingRecursiveGaussian(img, sigma)
        res = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        out.append(np.clip(sitk.GetArrayFromImage(res), 0.0, 1.0))
    csf, gm, wm, vent = out
    tissue = csf + gm + wm
    scale = np.maximum(tissue, 1.0)
    fractions_t = np.stack([1.0 - tissue / scale, csf / scale, gm / scale, wm / scale]).astype(np.float32)
    vent = vent.astype(np.float32)
    fractions_t.flags.writeable = False
    vent.flags.writeable = False
    log.info("phantom template: %s voxels of %.2g mm", target.size, spacing)
    return Template(fractions_t, vent, target)


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor^3`` blocks (the incomplete blocks at the far ends are dropped)."""
    if factor == 1:
        return array
    d, h, w = (n // factor for n in array.shape)
    blocks = array[: d * factor, : h * factor, : w * factor].reshape(d, factor, h, factor, w, factor)
    return blocks.mean(axis=(1, 3, 5), dtype=np.float32)


def _block_geometry(geometry: Geometry, factor: int, shape: tuple[int, int, int]) -> Geometry:
    """Geometry of :func:`_block_mean`'s output: voxel ``i`` is the centre of source voxels
    ``factor * i .. factor * i + factor - 1``."""
    if factor == 1:
        return geometry
    to_lps = geometry.index_to_physical()
    origin = to_lps @ np.array([(factor - 1) / 2.0] * 3 + [1.0])
    return Geometry(
        size=(shape[2], shape[1], shape[0]),
        spacing=tuple(float(s * factor) for s in geometry.spacing),
        origin=tuple(float(o) for o in origin[:3]),
        direction=geometry.direction,
    )
