"""Segment case files: one case (one file per modality) or a folder of cases."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ACELib.data.contract import DATASET_JSON, DatasetInfo, list_image_cases, read_dataset_info
from ACELib.inference.model import SegmentationModel
from ACELib.inference.model_file import ALL_MODALITIES
from ACELib.io.dicom import choose_series, dicom_series, is_dicom_folder, read_inputs, read_volume
from ACELib.io.image import image_suffix, read_image, write_image
from ACELib.io.image_checks import constant_value
from ACELib.io.outputs import check_outputs
from ACELib.metrics.volumes import label_volumes
from ACELib.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseInput:
    """A case to segment: its channel files (or DICOM series folders) and the modality name of each.

    Attributes:
        series: for DICOM folders, the Series Instance UID of each channel (None: the folder's only
            series; ignored for files); empty when no channel needs one.
    """

    name: str
    image_paths: tuple[Path, ...]
    modalities: tuple[str, ...]
    series: tuple[str | None, ...] = ()

    def series_of(self, modality: str) -> str | None:
        return self.series[self.modalities.index(modality)] if self.series else None


def as_model_input(case: CaseInput, model: SegmentationModel) -> CaseInput:
    """The case as the model names its inputs (:meth:`ModelMetadata.input_names`): for an any-contrast
    model, its one image is the model's input whatever it is called; other models take it as it is.

    Raises:
        ValueError: an any-contrast model is given a case of more than one image (named).
    """
    if not model.metadata.any_contrast:
        return case
    try:
        names = model.metadata.input_names(case.modalities)
        model.metadata.check_modalities(names)
    except ValueError as exc:
        raise ValueError(f"case {case.name!r}: {exc}") from None
    return CaseInput(case.name, case.image_paths, names, case.series)


def case_modalities(case: CaseInput, model: SegmentationModel) -> tuple[str, ...]:
    """The model's modalities that ``case`` provides, in the model's order (channels of other names
    are not used). A hetero-modal model takes any subset it accepts; the others need all of theirs.

    Raises:
        ValueError: the case's files and names do not pair up, or it lacks modalities the model needs
            (named, with the model's rule).
    """
    if len(case.image_paths) != len(case.modalities):
        raise ValueError(f"case {case.name!r}: {len(case.image_paths)} files for modalities {list(case.modalities)}")
    names = tuple(m for m in model.modalities if m in case.modalities)
    missing = [m for m in model.modalities if m not in case.modalities]
    if model.metadata.modality_subsets == ALL_MODALITIES:
        if missing:
            raise ValueError(
                f"case {case.name!r}: the model needs modalities {list(model.modalities)} but the input has "
                f"{list(case.modalities)} (missing {missing})"
            )
        return names
    try:
        model.metadata.check_modalities(names)
    except ValueError as exc:
        raise ValueError(f"case {case.name!r}: {exc}") from None
    return names


def select_channels(case: CaseInput, model: SegmentationModel) -> list[Path]:
    """The files of ``case`` for the model, in the model's modality order (see :func:`case_modalities`)."""
    return [case.image_paths[case.modalities.index(m)] for m in case_modalities(case, model)]


def probability_paths(output: Path, model: SegmentationModel) -> list[Path]:
    suffix = image_suffix(output)
    stem = output.name[: -len(suffix)]
    return [output.with_name(f"{stem}_prob_{lab.name}{suffix}") for lab in model.labels]


def predict_case(model: SegmentationModel, case: CaseInput, output: str | os.PathLike, *, overwrite: bool = False,
                 probabilities: bool = False, progress=None, cancel=None, **predict_kwargs) -> Path:
    """Segment one case and write the joint label map with exactly the input's geometry.

    Args:
        output: label map path (``.nii.gz``, ``.nrrd``, ``.mha``...).
        probabilities: also write ``{stem}_prob_{label}{suffix}`` per joint label.
        predict_kwargs: passed to :meth:`SegmentationModel.predict` (window, overlap, batch_size, amp).

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is False.
        ValueError: an output would replace an input file, or an input is damaged or blank (constant).
        OSError: an output cannot be written (checked before any work).
    """
    output = Path(output)
    image_suffix(output)
    outputs = [output, *(probability_paths(output, model) if probabilities else ())]
    check_outputs(outputs, case.image_paths, overwrite=overwrite)
    case = as_model_input(case, model)
    names = case_modalities(case, model)
    paths = select_channels(case, model)
    image, geom = read_inputs(paths, [case.series_of(m) for m in names])
    refuse_blank(image, paths)
    pred = model.predict(image, geometry=geom, return_probabilities=probabilities, progress=progress,
                         cancel=cancel, modalities=names, **predict_kwargs)
    write_image(output, pred.labels, geom)
    if probabilities and pred.probabilities is not None:
        for p, prob in zip(probability_paths(output, model), pred.probabilities):
            write_image(p, prob.astype(np.float32), geom)
    return output


def refuse_blank(image: np.ndarray, paths: Sequence[Path]) -> None:
    """Raise ``ValueError`` naming the file of a channel whose voxels all have one value."""
    for channel, path in zip(image, paths):
        value = constant_value(channel)
        if value is not None:
            raise ValueError(f"{str(path)!r}: blank image (every voxel is {value:g}); nothing to segment")


def cases_in_folder(folder: str | os.PathLike, modalities: Sequence[str] | None = None) -> list[CaseInput]:
    """Cases of a folder of ``{case}_{XXXX}{ending}`` files.

    Channel names come from ``modalities`` when given, else from a ``dataset.json`` in the folder or
    its parent (nnU-Net layout: ``imagesTs/`` beside ``dataset.json``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {str(folder)!r} does not exist")
    info_dir = next((d for d in (folder, folder.parent) if (d / DATASET_JSON).is_file()), None)
    if info_dir is not None:
        info = read_dataset_info(info_dir)
        names = tuple(modalities) if modalities else info.channel_names
    elif modalities:
        info, names = DatasetInfo(tuple(modalities), {"background": 0}, _ending_in(folder)), tuple(modalities)
    else:
        raise ValueError(f"{str(folder)!r}: no dataset.json here or in the parent; name the channels (--modalities)")
    if len(names) != len(info.channel_names):
        raise ValueError(f"{len(names)} modality names {list(names)} for {len(info.channel_names)} channels")
    return [CaseInput(c.name, c.image_paths, names) for c in list_image_cases(folder, info)]


def _ending_in(folder: Path) -> str:
    for f in sorted(folder.iterdir()):
        try:
            return image_suffix(f)
        except ValueError:
            continue
    raise ValueError(f"{str(folder)!r} holds no image files")


def predict_folder(model: SegmentationModel, cases: Sequence[CaseInput], out_dir: str | os.PathLike, *,
                   file_ending: str = ".nii.gz", overwrite: bool = False, skip_existing: bool = False,
                   probabilities: bool = False, progress: Progress | None = None,
                   **predict_kwargs) -> list[Path]:
    """Segment every case into ``out_dir/{case}{file_ending}``.

    Existing outputs are an error, listed all at once before any work, unless ``overwrite`` or
    ``skip_existing``.
    """
    out_dir = Path(out_dir)
    outputs = [out_dir / f"{c.name}{file_ending}" for c in cases]
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not (overwrite or skip_existing):
        raise FileExistsError(f"{len(existing)} outputs exist already (use --overwrite or --skip-existing): "
                              + ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else ""))
    missing = [str(p) for c in cases for p in c.image_paths if not (p.is_file() or p.is_dir())]
    if missing:
        raise FileNotFoundError(f"{len(missing)} input files are missing: " + ", ".join(missing[:5]))
    check_outputs(outputs, [p for c in cases for p in c.image_paths], overwrite=True)
    written = []
    for i, (case, out) in enumerate(zip(cases, outputs)):
        if out.exists() and skip_existing and not overwrite:
            log.info("skipping %s: %s exists", case.name, out)
        else:
            predict_case(model, case, out, overwrite=True, probabilities=probabilities, **predict_kwargs)
            written.append(out)
        if progress is not None:
            progress(i + 1, len(cases), case.name)
    return written


def case_from_paths(paths: Sequence[str | os.PathLike], modalities: Sequence[str],
                    series: Sequence[str] | None = None, name: str | None = None) -> CaseInput:
    """One case from image files and/or DICOM series folders, one per modality.

    Args:
        series: Series Instance UIDs, one per DICOM folder among ``paths``, in order; a single folder
            with several series may be given once with one UID per modality.

    Raises:
        ValueError: the numbers of paths, modalities and UIDs do not fit.
    """
    paths = [Path(p) for p in paths]
    series = list(series or [])
    if len(paths) == 1 and len(series) > 1 and paths[0].is_dir():
        paths = paths * len(series)
    if len(paths) != len(modalities):
        raise ValueError(f"{len(paths)} inputs for modalities {list(modalities)}")
    folders = [i for i, p in enumerate(paths) if p.is_dir()]
    if series and len(series) != len(folders):
        raise ValueError(f"{len(series)} series UIDs for {len(folders)} DICOM folders among the inputs "
                         "(give one UID per DICOM folder, in order)")
    uids: list[str | None] = [None] * len(paths)
    for i, uid in zip(folders, series):
        uids[i] = uid
    return CaseInput(name or paths[0].name, tuple(paths), tuple(modalities), tuple(uids) if series else ())


def dicom_cases(folder: str | os.PathLike, modalities: Sequence[str],
                series: Sequence[str] | None = None) -> list[CaseInput]:
    """Cases of a DICOM folder: the folder itself when it holds series, else each sub-folder that does.

    A case folder with one series serves a one-modality model; otherwise ``series`` names one UID per
    modality (for a single case folder). Every problem is checked before any work.

    Raises:
        ValueError: no DICOM series, or a case whose series must be chosen (listing them).
    """
    folder = Path(folder)
    roots = [folder] if is_dicom_folder(folder) else sorted(d for d in folder.iterdir() if is_dicom_folder(d))
    if not roots:
        raise ValueError(f"{str(folder)!r} holds no DICOM series (nor sub-folders with some)")
    if series and len(roots) > 1:
        raise ValueError(f"series UIDs name the series of one case; {str(folder)!r} holds {len(roots)} case "
                         "folders: segment them one at a time (--input CASE_FOLDER --series ...)")
    cases, problems = [], []
    for root in roots:
        try:
            for uid in series or []:
                choose_series(root, uid)  # raises on an unknown UID, listing the series there are
            found = dicom_series(root)
            if not series and (len(modalities) > 1 or len(found) > 1):
                listing = "\n  ".join(str(x) for x in found)
                raise ValueError(f"{str(root)!r} holds {len(found)} DICOM series for modalities {list(modalities)}: "
                                 f"name one per modality, in order, with series (--series UID ...):\n  {listing}")
            cases.append(case_from_paths([root], modalities, series, name=root.name))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("\n".join(problems))
    return cases


def case_volumes(model: SegmentationModel, case: CaseInput, output: str | os.PathLike,
                 qc_png: str | os.PathLike | None = None) -> list[dict]:
    """Volume rows (:func:`ACELib.metrics.volumes.label_volumes`) of a written segmentation, and its QC
    picture (:func:`ACELib.inference.qc.write_qc_png`, over the model's first modality) when asked."""
    case = as_model_input(case, model)
    labels, geom = read_image(output, dtype=np.int64)
    rows = label_volumes(labels, geom.spacing, model.labels, case=case.name)
    if qc_png is not None:
        from ACELib.inference.qc import write_qc_png

        first = case_modalities(case, model)[0]
        image, _ = read_volume(select_channels(case, model)[0], case.series_of(first))
        write_qc_png(qc_png, image, labels, geom, model.labels, title=f"{case.name}: {first} and labels")
    return rows
