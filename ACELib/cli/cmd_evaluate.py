"""``ace evaluate``: Dice, HD95 and AVD of predicted label maps against references, per case and label."""

from __future__ import annotations

import argparse
import math

NAME = "evaluate"
HELP = "evaluate predicted label maps against references (Dice, HD95, AVD; Wilcoxon comparison)"
DESCRIPTION = (
    "Compare every reference label map in --gt with the prediction of the same file name in --pred "
    "(both hold joint label values of the task). Writes a per case and label CSV to --out, and "
    "{stem}_summary.csv / {stem}_summary.md (mean ± std per label) beside it. With --compare, runs a "
    "paired two-sided Wilcoxon signed-rank test per label against another table written by this command."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="folder of predicted label maps")
    parser.add_argument("--gt", required=True, help="folder of reference label maps (same file names)")
    parser.add_argument("--task", required=True, help="task file (JSON) giving the joint labels")
    parser.add_argument("--out", required=True, help="CSV file to write (per case and label)")
    parser.add_argument("--file-ending", default=".nii.gz", help="label map file ending (default: .nii.gz)")
    parser.add_argument("--compare", metavar="OTHER_CSV", help="an earlier results CSV to test against")


def _cell(value: float, fmt: str) -> str:
    return "nan" if math.isnan(value) else format(value, fmt)


def run(args: argparse.Namespace) -> int:
    from ACELib.labels import load_task
    from ACELib.metrics import compare_results, evaluate_folders, format_summary, write_evaluation

    task = load_task(args.task)
    rows = evaluate_folders(args.pred, args.gt, task.labels, file_ending=args.file_ending)
    summary = write_evaluation(rows, args.out)
    print(f"{len({r['case'] for r in rows})} cases evaluated; per case results in {args.out}\n")
    print(format_summary(summary), end="")
    if args.compare:
        print(f"\nWilcoxon signed-rank test (two-sided), A = {args.out}, B = {args.compare}\n")
        print("| label | metric | n | mean A | mean B | p |")
        print("|---|---|---|---|---|---|")
        for c in compare_results(args.out, args.compare):
            print(f"| {c['label']} | {c['metric']} | {c['n']} | {_cell(c['mean_a'], '.3f')} | "
                  f"{_cell(c['mean_b'], '.3f')} | {_cell(c['p_value'], '.3g')} |")
    return 0
