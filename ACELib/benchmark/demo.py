"""``make demo`` / ``ace demo``: the main job on embedded defaults, in at most six minutes on 2 CPU cores.

Builds WMH phantoms at 3 mm (the cpu profile), trains ACE and naive CE on them with the cpu training
profile (fewer steps: :data:`DEMO_ITERATIONS`), segments the held-out joint test cases with both,
prints the mean Dice per class, and writes the segmentations (NIfTI) and a PNG figure of three
orthogonal slices of the first test case (image, ground truth, ACE, naive CE). Torch runs with
:data:`DEMO_THREADS` threads whatever the machine, so two runs print the same numbers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ACELib.benchmark.methods import METHODS, PROFILES, method_config
from ACELib.benchmark.runner import train_unless_done
from ACELib.benchmark.testset import test_folders
from ACELib.inference import cases_in_folder, load_model, predict_case
from ACELib.io.atomic import atomic_path
from ACELib.io.image import read_image
from ACELib.labels import Task, load_task
from ACELib.metrics import evaluate_case
from ACELib.phantoms.scenarios import TASK_FILE, make_scenario

log = logging.getLogger(__name__)
DEMO_COUNTS = (5, 30, 3)
DEMO_METHODS = ("ace", "naive-ce")
DEMO_ITERATIONS = 400  # cpu profile network; both methods together in about 4 min on 2 idle cores
DEMO_THREADS = 2


def run_demo(out: str | os.PathLike, iterations: int | None = None, progress_factory=None,
             device: str = "auto") -> dict[str, dict[str, float]]:
    """Run the demo into ``out`` (resumable) and return ``{method: {label: mean Dice over the test cases}}``."""
    out = Path(out)
    bar = progress_factory or (lambda desc: None)
    task_path = out / "phantoms" / TASK_FILE
    if not task_path.exists():
        make_scenario("wmh", task_path.parent, quick=True, counts=DEMO_COUNTS, seed=0,
                      overwrite=task_path.parent.exists(), progress=bar("phantoms"))
    task = load_task(task_path)
    images, labels = test_folders(task)
    cases = cases_in_folder(images)
    truths = [read_image(labels / f"{c.name}.nii.gz", dtype=np.int64) for c in cases]
    profile = PROFILES["cpu"]
    scores: dict[str, dict[str, float]] = {}
    segmentations = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(DEMO_THREADS)
    try:
        for key in DEMO_METHODS:
            method = METHODS[key]
            config = method_config(profile, method, seed=0, device=device)
            config = config.with_changes(iterations=iterations or DEMO_ITERATIONS, num_threads=DEMO_THREADS)
            model_path = train_unless_done(task, out / "runs" / key, config, progress=bar(f"train {key}"))
            model = load_model(model_path, device=device)
            per_case = []
            for case, (gt, geom) in zip(cases, truths):
                seg_path = out / f"{case.name}_{key}.nii.gz"
                predict_case(model, case, seg_path, overwrite=True)
                seg = read_image(seg_path, dtype=np.int64)[0]
                segmentations.setdefault(key, seg)
                per_case.append({name: m["dice"] for name, m in evaluate_case(seg, gt, task.labels, geom.spacing).items()})
            scores[key] = {name: float(np.mean([d[name] for d in per_case])) for name in per_case[0]}
    finally:
        torch.set_num_threads(threads)
    gt = truths[0][0]
    image = read_image(cases[0].image_paths[-1])[0]  # FLAIR
    try:
        demo_figure(out / "demo.png", image, gt, segmentations, task)
    except ImportError as exc:
        log.warning("no figure: %s", exc)
    return scores


def _panels(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    z, y, x = centre
    return [volume[z][::-1], volume[:, y, :][::-1], volume[:, :, x][::-1]]


def demo_figure(path: Path, image: np.ndarray, gt: np.ndarray, segs: dict[str, np.ndarray], task: Task) -> None:
    """Three orthogonal slices (rows) x image, ground truth, each method (columns)."""
    from ACELib.benchmark.figures import label_rgb, lesion_values, pyplot

    plt = pyplot()
    lesion = np.isin(gt, lesion_values(task))
    centre = tuple(int(np.argmax(lesion.sum(axis=tuple(a for a in range(3) if a != k)))) for k in range(3)) \
        if lesion.any() else tuple(s // 2 for s in gt.shape)
    columns = [("FLAIR", None), ("ground truth", gt)] + [(METHODS[k].title, s) for k, s in segs.items()]
    fig, axes = plt.subplots(3, len(columns), figsize=(2.4 * len(columns), 7.2))
    img_panels = _panels(image, centre)
    for c, (title, lab) in enumerate(columns):
        lab_panels = _panels(lab, centre) if lab is not None else [None] * 3
        for r in range(3):
            ax = axes[r, c]
            ax.imshow(img_panels[r], cmap="gray", aspect="auto")
            if lab_panels[r] is not None:
                ax.imshow(label_rgb(lab_panels[r], task), aspect="auto")
            ax.axis("off")
            if r == 0:
                ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(lab.color) / 255) for lab in task.labels[1:]]
    fig.legend(handles, [lab.name for lab in task.labels[1:]], loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
