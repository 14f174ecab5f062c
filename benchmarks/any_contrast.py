"""Dice of tumour-scenario models given ONE image of each contrast, on every test set of a task.

Each test case is segmented once per contrast the test set has (T1, T1c, T2, FLAIR), the model
getting that image alone:

* a model trained with ``--any-contrast`` takes it as its one input, whatever it is called;
* a hetero-modal model takes it under its own name (a subset of one);
* any other one-input model (e.g. the T1-only ACE model) is given it as its input, which shows what
  a contrast-specific model does with a contrast it was not trained on.

Writes ``OUT/evaluation/<test>/<model>@<contrast>_seed<k>.csv`` (per case and label, as ``ace
evaluate``) and prints one Markdown table per test set: mean Dice over cases, then over seeds, with
the standard deviation over seeds in brackets. Kept on rerun: a CSV newer than its model is read
back instead of segmenting again.

    python benchmarks/any_contrast.py --task RESULTS/tumor/data/task.json --out RESULTS/any \\
        --model any=RUNS/any/seed{seed}/model.safetensors --model t1=RESULTS/tumor/runs/ace+dice/seed{seed}/model.safetensors \\
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ACELib.benchmark.conditions import restrict_cases
from ACELib.benchmark.testset import test_folders, test_sets
from ACELib.inference import load_model
from ACELib.inference.predict import CaseInput, cases_in_folder, predict_folder
from ACELib.labels import load_task
from ACELib.metrics import evaluate_folders, read_evaluation, write_evaluation


def model_input(cases: list[CaseInput], contrast: str, model) -> list[CaseInput]:
    """The cases with the image of ``contrast`` alone, named as the model takes it (see module docstring)."""
    one = restrict_cases(cases, (contrast,))
    if model.metadata.accepts((contrast,)):  # any-contrast models take one image of any name
        return one
    if len(model.modalities) != 1:
        raise ValueError(f"a model of modalities {list(model.modalities)} takes neither {contrast!r} alone nor one image")
    return [CaseInput(c.name, c.image_paths, tuple(model.modalities), c.series) for c in one]


def evaluate(task, model_path: Path, contrast: str, test: str, csv_path: Path, device: str) -> list[dict]:
    """Evaluation rows of one model given ``contrast`` alone on test set ``test`` (kept when current)."""
    if csv_path.exists() and csv_path.stat().st_mtime > model_path.stat().st_mtime:
        return read_evaluation(csv_path)
    model = load_model(model_path, device=device)
    images, labels = test_folders(task, test)
    with tempfile.TemporaryDirectory() as tmp:
        predict_folder(model, model_input(cases_in_folder(images), contrast, model), tmp)
        rows = evaluate_folders(tmp, labels, task.labels)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    write_evaluation(rows, csv_path)
    return rows


def mean_dice(rows: list[dict]) -> dict[str, float]:
    """Mean Dice over cases per label (NaN cells skipped)."""
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["label"], []).append(float(r["dice"]))
    return {k: float(np.nanmean(v)) for k, v in by.items()}


def table(results: dict, labels: list[str]) -> str:
    """Markdown rows ``model | contrast | Dice per label (mean [std over seeds])``."""
    lines = ["| model | contrast | seeds | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for (name, contrast), per_seed in results.items():
        cells = []
        for lab in labels:
            v = np.array([d[lab] for d in per_seed.values()])
            cells.append(f"{v.mean():.3f} [{v.std():.3f}]" if len(v) > 1 else f"{v.mean():.3f}")
        seeds = ",".join(str(s) for s in per_seed)
        lines.append(f"| {name} | {contrast} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, type=Path, help="the tumour scenario's task.json")
    p.add_argument("--out", required=True, type=Path, help="results folder (evaluation CSVs)")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                   help="a model to test; {seed} in PATH is replaced by each seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--tests", nargs="+", help="test sets (default: all of the task's)")
    p.add_argument("--contrasts", nargs="+", help="contrasts (default: all of the test set's)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    task = load_task(args.task)
    labels = [lab.name for lab in task.labels if lab.value != 0]
    for test in args.tests or test_sets(task):
        contrasts = args.contrasts or list(task.dataset(test).modalities)
        results: dict = {}
        for spec in args.model:
            name, _, pattern = spec.partition("=")
            if not pattern:
                raise ValueError(f"--model must be NAME=PATH, got {spec!r}")
            for contrast in contrasts:
                for seed in args.seeds:
                    path = Path(pattern.format(seed=seed))
                    csv = args.out / "evaluation" / test / f"{name}@{contrast}_seed{seed}.csv"
                    results.setdefault((name, contrast), {})[seed] = mean_dice(
                        evaluate(task, path, contrast, test, csv, args.device))
        print(f"\n### {test} test set: one image\n\n{table(results, labels)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
