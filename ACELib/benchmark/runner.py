"""``ace benchmark``: build a scenario's phantoms, train every method with every seed on identical data,
segment the joint test set, evaluate, and write the paper's Table 1 and figures.

Results folder::

    data/                         the phantoms (task.json + datasets), built once
    runs/<method>/seed<k>/        training runs (model selection on validation cases only)
    predictions/<method>/seed<k>/ test-set segmentations
    evaluation/<method>_seed<k>.csv  per case and label Dice, HD95, AVD
    predictions/shifted/..., evaluation/shifted/...   the same on the shifted-scanner test set
    predictions/<method>@T1/..., evaluation/<method>@T1_seed<k>.csv   test conditions with fewer
                                  modalities (``Method.conditions``, :mod:`ACELib.benchmark.conditions`)
    table1.md, table1.csv, wilcoxon.csv, figure3_boxplot.png, figure4_qualitative.png, README.md
    table1_shifted.md, table1_shifted.csv            Table 1 on the shifted-scanner test set

Interrupted runs resume: finished trainings, predictions and evaluations are kept; a training that
was cut off continues from its checkpoint. Evaluations and segmentations older than their model file
(a run retrained or replaced since) are made again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ACELib.benchmark.methods import Method, Profile, get_methods, method_config
from ACELib.benchmark.testset import (
    MAIN_TEST,
    drop_stale_segmentations,
    evaluation_is_current,
    test_folders,
    test_sets,
)
from ACELib.inference import cases_in_folder, load_model, predict_folder
from ACELib.labels import Task, load_task
from ACELib.metrics import evaluate_folders, read_evaluation, write_evaluation
from ACELib.phantoms.scenarios import TASK_FILE, make_scenario
from ACELib.progress import Progress
from ACELib.training import TrainConfig, train
from ACELib.training.hetero import record_label_sources

log = logging.getLogger(__name__)


def _sub(test: str) -> str:
    return "" if test == MAIN_TEST else test


@dataclass
class BenchmarkRun:
    """Where a benchmark's pieces are, and what it compared."""

    out: Path
    scenario: str
    profile: Profile
    methods: list[Method]
    seeds: list[int]
    shifted: int = 0
    head: float = 0.0

    @property
    def task_path(self) -> Path:
        return self.out / "data" / TASK_FILE

    def run_dir(self, method: Method, seed: int) -> Path:
        return self.out / "runs" / method.key / f"seed{seed}"

    def prediction_dir(self, method: Method, seed: int, test: str = MAIN_TEST) -> Path:
        return self.out / "predictions" / _sub(test) / method.key / f"seed{seed}"

    def evaluation_csv(self, method: Method, seed: int, test: str = MAIN_TEST) -> Path:
        return self.out / "evaluation" / _sub(test) / f"{method.key}_seed{seed}.csv"



def build_phantoms(run: BenchmarkRun, counts: Sequence[int] | None, spacing: float | None,
                   progress: Progress | None) -> Task:
    """Generate the phantoms once (kept on resume) and return the task."""
    if not run.task_path.exists():
        make_scenario(run.scenario, run.task_path.parent, quick=run.profile.phantoms_quick, counts=counts,
                      spacing=spacing, seed=0, overwrite=run.task_path.parent.exists(), progress=progress,
                      shifted=run.shifted, head=run.head)
    return load_task(run.task_path)


def train_unless_done(task: Task, run_dir: Path, config: TrainConfig, progress: Progress | None = None) -> Path:
    """The model of a training run: kept when ``run_dir`` holds one, else trained (resumed from its
    checkpoints when an earlier attempt was cut off).

    Raises:
        RuntimeError: the training stopped before the end (a stop request).
    """
    model = run_dir / "model.safetensors"
    if model.exists():
        log.info("%s: already trained", run_dir)
        return model
    result = train(task, run_dir, config, resume=(run_dir / "config.json").exists(), progress=progress)
    if result.status != "finished":
        raise RuntimeError(f"the training in {str(run_dir)!r} stopped before the end; run again to resume it")
    return result.model_path


def train_method(run: BenchmarkRun, task: Task, method: Method, seed: int, device: str,
                 progress: Progress | None) -> Path:
    """Train one method with one seed (skipped when its model exists; resumed when cut off)."""
    config = method_config(run.profile, method, seed, device, cache_dir=str(run.out / "cache"))
    model = train_unless_done(task, run.run_dir(method, seed), config, progress)
    if method.hetero_modal and record_label_sources(model, task):  # a model trained before they were recorded
        log.info("%s: label sources recorded in %s", method.key, model)
    return model


