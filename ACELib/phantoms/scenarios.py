"""The paper's two scenarios as phantom datasets: an anatomy dataset, a lesion dataset and a test set.

``make_scenario("wmh", out)`` writes, under ``out``::

    task.json                      the task file for ``ace train`` (joint labels, datasets, roles)
    phantoms.json                  what was generated: seed, grid, scanners, per-case volumes
    Dataset001_WMHAnatomy/         T1, FLAIR; labels CSF 1, GM 2, WM 3 (WMH present, labelled WM)
    Dataset002_WMHLesion/          T1, FLAIR; labels WMH 1
    Dataset003_WMHTest/            T1, FLAIR; joint labels CSF 1, GM 2, WM 3, WMH 4 (role "test")

and for ``"tumor"``: ``Dataset011_TumorAnatomy`` (T1; tissue labels, healthy), ``Dataset012_TumorLesion``
(T1, T1c, T2, FLAIR; edema 1, tumor 2) and ``Dataset013_TumorTest`` (the four modalities; joint labels
CSF 1, GM 2, WM 3, edema 4, tumor 5). The tumour task's single-model modalities are ``["T1"]``, the
only one common to its training datasets (the paper's Appendix B).

Each dataset follows the nnU-Net raw layout (:mod:`ACELib.data.contract`); the test set's cases are in
``imagesTr``/``labelsTr`` like the others, its role in the task file marks it as test data. Each dataset
draws its own scanner (:func:`~ACELib.phantoms.mri.draw_scanner`), so the test set's intensities are
shifted from the training sets' as in the paper's multi-domain remark. Everything is reproducible
from ``seed``: a case depends only on the seed, scenario, dataset and case number.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ACELib.data.contract import SYNTH_FOLDER, write_case, write_dataset_info
from ACELib.io.atomic import atomic_write_text
from ACELib.io.image import write_image
from ACELib.labels import DatasetSpec, JointLabel, Task, save_task
from ACELib.phantoms.mri import Scanner, draw_scanner
from ACELib.phantoms.subject import LESION_VALUES, Subject, make_subject
from ACELib.phantoms.template import load_template

log = logging.getLogger(__name__)

PROFILES = {"quick": 3.0, "full": 1.0}
"""Voxel size (mm) of each profile: ``quick`` for CPU runs, ``full`` at the 1 mm of BrainWeb/MNI."""

TASK_FILE = "task.json"
RECORD_FILE = "phantoms.json"
_TISSUE_LABELS = {"CSF": 1, "GM": 2, "WM": 3}
_COLORS = {
    "background": (0, 0, 0), "CSF": (70, 130, 180), "GM": (220, 180, 140), "WM": (245, 245, 245),
    "WMH": (255, 50, 50), "edema": (80, 200, 80), "tumor": (230, 50, 30),
}

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset of a scenario.

    Attributes:
        name: dataset name in the task file (``anatomy``, ``lesion``, ``test``).
        folder: dataset folder name (nnU-Net style ``DatasetXXX_Name``).
        modalities: channels, in order.
        labels: which label map is written: ``tissue``, ``lesion`` or ``joint``.
        lesion: what the subjects carry (``none``, ``wmh``, ``tumor``).
        lesion_probability: share of subjects that carry it.
        wmh_load_ml: range of WMH volumes (drawn log-uniformly).
        thick_slices: chance that the dataset's scanner acquires thick slices.
    """

    name: str
    folder: str
    modalities: tuple[str, ...]
    labels: str
    lesion: str = "none"
    lesion_probability: float = 1.0
    wmh_load_ml: tuple[float, float] = (0.5, 50.0)
    thick_slices: float = 0.3

    @property
    def role(self) -> str:
        return "test" if self.labels == "joint" else "train"


@dataclass(frozen=True)
class Scenario:
    """A scenario: joint label space, single-model modalities, default case counts, datasets."""

    name: str
    key: int
    lesion_labels: tuple[str, ...]
    modalities: tuple[str, ...]
    counts: tuple[int, int, int]
    datasets: tuple[DatasetPlan, DatasetPlan, DatasetPlan]

    @property
    def joint_labels(self) -> tuple[str, ...]:
        return ("background", *_TISSUE_LABELS, *self.lesion_labels)


