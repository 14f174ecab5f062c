"""`ace phantoms`: generate the paper's WMH or tumour scenario as phantom datasets plus a task file."""

from __future__ import annotations

import argparse
import sys

NAME = "phantoms"
HELP = "generate brain phantom datasets (anatomy, lesion, test) and a task file for a scenario"
DESCRIPTION = (
    "Build phantoms on the MNI ICBM152 2009 template shipped with nilearn (pip install "
    "ace-segmentation[bench]): an anatomy dataset (tissue labels), a lesion dataset (lesion labels) and "
    "a test set with joint labels, in the nnU-Net raw layout, plus OUT/task.json for `ace train`. "
    "Scenarios: wmh (T1, FLAIR; CSF/GM/WM + WMH; 5/60/7 cases) and tumor (T1 anatomy; T1, T1c, T2, "
    "FLAIR lesions and test; CSF/GM/WM + edema/tumor; 15/50/20 cases). --quick makes 3 mm volumes "
    "for CPU runs (default 1 mm)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", required=True, help="wmh or tumor")
    p.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--quick", action="store_true", help="small 3 mm volumes for CPU runs (default: 1 mm)")
    p.add_argument("--spacing", type=float, default=None, metavar="MM",
                   help="voxel size in mm, overriding the profile")
    p.add_argument("--counts", type=int, nargs=3, metavar=("A", "L", "T"), default=None,
                   help="cases of the anatomy, lesion and test datasets (default: the paper's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same phantoms")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="cases generated in parallel by N processes (default 1); same result for any N")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty folder, replacing the scenario's datasets")


def run(args: argparse.Namespace) -> int:
    from ACELib.cli.progress import ProgressBar
    from ACELib.phantoms import make_scenario

    bar = ProgressBar(f"phantoms {args.scenario}", unit="case")
    try:
        task = make_scenario(args.scenario, args.out, quick=args.quick, spacing=args.spacing, counts=args.counts,
                             seed=args.seed, overwrite=args.overwrite, progress=bar, workers=args.workers)
    except ImportError as exc:  # nilearn, which ships the template, is an optional dependency
        print(f"ace phantoms: error: {exc}", file=sys.stderr)
        return 2
    print(f"task file: {task}")
    return 0
