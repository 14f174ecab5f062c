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
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out table (and its summaries)")


def _cell(value: float, fmt: str) -> str:
    return "nan" if math.isnan(value) else format(value, fmt)


def _check_outputs(args: argparse.Namespace, summary_paths) -> None:
    """Before any work: the table and its summaries replace no input and no file unless --overwrite."""
    from pathlib import Path

    from ACELib.io.outputs import check_outputs

    inputs = [Path(args.task), *([Path(args.compare)] if args.compare else [])]
    for folder in (args.pred, args.gt):
        if Path(folder).is_dir():
            inputs.extend(p for p in Path(folder).iterdir() if p.is_file())
    check_outputs([Path(args.out), *summary_paths(args.out)], inputs, overwrite=args.overwrite)


def run(args: argparse.Namespace) -> int:
    from ACELib.labels import load_task
    from ACELib.metrics import (
        compare_results,
        evaluate_folders,
        format_summary,
        summary_paths,
        write_evaluation,
    )

    _check_outputs(args, summary_paths)
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