_WMH_MODS = ("T1", "FLAIR")
_TUMOR_MODS = ("T1", "T1c", "T2", "FLAIR")
SCENARIOS = {
    # MRBrainS13 (5 elderly subjects, tissue labels), WMH challenge (60, WMH labels), MRBrainS18 (7, joint)
    "wmh": Scenario("wmh", 1, ("WMH",), _WMH_MODS, (5, 60, 7), (
        DatasetPlan("anatomy", "Dataset001_WMHAnatomy", _WMH_MODS, "tissue", "wmh", 0.8, (0.2, 10.0), 0.5),
        DatasetPlan("lesion", "Dataset002_WMHLesion", _WMH_MODS, "lesion", "wmh", 1.0, (0.5, 60.0), 0.5),
        DatasetPlan("test", "Dataset003_WMHTest", _WMH_MODS, "joint", "wmh", 1.0, (0.5, 40.0), 0.5),
    )),
    # BrainWeb (15 healthy, T1), BRATS2012 simulated (50, four modalities), Tumorsim on BrainWeb (20, joint)
    "tumor": Scenario("tumor", 2, ("edema", "tumor"), ("T1",), (15, 50, 20), (
        DatasetPlan("anatomy", "Dataset011_TumorAnatomy", ("T1",), "tissue", "none", thick_slices=0.0),
        DatasetPlan("lesion", "Dataset012_TumorLesion", _TUMOR_MODS, "lesion", "tumor", thick_slices=0.2),
        DatasetPlan("test", "Dataset013_TumorTest", _TUMOR_MODS, "joint", "tumor", thick_slices=0.2),
    )),
}


SHIFTED = "shifted"
"""Name of the optional extra joint test set acquired by a shifted scanner (``shifted=N``)."""
HEAD_MARGIN_MM = 24.0
"""Room around the brain on the grid of skull-on phantoms (skull, fat and scalp fit in it)."""


def dataset_plans(sc: Scenario, shifted: bool = False) -> tuple[DatasetPlan, ...]:
    """The scenario's datasets, plus the shifted-scanner test set when ``shifted``."""
    if not shifted:
        return sc.datasets
    test = sc.datasets[2]
    number = int(test.folder[len("Dataset"):len("Dataset") + 3])
    folder = f"Dataset{number + 1:03d}_" + test.folder.split("_", 1)[1].replace("Test", "Shifted")
    return (*sc.datasets, replace(test, name=SHIFTED, folder=folder, thick_slices=1.0))


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; a typo is answered with the valid names."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario must be one of {sorted(SCENARIOS)}, got {name!r}")
    return SCENARIOS[name]


def scenario_task(name: str, root: str | os.PathLike = ".", shifted: bool = False) -> Task:
    """The task (joint labels, datasets, roles) of a scenario, its dataset paths relative to ``root``.

    With ``shifted``, the shifted-scanner test set is a second dataset with role ``test``.

    For the WMH anatomy dataset the task declares ``widen: {"WM": ["WMH"]}``: its subjects carry
    WMH that are labelled as the white matter they sit in.
    """
    sc = get_scenario(name)
    labels = tuple(JointLabel(n, i, _COLORS[n]) for i, n in enumerate(sc.joint_labels))
    datasets = []
    for plan in dataset_plans(sc, shifted):
        values = _dataset_label_values(sc, plan)
        widen = {"WM": ("WMH",)} if plan.labels == "tissue" and plan.lesion == "wmh" else {}
        datasets.append(DatasetSpec(
            name=plan.name, path=plan.folder, modalities=plan.modalities,
            labels={v: n for n, v in values.items()}, widen=widen, role=plan.role,
        ))
    return Task(name=sc.name, labels=labels, datasets=tuple(datasets), modalities=sc.modalities,
                root=str(root)).validate()


def _dataset_label_values(sc: Scenario, plan: DatasetPlan) -> dict[str, int]:
    """Label name -> value written in the dataset's label maps (background excluded)."""
    if plan.labels == "tissue":
        return dict(_TISSUE_LABELS)
    if plan.labels == "lesion":
        return dict(LESION_VALUES[plan.lesion])
    return {n: i for i, n in enumerate(sc.joint_labels) if i > 0}


