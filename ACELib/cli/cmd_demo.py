"""`ace demo` (what `make demo` runs): phantoms -> train ACE and naive CE -> segment -> Dice + figure."""

from __future__ import annotations

from ACELib.benchmark.demo import DEMO_ITERATIONS, DEMO_METHODS, run_demo
from ACELib.benchmark.methods import METHODS
from ACELib.cli.progress import ProgressBar

NAME = "demo"
HELP = "the main job on embedded defaults: WMH phantoms, ACE vs naive CE, Dice and a figure (<= 6 min on 2 CPU cores)"


def add_arguments(p) -> None:
    p.add_argument("--output", default="demo_output", help="output folder (default demo_output); re-running resumes")
    p.add_argument("--iterations", type=int, help=f"training steps per method (default {DEMO_ITERATIONS})")
    p.add_argument("--device", default="auto")


def run(args) -> int:
    from ACELib.phantoms.template import require_nilearn

    require_nilearn()  # before any folder is created
    scores = run_demo(args.output, iterations=args.iterations, device=args.device,
                      progress_factory=lambda desc: ProgressBar(desc))
    labels = list(next(iter(scores.values())))
    print("\nMean Dice on the held-out joint test cases (a scanner no training set has):")
    print(f"{'method':28s}" + "".join(f"{lab:>8s}" for lab in labels))
    for key in DEMO_METHODS:
        print(f"{METHODS[key].title:28s}" + "".join(f"{scores[key][lab]:8.3f}" for lab in labels))
    print(f"\nsegmentations and demo.png in {args.output}/")
    return 0
