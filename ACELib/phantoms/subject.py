"""One phantom subject: deformed template anatomy, optional lesions, synthetic MR images and labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ACELib.io.image import Geometry
from ACELib.phantoms.anatomy import (
    GM,
    WM,
    Anatomy,
    mass_effect,
    random_deformation,
    source_points,
    warp_anatomy,
)
from ACELib.phantoms.fields import sample_nearest, smooth_noise
from ACELib.phantoms.head import add_extracerebral_csf, draw_head_shape, head_fractions
from ACELib.phantoms.lesions import edema_mask, pick_tumour_centre, tumour_core, wmh_mask
from ACELib.phantoms.mri import CLASSES, Scanner, synthesize
from ACELib.phantoms.template import Template

LESION_KINDS = ("none", "wmh", "tumor")
"""What a subject may carry: nothing, white matter hyperintensities, or a tumour with edema."""

LESION_VALUES = {"wmh": {"WMH": 1}, "tumor": {"edema": 1, "tumor": 2}}
"""Values of :attr:`Subject.lesion` per lesion kind."""


@dataclass(frozen=True)
class Subject:
    """A generated subject.

    Attributes:
        images: modality -> ``(D, H, W)`` float32 image.
        tissue: ``(D, H, W)`` uint8 tissue labels (0 background, 1 CSF, 2 GM, 3 WM); a lesion is
            labelled as the tissue it sits in, as in real anatomy datasets.
        lesion: ``(D, H, W)`` uint8 lesion labels (:data:`LESION_VALUES`: WMH 1, or edema 1 and
            tumour 2; 0 elsewhere).
        geometry: the grid of every map.
        info: what was drawn (volumes in ml, sizes in mm).
        synth: ``(D, H, W)`` uint8 generator class of each voxel (``mri.CLASSES`` order: the largest
            fraction), the label map domain randomisation draws new images from.
    """

    images: Mapping[str, np.ndarray]
    tissue: np.ndarray
    lesion: np.ndarray
    geometry: Geometry
    info: Mapping[str, float] = field(default_factory=dict)
    synth: np.ndarray | None = None

    @property
    def joint(self) -> np.ndarray:
        """``(D, H, W)`` uint8 joint labels: tissue 0..3, lesions 4 (WMH or edema) and 5 (tumour)."""
        return np.where(self.lesion > 0, self.lesion + 3, self.tissue).astype(np.uint8)

    def stack(self, modalities: Sequence[str]) -> np.ndarray:
        """The images of ``modalities`` as one ``(C, D, H, W)`` float32 array, in that order."""
        missing = [m for m in modalities if m not in self.images]
        if missing:
            raise ValueError(f"the subject has no {missing} image; it has {list(self.images)}")
        return np.stack([self.images[m] for m in modalities])


def make_subject(template: Template, rng: np.random.Generator, scanner: Scanner, *,
                 modalities: Sequence[str] = ("T1", "FLAIR"), lesion: str = "none",
                 wmh_load_ml: float | None = None, tumour_radius_mm: float | None = None,
                 ventricle_enlargement_mm: float | None = None, deformation: float = 1.0,
                 head: bool = False) -> Subject:
    """Generate one subject: anatomy, lesions, images and labels.

    Args:
        template: the base anatomy (:func:`ACELib.phantoms.load_template`).
        rng: the only source of randomness (same state -> identical subject).
        scanner: acquisition settings (:func:`ACELib.phantoms.draw_scanner`).
        modalities: images to synthesise (names of ``scanner.contrast``).
        lesion: one of :data:`LESION_KINDS`.
        wmh_load_ml: WMH volume (``lesion="wmh"``); drawn log-uniformly in 0.5..50 ml when None.
        tumour_radius_mm: mean tumour core radius (``lesion="tumor"``); drawn in 8..20 mm when None.
        ventricle_enlargement_mm: widening of the ventricles; when None it grows with the WMH load
            (older brains), or is drawn in 0..2 mm.
        deformation: scales the random affine and non-linear deformation (0: the template itself).
        head: wrap the brain in skull, fat and scalp (skull-on image; the template needs room
            around the brain, e.g. ``load_template(spacing, margin_mm=24)``). Every subject gets the
            extracerebral CSF rim (:mod:`ACELib.phantoms.head`).

    Returns:
        The :class:`Subject`.

    Raises:
        ValueError: unknown ``lesion`` kind or modality, or a negative size.
    """
    _check_arguments(scanner, modalities, lesion, deformation)
    info: dict[str, float] = {}
    load, ventricle_enlargement_mm = _draw_wmh_load_and_ventricles(rng, lesion, wmh_load_ml, ventricle_enlargement_mm)
    info["ventricle_enlargement_mm"] = ventricle_enlargement_mm

    deform = random_deformation(
        rng, template, rotation_deg=6.0 * deformation, scale=0.08 * deformation,
        translation_mm=4.0 * deformation, warp_mm=3.0 * deformation, enlargement_mm=ventricle_enlargement_mm,
    )
    points = source_points(template, deform)
    geom = template.geometry
    lesion_map = np.zeros(geom.shape, dtype=np.uint8)
    extra = np.zeros((len(CLASSES) - 4, *geom.shape), dtype=np.float32)  # WMH, edema, tumor, necrosis, head

    if lesion == "tumor":
        points, centre, radius = _place_tumour(rng, template, points, tumour_radius_mm)
    anatomy = warp_anatomy(template, points)
    shape = draw_head_shape(rng, ventricle_enlargement_mm)
    anatomy = add_extracerebral_csf(anatomy, rng, shape)
    info.update({f"head_{k}": v for k, v in shape.to_dict().items()})
    fr = anatomy.fractions.copy()
    if lesion == "tumor":
        _paint_tumour(rng, anatomy, centre, radius, fr, extra, lesion_map, info)
    if lesion == "wmh":
        _paint_wmh(rng, anatomy, load, fr, extra, lesion_map, info)
    info["ventricles_ml"] = float(anatomy.ventricles.sum()) * anatomy.voxel_ml

    if head:
        extra[4:7] = head_fractions(anatomy, rng, shape)
        fr[0] -= extra[4:7].sum(axis=0)
        fr[0] = np.clip(fr[0], 0.0, None)
    fractions = np.concatenate([fr, extra])
    texture = smooth_noise(rng, geom, max(3.0, 2.0 * geom.spacing[0]))  # shared by all modalities
    images = {m: synthesize(fractions, geom, scanner, m, rng, texture) for m in modalities}
    synth = np.argmax(fractions, axis=0).astype(np.uint8)
    return Subject(images=images, tissue=anatomy.tissue, lesion=lesion_map, geometry=geom, info=info, synth=synth)


def _check_arguments(scanner: Scanner, modalities: Sequence[str], lesion: str, deformation: float) -> None:
    if lesion not in LESION_KINDS:
        raise ValueError(f"lesion must be one of {list(LESION_KINDS)}, got {lesion!r}")
    unknown = [m for m in modalities if m not in scanner.contrast]
    if unknown or not modalities:
        raise ValueError(f"modalities must be a non-empty subset of {list(scanner.contrast)}, got {list(modalities)}")
    if deformation < 0:
        raise ValueError(f"deformation must be >= 0, got {deformation}")


def _draw_wmh_load_and_ventricles(rng: np.random.Generator, lesion: str, wmh_load_ml: float | None,
                                  ventricle_enlargement_mm: float | None) -> tuple[float | None, float]:
    """The WMH load in ml (None without WMH) and the ventricles' widening, which grows with the load."""
    load = None
    if lesion == "wmh":
        load = float(np.exp(rng.uniform(np.log(0.5), np.log(50.0)))) if wmh_load_ml is None else wmh_load_ml
        if load < 0:
            raise ValueError(f"wmh_load_ml must be >= 0, got {load}")
        if ventricle_enlargement_mm is None:
            ventricle_enlargement_mm = float(rng.uniform(0.4, 0.9) * np.log1p(load) + rng.uniform(0.0, 1.0))
    if ventricle_enlargement_mm is None:
        ventricle_enlargement_mm = float(rng.uniform(0.0, 2.0))
    return load, ventricle_enlargement_mm


