"""``ace benchmark``: build a scenario's phantoms, train every method with every seed on identical data,
segment the joint test set, evaluate, and write the paper's Table 1 and figures.

Results folder::

    data/                         the phantoms (task.json + datasets), built once
    runs/<method>/seed<k>/        training runs (model selection on validation cases only)
    predictions/<method>/seed<k>/ test-set segmentations
    evaluation/<method>_seed<k>.csv  per case and label Dice, HD95, AVD
    table1.md, table1.csv, wilcoxon.csv, figure3_boxplot.png, figure4_qualitative.png, README.md

Interrupted runs resume: finished trainings, predictions and evaluations are kept; a training that
was cut off continues from its checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ACELib.benchmark.methods import Method, Profile, get_methods, method_config
from ACELib.inference import cases_in_folder, load_model, predict_folder
from ACELib.labels import Task, load_task
from ACELib.metrics import evaluate_folders, read_evaluation, write_evaluation
from ACELib.phantoms.scenarios import TASK_FILE, make_scenario
from ACELib.training import train

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


@dataclass
class BenchmarkRun:
    """Where a benchmark's pieces are, and what it compared."""

    out: Path
    scenario: str
    profile: Profile
    methods: list[Method]
    seeds: list[int]

    @property
    def task_path(self) -> Path:
        return self.out / "data" / TASK_FILE

    def run_dir(self, method: Method, seed: int) -> Path:
        return self.out / "runs" / method.key / f"seed{seed}"

    def prediction_dir(self, method: Method, seed: int) -> Path:
        return self.out / "predictions" / method.key / f"seed{seed}"

    def evaluation_csv(self, method: Method, seed: int) -> Path:
        return self.out / "evaluation" / f"{method.key}_seed{seed}.csv"


def build_phantoms(run: BenchmarkRun, counts: Sequence[int] | None, spacing: float | None,
                   progress: Progress | None) -> Task:
    """Generate the phantoms once (kept on resume) and return the task."""
    if not run.task_path.exists():
        make_scenario(run.scenario, run.task_path.parent, quick=run.profile.phantoms_quick, counts=counts,
                      spacing=spacing, seed=0, overwrite=run.task_path.parent.exists(), progress=progress)
    return load_task(run.task_path)


def test_folders(task: Task) -> tuple[Path, Path]:
    """Images and labels folder of the task's (single) test dataset."""
    tests = task.test_datasets
    if len(tests) != 1:
        raise ValueError(f"the benchmark needs exactly one dataset with role 'test', got {len(tests)}")
    root = task.dataset_path(tests[0])
    return root / "imagesTr", root / "labelsTr"


def train_method(run: BenchmarkRun, task: Task, method: Method, seed: int, device: str,
                 progress: Progress | None) -> Path:
    """Train one method with one seed (skipped when its model exists; resumed when cut off)."""
    run_dir = run.run_dir(method, seed)
    model = run_dir / "model.safetensors"
    if model.exists():
        log.info("%s seed %d: already trained", method.key, seed)
        return model
    config = method_config(run.profile, method, seed, device)
    result = train(task, run_dir, config, resume=(run_dir / "config.json").exists(), progress=progress)
    if result.status != "finished":
        raise RuntimeError(f"training of {method.key} seed {seed} stopped before the end")
    return result.model_path


def evaluate_method(run: BenchmarkRun, task: Task, method: Method, seed: int, model_path: Path,
                    device: str) -> list[dict]:
    """Segment the test set with one trained model and evaluate it (both kept on resume)."""
    csv_path = run.evaluation_csv(method, seed)
    if csv_path.exists():
        return read_evaluation(csv_path)
    images, labels = test_folders(task)
    model = load_model(model_path, device=device)
    pred_dir = run.prediction_dir(method, seed)
    predict_folder(model, cases_in_folder(images), pred_dir, skip_existing=True)
    rows = evaluate_folders(pred_dir, labels, task.labels)
    write_evaluation(rows, csv_path)
    return rows


def run_benchmark(scenario: str, out: str | os.PathLike, profile: Profile, *, seeds: Sequence[int] = (0, 1, 2),
                  methods: Sequence[str] = (), counts: Sequence[int] | None = None, spacing: float | None = None,
                  device: str = "auto", command: str = "", progress_factory=None) -> Path:
    """Run the whole benchmark (see module docstring) and return the results folder.

    Args:
        progress_factory: ``progress_factory(description) -> progress callback`` for long steps.
    """
    from ACELib.benchmark.report import write_report

    started = time.time()
    run = BenchmarkRun(Path(out), scenario, profile, get_methods(methods), [int(s) for s in seeds])
    if not run.seeds:
        raise ValueError("seeds must name at least one seed")
    bar = progress_factory or (lambda desc: None)
    task = build_phantoms(run, counts, spacing, bar(f"phantoms {scenario}"))
    results: dict[str, dict[int, list[dict]]] = {}
    total = len(run.methods) * len(run.seeds)
    for i, method in enumerate(run.methods):
        for seed in run.seeds:
            log.info("[%d/%d] %s, seed %d", i * len(run.seeds) + run.seeds.index(seed) + 1, total, method.title, seed)
            model = train_method(run, task, method, seed, device, bar(f"{method.key} s{seed}"))
            results.setdefault(method.key, {})[seed] = evaluate_method(run, task, method, seed, model, device)
    write_report(run, task, results, wall_seconds=time.time() - started, command=command)
    return run.out
