"""`ace predict`: segment one case (one file per modality) or a folder of cases."""

from __future__ import annotations

from pathlib import Path

from ACELib.cli.progress import ProgressBar
from ACELib.inference import (
    DEFAULT_WINDOW_VOXELS,
    CaseInput,
    cases_in_folder,
    load_model,
    predict_case,
    predict_folder,
)
from ACELib.inference.device import DEVICE_CHOICES
from ACELib.models import resolve_model

NAME = "predict"
HELP = "segment new scans with a trained model"
DESCRIPTION = (
    "Segment one case (--images T1.nii.gz FLAIR.nii.gz --out seg.nii.gz, files in the order of the model's "
    "modalities or named with --modalities) or a folder of {case}_{XXXX} files (--input DIR --out DIR). "
    "Outputs hold joint label values with exactly the input's geometry; existing outputs are never "
    "replaced unless --overwrite."
)


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model file (.safetensors) from `ace train`, or the name of a "
                   "bundled model (`ace models` lists them; its SHA-256 is always verified)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="one case: one image file per modality")
    src.add_argument("--input", help="folder of {case}_{XXXX}.nii.gz files (e.g. imagesTs)")
    p.add_argument("--out", required=True, help="output file (with --images) or folder (with --input)")
    p.add_argument("--modalities", nargs="+", help="modality name of each input channel (default: the model's "
                   "order for --images, dataset.json for --input)")
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


def run(args) -> int:
    path, published = resolve_model(args.model)
    if published and args.sha256 and args.sha256.lower() != published:
        raise ValueError(f"--sha256 {args.sha256} differs from the published checksum {published} of {args.model!r}")
    model = load_model(path, device=args.device, expected_sha256=published or args.sha256)
    kw = {"window": tuple(args.window) if args.window else None, "overlap": args.overlap,
          "batch_size": args.batch_size, "window_voxels": args.window_voxels}
    if args.images:
        names = tuple(args.modalities) if args.modalities else model.modalities
        case = CaseInput(Path(args.images[0]).name, tuple(Path(p) for p in args.images), names)
        out = predict_case(model, case, args.out, overwrite=args.overwrite, probabilities=args.probabilities,
                           progress=ProgressBar("segment", unit="window"), **kw)
        print(f"wrote {out}")
        return 0
    cases = cases_in_folder(args.input, args.modalities)
    if not cases:
        raise ValueError(f"no cases found in {args.input!r}")
    written = predict_folder(model, cases, args.out, overwrite=args.overwrite, skip_existing=args.skip_existing,
                             probabilities=args.probabilities, progress=ProgressBar("cases", unit="case"), **kw)
    print(f"wrote {len(written)} segmentations to {args.out}")
    return 0
