"""`ace task`: write a task file from nnU-Net dataset folders, joint labels matched by name."""

from __future__ import annotations

from pathlib import Path

from ACELib.data.task_builder import task_from_folders
from ACELib.labels import save_task

NAME = "task"
HELP = "write a task file from nnU-Net dataset folders (labels with the same name are one joint label)"
DESCRIPTION = (
    "Write a task file from dataset folders (nnU-Net v2 raw layout). Labels with the same name in "
    "different dataset.json files (compared case-insensitively) become one joint label; value 0 is the "
    "shared background; a label named 'ignore' (nnU-Net's ignore label) may be any joint label. Each "
    "folder annotates exactly the labels its dataset.json declares."
)


def add_arguments(p) -> None:
    p.add_argument("datasets", nargs="+", metavar="DATASET_DIR", help="training dataset folders")
    p.add_argument("--out", required=True, help="task file to write (JSON)")
    p.add_argument("--name", default=None, help="task name (default: the task file's name without .json)")
    p.add_argument("--test", nargs="+", default=[], metavar="DATASET_DIR",
                   help="dataset folders with role 'test' (evaluated on, never trained on)")
    p.add_argument("--modalities", nargs="+", default=None, metavar="NAME",
                   help="the model's input modalities (default: those common to all training datasets)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing task file")


def run(args) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{str(out)!r} exists already; pass --overwrite to replace it")
    if out.is_dir():
        raise IsADirectoryError(f"--out {str(out)!r} is a folder; give a file name such as task.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    task = task_from_folders(args.datasets, args.test, name=args.name or out.stem,
                             modalities=args.modalities, relative_to=out.parent)
    save_task(task, out)
    print(f"{out}: {len(task.train_datasets)} training and {len(task.test_datasets)} test datasets; "
          f"joint labels {[f'{lab.value}={lab.name}' for lab in task.labels]}; "
          f"single-model modalities {list(task.input_modalities)}")
    for ds in task.datasets:
        ignore = f" (+ ignore value {list(ds.ignore_values)})" if ds.ignore_values else ""
        print(f"  {ds.name} [{ds.role}]: annotates {sorted(ds.annotated_names - {'background'})}{ignore}")
    return 0