def make_scenario(scenario: str, out_dir: str | os.PathLike, *, quick: bool = False, spacing: float | None = None,
                  counts: Sequence[int] | None = None, seed: int = 0, overwrite: bool = False,
                  progress: ProgressFn | None = None, workers: int = 1, shifted: int = 0,
                  head: float = 0.0) -> Path:
    """Generate a scenario's three datasets (four with ``shifted``) and its task file.

    Every dataset also gets ``synthTr/{case}.nii.gz``, each voxel's generator class
    (``mri.CLASSES``), which training reads for domain randomisation.

    Args:
        scenario: ``"wmh"`` or ``"tumor"``.
        out_dir: output folder; created if missing. It must be empty unless ``overwrite``.
        quick: 3 mm voxels (CPU-sized) instead of 1 mm.
        spacing: voxel size in mm, overriding the profile (e.g. 8 for tiny test volumes).
        counts: cases of the anatomy, lesion and test datasets; the paper's by default
            (wmh: 5, 60, 7; tumor: 15, 50, 20).
        seed: non-negative integer; the same seed gives the same phantoms.
        overwrite: replace the scenario's dataset folders and files in a non-empty ``out_dir``.
        progress: called as ``progress(done, total, message)`` after each case.
        workers: processes generating cases in parallel (1: in this process). The result does not
            depend on it.
        shifted: cases of an extra joint test set (``Dataset0X4_*Shifted``, role test) whose scanner
            has a wider contrast spread (0.3 instead of 0.1), thick slices (4-7 mm) always and a
            stronger bias field than the training scanners; skull-on when ``head`` > 0.
        head: chance that a subject is skull-on (skull, fat, scalp around the brain; background in
            every label map); 0 gives skull-stripped phantoms.

    Returns:
        Path of the written task file.

    Raises:
        ValueError: unknown scenario, bad counts, seed, spacing or workers.
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False (or is a file).
        ImportError: nilearn (the template) is not installed.
    """
    sc = get_scenario(scenario)
    counts = _check_counts(sc, counts)
    _check_options(seed, workers, shifted, head)
    spacing = float(PROFILES["quick" if quick else "full"] if spacing is None else spacing)
    plans = dataset_plans(sc, shifted > 0)
    counts = (*counts, int(shifted)) if shifted else counts
    out = _prepare_output(Path(out_dir), plans, overwrite)
    template = _template(spacing, head)
    task = scenario_task(scenario, root=out, shifted=shifted > 0)
    jobs = []
    for index, (plan, count) in enumerate(zip(plans, counts)):
        values = _dataset_label_values(sc, plan)
        write_dataset_info(out / plan.folder, plan.modalities, {"background": 0, **values}, count, name=plan.folder)
        jobs.extend((sc.name, index, i, spacing, int(seed), str(out), overwrite, float(head)) for i in range(count))
    infos = _run_jobs(sc, plans, jobs, workers, progress)
    record: dict = {"scenario": sc.name, "seed": int(seed), "spacing_mm": spacing, "head_probability": float(head),
                    "shape_dhw": list(template.shape), "counts": {p.name: c for p, c in zip(plans, counts)},
                    "datasets": {}}
    for index, (plan, count) in enumerate(zip(plans, counts)):
        record["datasets"][plan.name] = {
            "folder": plan.folder, "scanner": _scanner(sc, index, seed).to_dict(),
            "cases": {_case_name(sc, index, i): infos[index, i] for i in range(count)},
        }
        log.info("%s: %d cases written", out / plan.folder, count)
    atomic_write_text(out / RECORD_FILE, json.dumps(record, indent=1) + "\n")
    task_path = out / TASK_FILE
    save_task(task, task_path)
    return task_path


def _check_options(seed, workers, shifted, head) -> None:
    _check_seed(seed)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(shifted, bool) or not isinstance(shifted, (int, np.integer)) or shifted < 0:
        raise ValueError(f"shifted must be a non-negative number of cases, got {shifted!r}")
    if not isinstance(head, (int, float)) or not 0.0 <= float(head) <= 1.0:
        raise ValueError(f"head must be a probability in [0, 1], got {head!r}")


