"""`ace benchmark`: the paper's comparison on phantoms, in one command."""

from __future__ import annotations

import shlex
import sys

from ACELib.benchmark import METHODS, PROFILES, run_benchmark
from ACELib.benchmark.methods import DEFAULT_METHODS, get_profile
from ACELib.cli.progress import ProgressBar
from ACELib.phantoms.scenarios import get_scenario

NAME = "benchmark"
HELP = "reproduce the paper on phantoms: Multi-UNet, naive CE, naive Dice and ACE variants side by side"
DESCRIPTION = (HELP + ". Builds the scenario's phantoms, trains every method with every seed on identical "
               "data, segments the joint test set and writes Table 1, Wilcoxon p-values, Figure 3 and "
               "Figure 4 under --out. Re-running the same command resumes an interrupted benchmark.")


def add_arguments(p) -> None:
    p.add_argument("--scenario", required=True, choices=["wmh", "tumor"])
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="cpu: 3 mm phantoms, the cpu training profile (2 CPU cores: each training at most ~15 "
                        "min); paper: 1 mm and the paper's network (GPU). Default paper")
    p.add_argument("--quick", action="store_true", help="same as --profile cpu")
    p.add_argument("--shifted", type=int, default=None, metavar="N",
                   help="cases of the shifted-scanner test set, evaluated too (default: as many as the test set; 0: none)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS),
                   help=f"methods to compare (default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--head", type=float, default=0.0, metavar="P",
                   help="share of skull-on phantoms in every dataset (default 0; the shifted test set is then skull-on)")
    p.add_argument("--counts", type=int, nargs=3, metavar=("ANATOMY", "LESION", "TEST"),
                   help="phantom cases per dataset (default: the paper's)")
    p.add_argument("--iterations", type=int, help="override the profile's training steps")
    p.add_argument("--device", default="auto")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing; write the tables and figures from the runs already evaluated")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once in worker processes (CPU threads split)")


def run(args) -> int:
    from ACELib.phantoms.template import require_nilearn

    require_nilearn()  # before any folder is created
    profile = get_profile("cpu" if args.quick else args.profile or "paper")
    if args.iterations:
        from dataclasses import replace

        profile = replace(profile, train=profile.train.with_changes(iterations=args.iterations))
    shifted = args.shifted if args.shifted is not None else (args.counts or get_scenario(args.scenario).counts)[2]
    command = "ace " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["benchmark"] else ""
    out = run_benchmark(args.scenario, args.out, profile, seeds=args.seeds, methods=args.methods or (),
                        counts=args.counts, device=args.device, command=command, jobs=args.jobs, shifted=shifted, head=args.head,
                        report_only=args.report_only,
                        progress_factory=lambda desc: ProgressBar(desc))
    print((out / "table1.md").read_text(encoding="utf-8"))
    print(f"results in {out}")
    return 0
