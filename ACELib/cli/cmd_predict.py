"""`ace predict`: segment one case (one file per modality) or a folder of cases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ACELib.cli.progress import ProgressBar
from ACELib.device import DEVICE_CHOICES
from ACELib.inference import (
    DEFAULT_WINDOW_VOXELS,
    cases_in_folder,
    load_model,
    predict_case,
    predict_folder,
)
from ACELib.inference.model_schema import PASSES
from ACELib.inference.predict import case_from_paths, case_volumes, dicom_cases
from ACELib.io.dicom import is_dicom_folder
from ACELib.io.image import IMAGE_SUFFIXES
from ACELib.io.outputs import check_not_inputs, check_outputs
from ACELib.metrics.volumes import write_volumes
from ACELib.models import resolve_model

NAME = "predict"
HELP = "segment new scans with a trained model"
DESCRIPTION = (
    "Segment one case (--images T1.nii.gz FLAIR.nii.gz --out seg.nii.gz, files in the order of the model's "
    "modalities or named with --modalities) or a folder of {case}_{XXXX} files (--input DIR --out DIR). "
    "Any input may be a DICOM series folder; a folder with several series lists them, and --series picks "
    "them by UID. Outputs hold joint label values with exactly the input's geometry, as NIfTI or the "
    "suffix of --out (--suffix for folders); existing outputs are never replaced unless --overwrite. "
    "--volumes writes each label's voxels and mL, --qc a picture of three slices with the labels."
)


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model file (.safetensors) from `ace train`, or the name of a "
                   "bundled model (`ace models` lists them; its SHA-256 is always verified)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="one case: one image file or DICOM series folder per modality")
    src.add_argument("--input", help="folder of {case}_{XXXX}.nii.gz files (e.g. imagesTs), or a DICOM folder "
                     "(one case, or one case per sub-folder)")
    p.add_argument("--out", required=True, help="output file (with --images) or folder (with --input)")
    p.add_argument("--modalities", nargs="+", help="modality name of each input channel (default: the model's "
                   "order for --images, dataset.json for --input); a hetero-modal model takes any subset of "
                   "its modalities that it accepts, e.g. --modalities T1 FLAIR --images t1.nii.gz flair.nii.gz")
    p.add_argument("--series", nargs="+", metavar="UID", help="DICOM Series Instance UIDs, one per DICOM folder "
                   "input (or, for a single folder, one per modality), in order")
    p.add_argument("--suffix", default=".nii.gz", help="(folders) output file type, e.g. .nrrd (default .nii.gz)")
    p.add_argument("--volumes", metavar="FILE.csv", help="write voxels and mL per case and label")
    p.add_argument("--qc", metavar="PNG_OR_DIR", help="QC picture (three slices, labels over the image): a .png "
                   "file with --images, a folder of {case}.png with --input (needs matplotlib)")
    p.add_argument("--probabilities", action="store_true", help="also write one probability map per label")
    p.add_argument("--device", default="auto", help=f"one of {list(DEVICE_CHOICES)} or cuda:N (default auto)")
    p.add_argument("--window", type=int, nargs=3, metavar=("D", "H", "W"),
                   help="sliding window in voxels (default: planned from --window-voxels)")
    p.add_argument("--window-voxels", type=int, default=DEFAULT_WINDOW_VOXELS,
                   help=f"largest window when planned automatically (default {DEFAULT_WINDOW_VOXELS}); lower it to save memory")
    p.add_argument("--overlap", type=float, default=0.25, help="overlap fraction with an explicit --window (default 0.25)")
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--skip-existing", action="store_true", help="(folders) keep existing outputs, segment the rest")
    p.add_argument("--sha256", help="refuse the model unless its SHA-256 matches")
    p.add_argument("--passes", choices=PASSES, help="(hetero-modal models) sources: one pass per training dataset's "
                   "modalities, combined; one: a single pass over the input (default: what the model file says, "
                   "one for models trained with --pass-distillation)")


def run(args) -> int:
    if args.images:  # before loading anything: the output may replace neither an input nor the model
        check_outputs([args.out], [*args.images, args.model], overwrite=args.overwrite)
    else:
        check_not_inputs([args.out], [args.model, args.input])
    path, published = resolve_model(args.model)
    if published and args.sha256 and args.sha256.lower() != published:
        raise ValueError(f"--sha256 {args.sha256} differs from the published checksum {published} of {args.model!r}")
    model = load_model(path, device=args.device, expected_sha256=published or args.sha256)
    if args.passes:
        model.metadata = dataclasses.replace(model.metadata, passes=args.passes)
    kw = {"window": tuple(args.window) if args.window else None, "overlap": args.overlap,
          "batch_size": args.batch_size, "window_voxels": args.window_voxels}
    names = tuple(args.modalities) if args.modalities else None
    if args.images:
        if names is not None:
            _report_subset(model, names)
        elif len(args.images) != len(model.modalities) and model.metadata.modality_subsets != "all":
            raise ValueError(f"{len(args.images)} inputs for the model's modalities {list(model.modalities)}: "
                             "name the modality of each input with --modalities (the model takes subsets)")
        case = case_from_paths(args.images, names or model.modalities, args.series)
        out = predict_case(model, case, args.out, overwrite=args.overwrite, probabilities=args.probabilities,
                           progress=ProgressBar("segment", unit="window"), **kw)
        print(f"wrote {out}")
        outputs = [(case, out, args.qc)]
    else:
        if _is_dicom_input(args.input):
            cases = dicom_cases(args.input, names or model.modalities, args.series)
        elif args.series:
            raise ValueError(f"--series applies to DICOM inputs; {args.input!r} holds image files")
        else:
            cases = cases_in_folder(args.input, args.modalities)
        if not cases:
            raise ValueError(f"no cases found in {args.input!r}")
        predict_folder(model, cases, args.out, file_ending=args.suffix, overwrite=args.overwrite,
                       skip_existing=args.skip_existing, probabilities=args.probabilities,
                       progress=ProgressBar("cases", unit="case"), **kw)
        print(f"segmented {len(cases)} cases into {args.out}")
        outputs = [(c, Path(args.out) / f"{c.name}{args.suffix}",
                    Path(args.qc) / f"{c.name}.png" if args.qc else None) for c in cases]
    _reports(model, outputs, args.volumes)
    return 0


def _report_subset(model, names: tuple[str, ...]) -> None:
    """Refuse unknown, repeated or unaccepted ``--modalities``; say which of the model's are missing."""
    try:
        missing = model.metadata.check_modalities(names)
    except ValueError as exc:
        raise ValueError(f"--{exc}") from None
    if missing:
        print(f"input lacks the modalities {', '.join(missing)}: the model segments without them")
    warning = model.metadata.unsupported_labels_warning(names)
    if warning:
        print(f"warning: {warning}")


def _is_dicom_input(folder: str) -> bool:
    """A DICOM folder, or a folder without image files whose sub-folders hold DICOM series."""
    root = Path(folder)
    if is_dicom_folder(root):
        return True
    if not root.is_dir() or any(f.is_file() and f.name.lower().endswith(IMAGE_SUFFIXES) for f in root.iterdir()):
        return False
    return any(is_dicom_folder(d) for d in root.iterdir() if d.is_dir())


def _reports(model, outputs, volumes_csv: str | None) -> None:
    """Volumes CSV and QC pictures of the written segmentations ``[(case, label file, qc png or None)]``."""
    rows = []
    for case, out, qc in outputs:
        if volumes_csv or qc:
            rows.extend(case_volumes(model, case, out, qc))
        if qc:
            print(f"wrote {qc}")
    if volumes_csv:
        write_volumes(rows, volumes_csv)
        print(f"wrote {volumes_csv} ({len(rows)} rows: case, label, value, voxels, volume_ml)")