def _run_jobs(sc: Scenario, plans: Sequence[DatasetPlan], jobs: list[tuple], workers: int,
              progress: ProgressFn | None) -> dict[tuple[int, int], dict]:
    """Write every case (in ``workers`` processes); returns ``{(dataset index, case): generation record}``."""
    infos: dict[tuple[int, int], dict] = {}

    def report(job, info) -> None:
        infos[job[1], job[2]] = info
        if progress is not None:
            progress(len(infos), len(jobs), f"{plans[job[1]].folder} {_case_name(sc, job[1], job[2])}")

    if workers == 1 or len(jobs) < 2:
        for job in jobs:
            report(job, _write_case(job))
        return infos
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a threaded process
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(_write_case, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            report(futures[future], future.result())
    return infos


def _case_name(sc: Scenario, index: int, case: int) -> str:
    return f"{sc.name}_{dataset_plans(sc, True)[index].name}_{case:03d}"


def _template(spacing: float, head: float):
    return load_template(spacing, margin_mm=HEAD_MARGIN_MM) if head > 0 else load_template(spacing)


def _write_case(job: tuple) -> dict:
    """Generate and write one case (runs in worker processes too); returns its generation record."""
    scenario, index, case, spacing, seed, out, overwrite, head = job
    sc = get_scenario(scenario)
    plan = dataset_plans(sc, True)[index]
    subject = _subject(sc, index, case, _template(spacing, head), _scanner(sc, index, seed), seed, head)
    label = {"tissue": subject.tissue, "lesion": subject.lesion, "joint": subject.joint}[plan.labels]
    name = _case_name(sc, index, case)
    write_case(Path(out) / plan.folder, name, subject.stack(plan.modalities), subject.geometry, label,
               overwrite=overwrite)
    write_image(Path(out) / plan.folder / SYNTH_FOLDER / f"{name}.nii.gz", subject.synth, subject.geometry)
    return {k: round(float(v), 3) for k, v in subject.info.items()}


def scenario_subject(scenario: str, dataset: str, case: int, *, quick: bool = False,
                     spacing: float | None = None, seed: int = 0, head: float = 0.0,
                     scanner: Scanner | None = None) -> Subject:
    """The subject that :func:`make_scenario` writes as case number ``case`` of ``dataset``.

    Cases are independent of each other and of the case counts, so any one can be regenerated, with
    what its files do not hold (e.g. the WMH hidden in the anatomy dataset's tissue labels).

    Args:
        dataset: ``"anatomy"``, ``"lesion"``, ``"test"`` or ``"shifted"``.
        case: case number (0 for the first).
        quick, spacing, seed, head: as given to :func:`make_scenario`.
        scanner: acquire the same subject (same anatomy, lesions, labels and head) with these
            settings instead of its dataset's scanner (:func:`scenario_scanner`), e.g. to find which
            setting of a test scanner a model does not cope with.

    Raises:
        ValueError: unknown scenario or dataset, negative case number, bad seed.
    """
    sc = get_scenario(scenario)
    index = _dataset_index(sc, dataset)
    if isinstance(case, bool) or not isinstance(case, (int, np.integer)) or case < 0:
        raise ValueError(f"case must be a non-negative integer, got {case!r}")
    _check_seed(seed)
    template = _template(float(PROFILES["quick" if quick else "full"] if spacing is None else spacing), head)
    return _subject(sc, index, int(case), template, scanner or _scanner(sc, index, seed), seed, head)


def scenario_scanner(scenario: str, dataset: str, seed: int = 0) -> Scanner:
    """The acquisition settings of ``dataset`` that :func:`make_scenario` draws with ``seed``."""
    sc = get_scenario(scenario)
    index = _dataset_index(sc, dataset)
    _check_seed(seed)
    return _scanner(sc, index, seed)


def _dataset_index(sc: Scenario, dataset: str) -> int:
    names = [plan.name for plan in dataset_plans(sc, True)]
    if dataset not in names:
        raise ValueError(f"dataset must be one of {names}, got {dataset!r}")
    return names.index(dataset)


def _scanner(sc: Scenario, index: int, seed: int):
    plan = dataset_plans(sc, True)[index]
    rng = np.random.default_rng([seed, sc.key, index, 0, 0])
    if plan.name == SHIFTED:
        return draw_scanner(rng, f"{sc.name}-{plan.name}", thick_slice_probability=1.0, contrast_spread=0.3,
                            thickness_mm=(4.0, 7.0), bias_std=(0.2, 0.4))
    return draw_scanner(rng, f"{sc.name}-{plan.name}", thick_slice_probability=plan.thick_slices)


def _subject(sc: Scenario, index: int, case: int, template, scanner, seed: int, head: float = 0.0) -> Subject:
    """Case ``case`` of dataset ``index``: its random stream depends on nothing else."""
    plan = dataset_plans(sc, True)[index]
    rng = np.random.default_rng([seed, sc.key, index, 1, case])
    carries = plan.lesion != "none" and rng.random() < plan.lesion_probability
    lo, hi = plan.wmh_load_ml
    load = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if plan.lesion == "wmh" else None
    skull_on = head > 0 and (plan.name == SHIFTED or rng.random() < head)
    return make_subject(template, rng, scanner, modalities=plan.modalities,
                        lesion=plan.lesion if carries else "none", wmh_load_ml=load, head=skull_on)


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_counts(sc: Scenario, counts) -> tuple[int, int, int]:
    if counts is None:
        return sc.counts
    try:
        values = tuple(counts)
    except TypeError:
        raise ValueError(f"counts must be three integers (anatomy, lesion, test), got {counts!r}") from None
    if len(values) != 3 or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1
                               for c in values):
        raise ValueError(f"counts must be three integers >= 1 (anatomy, lesion, test), got {counts!r}")
    return tuple(int(c) for c in values)  # type: ignore[return-value]


def _prepare_output(out: Path, plans: Sequence[DatasetPlan], overwrite: bool) -> Path:
    """Create ``out``; refuse a non-empty one unless ``overwrite``, then clear the scenario's folders."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output {str(out)!r} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"output folder {str(out)!r} is not empty; choose another folder or overwrite it "
                "(overwrite=True, or --overwrite on the command line)"
            )
        for plan in plans:
            if (out / plan.folder).is_dir():
                shutil.rmtree(out / plan.folder)
    out.mkdir(parents=True, exist_ok=True)
    return out
