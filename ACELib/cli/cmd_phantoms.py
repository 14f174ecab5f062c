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
    "FLAIR lesions and test; CSF/GM/WM + edema/tumor; 15/50/20 cases). --profile cpu (or --quick) makes "
    "3 mm volumes for CPU training (ace train --profile cpu); --profile paper (the default) 1 mm. Every "
    "subject has extracerebral CSF around the brain; --head P makes a share P of them skull-on; "
    "--shifted N adds a joint test set from a shifted scanner. Each dataset also gets synthTr/, the "
    "generator's label maps, for training with --domain-randomization."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", required=True, help="wmh or tumor")
    p.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--profile", choices=("cpu", "paper"), default=None,
                   help="cpu: 3 mm voxels (for ace train --profile cpu); paper: 1 mm (default)")
    p.add_argument("--quick", action="store_true", help="same as --profile cpu")
    p.add_argument("--shifted", type=int, default=0, metavar="N",
                   help="also write N cases of a joint test set from a shifted scanner (wider contrast spread, "
                        "thick slices, stronger bias; skull-on with --head)")
    p.add_argument("--head", type=float, default=0.0, metavar="P",
                   help="chance that a subject is skull-on (skull, fat, scalp around the brain; default 0)")
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
        task = make_scenario(args.scenario, args.out, quick=args.quick or args.profile == "cpu", spacing=args.spacing,
                             counts=args.counts, seed=args.seed, overwrite=args.overwrite, progress=bar,
                             workers=args.workers, shifted=args.shifted, head=args.head)
    except ImportError as exc:  # nilearn, which ships the template, is an optional dependency
        print(f"ace phantoms: error: {exc}", file=sys.stderr)
        return 2
    print(f"task file: {task}")
    return 0