def _place_tumour(rng: np.random.Generator, template: Template, points: np.ndarray, tumour_radius_mm: float | None
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Draw the tumour's radius and centre and push the anatomy aside (mass effect).

    Returns:
        ``(points, centre, radius)``: the displaced template points, the centre in LPS mm, the radius in mm.
    """
    geom = template.geometry
    radius = float(rng.uniform(8.0, 20.0)) if tumour_radius_mm is None else tumour_radius_mm
    if radius <= 0:
        raise ValueError(f"tumour_radius_mm must be > 0, got {radius}")
    healthy = sample_nearest(template.tissue_labels(), geom, points)
    z, y, x = pick_tumour_centre(rng, healthy, geom, radius)
    centre = np.asarray(geom.origin) + np.asarray(geom.spacing) * np.array([x, y, z], dtype=np.float64)
    # the mass effect pushes the template points read around the centre's template point
    points = mass_effect(points, points[:, z, y, x], radius, strength=float(rng.uniform(0.3, 0.6)))
    return points, centre, radius


def _paint_tumour(rng: np.random.Generator, anatomy: Anatomy, centre: np.ndarray, radius: float, fr: np.ndarray,
                  extra: np.ndarray, lesion_map: np.ndarray, info: dict) -> None:
    """Grow core, necrosis and edema; move their share out of the tissue fractions ``fr`` (in place)."""
    necrotic = float(rng.uniform(0.3, 0.6)) if rng.random() < 0.6 else 0.0
    core, necrosis = tumour_core(rng, anatomy, centre, radius, necrosis_fraction=necrotic)
    edema = edema_mask(rng, anatomy, core, extent_mm=float(rng.uniform(0.5, 2.0) * radius))
    extra[1] = edema * (fr[GM] + fr[WM])
    fr[GM:] *= ~edema
    extra[2] = core & ~necrosis
    extra[3] = necrosis
    fr *= ~core
    lesion_map[edema] = LESION_VALUES["tumor"]["edema"]
    lesion_map[core] = LESION_VALUES["tumor"]["tumor"]
    info.update(tumour_radius_mm=radius, tumor_ml=float(core.sum()) * anatomy.voxel_ml,
                edema_ml=float(edema.sum()) * anatomy.voxel_ml)


def _paint_wmh(rng: np.random.Generator, anatomy: Anatomy, load: float, fr: np.ndarray, extra: np.ndarray,
               lesion_map: np.ndarray, info: dict) -> None:
    """Draw WMH of about ``load`` ml in the white matter; move their share out of ``fr`` (in place)."""
    wmh = wmh_mask(rng, anatomy, load)
    extra[0] = wmh * fr[WM]
    fr[WM] *= ~wmh
    lesion_map[wmh] = LESION_VALUES["wmh"]["WMH"]
    info.update(wmh_target_ml=load, wmh_ml=float(wmh.sum()) * anatomy.voxel_ml)