def evaluate_method(run: BenchmarkRun, task: Task, method: Method, seed: int, model_path: Path,
                    device: str) -> dict[str, list[dict]]:
    """Segment every test set with one trained model and evaluate it (both kept on resume).

    Returns:
        ``{test set name: evaluation rows}``.
    """
    out = {}
    for test in test_sets(task):
        csv_path, pred_dir = run.evaluation_csv(method, seed, test), run.prediction_dir(method, seed, test)
        if evaluation_is_current(csv_path, model_path):
            out[test] = read_evaluation(csv_path)
            continue
        drop_stale_segmentations(pred_dir, model_path)
        images, labels = test_folders(task, test)
        model = load_model(model_path, device=device)
        predict_folder(model, cases_in_folder(images), pred_dir, skip_existing=True)
        rows = evaluate_folders(pred_dir, labels, task.labels)
        write_evaluation(rows, csv_path)
        out[test] = rows
    return out


def _job(run: BenchmarkRun, task: Task, method: Method, seed: int, device: str, threads: int | None,
         progress: Progress | None) -> dict[str, list[dict]]:
    """Train and evaluate one (method, seed); runs in a worker process when ``jobs > 1``."""
    if threads:  # a worker process: its own thread budget and log lines that name the job
        import torch

        torch.set_num_threads(threads)
        root = logging.getLogger()
        if not root.handlers:
            logging.basicConfig(level=logging.INFO)
        for handler in root.handlers:  # a pooled worker runs several jobs: name the current one
            handler.setFormatter(logging.Formatter(f"%(levelname)s [{method.key} s{seed}] %(message)s"))
    model = train_method(run, task, method, seed, device, progress)
    return evaluate_method(run, task, method, seed, model, device)


def run_benchmark(scenario: str, out: str | os.PathLike, profile: Profile, *, seeds: Sequence[int] = (0, 1, 2),
                  methods: Sequence[str] = (), counts: Sequence[int] | None = None, spacing: float | None = None,
                  device: str = "auto", command: str = "", progress_factory=None, jobs: int = 1,
                  shifted: int = 0, head: float = 0.0, report_only: bool = False) -> Path:
    """Run the whole benchmark (see module docstring) and return the results folder.

    Args:
        report_only: train nothing: write the report from the (method, seed) pairs already evaluated
            on every test set (a benchmark cut short, or seeds run in stages).
        shifted: cases of the shifted-scanner joint test set to build and evaluate too (0: none).
        head: share of skull-on phantoms (see :func:`ACELib.phantoms.make_scenario`).
        progress_factory: ``progress_factory(description) -> progress callback`` for long steps.
        jobs: trainings run at once in worker processes, the CPU threads split between them (on a
            small CPU, two single-threaded trainings finish sooner than two two-threaded ones in turn).
    """
    from ACELib.benchmark.report import write_report

    started = time.time()
    run = BenchmarkRun(Path(out), scenario, profile, get_methods(methods), [int(s) for s in seeds], int(shifted),
                       float(head))
    if not run.seeds:
        raise ValueError("seeds must name at least one seed")
    bar = progress_factory or (lambda desc: None)
    task = build_phantoms(run, counts, spacing, bar(f"phantoms {scenario}"))
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    pairs = [(m, s) for m in run.methods for s in run.seeds]
    if report_only:
        pairs = [(m, s) for m, s in pairs if all(run.evaluation_csv(m, s, t).exists() for t in test_sets(task))]
        if not pairs:
            raise ValueError(f"--report-only: no (method, seed) of {run.methods and [m.key for m in run.methods]} x "
                             f"{run.seeds} has been evaluated in {str(run.out)!r} yet")
        run.methods = [m for m in run.methods if any(p[0] is m for p in pairs)]
    results: dict[str, dict[int, dict[str, list[dict]]]] = {m.key: {} for m in run.methods}
    if report_only:
        for method, seed in pairs:
            results[method.key][seed] = {t: read_evaluation(run.evaluation_csv(method, seed, t)) for t in test_sets(task)}
    elif jobs == 1:
        for i, (method, seed) in enumerate(pairs):
            log.info("[%d/%d] %s, seed %d", i + 1, len(pairs), method.title, seed)
            results[method.key][seed] = _job(run, task, method, seed, device, None, bar(f"{method.key} s{seed}"))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import torch

        threads = max(1, torch.get_num_threads() // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {(m.key, s): pool.submit(_job, run, task, m, s, device, threads, None) for m, s in pairs}
            for i, ((key, seed), fut) in enumerate(futures.items()):
                results[key][seed] = fut.result()
                log.info("[%d/%d] %s, seed %d: done", i + 1, len(pairs), key, seed)
    by_test = {test: {m: {s: r[test] for s, r in by_seed.items()} for m, by_seed in results.items()}
               for test in test_sets(task)}
    from ACELib.benchmark.conditions import condition_results

    by_test[MAIN_TEST].update(condition_results(run, task, device))  # e.g. the hetero-modal model with T1 alone
    write_report(run, task, by_test, wall_seconds=time.time() - started, command=command)
    return run.out
