"""`ace check`: report every problem of a task's datasets at once; writes nothing."""

from __future__ import annotations

from ACELib.data.check import check_task
from ACELib.labels import load_task

NAME = "check"
HELP = "check a task file and its datasets against the dataset contract (writes nothing)"


def add_arguments(p) -> None:
    p.add_argument("task", help="task file (JSON)")
    p.add_argument("--no-test", action="store_true", help="skip datasets with role 'test'")


def run(args) -> int:
    task = load_task(args.task)
    problems = check_task(task, include_test=not args.no_test)
    if problems:
        print(f"{len(problems)} problems in {args.task}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    n = len(task.datasets)
    print(f"{args.task}: OK ({n} datasets; single-model modalities {list(task.input_modalities)})")
    return 0
