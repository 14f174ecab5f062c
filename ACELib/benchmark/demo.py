"""``make demo`` / ``ace demo``: the main job on embedded defaults, in about ten minutes on 2 CPU cores.

Builds quick WMH phantoms, trains ACE and naive CE briefly on them, segments a held-out joint test
case with both, prints per-class Dice, and writes both segmentations (NIfTI) and a PNG figure of
three orthogonal slices (image, ground truth, ACE, naive CE).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ACELib.benchmark.methods import METHODS, PROFILES, method_config
from ACELib.benchmark.testset import test_folders
from ACELib.inference import cases_in_folder, load_model, predict_case
from ACELib.io.atomic import atomic_path
from ACELib.io.image import read_image
from ACELib.labels import Task, load_task
from ACELib.metrics import evaluate_case
from ACELib.phantoms.scenarios import TASK_FILE, make_scenario
from ACELib.training import train

log = logging.getLogger(__name__)
DEMO_COUNTS = (5, 30, 3)
DEMO_METHODS = ("ace", "naive-ce")
DEMO_ITERATIONS = 600  # about 3.5 min for both methods on 2 idle cores


def run_demo(out: str | os.PathLike, iterations: int | None = None, progress_factory=None,
             device: str = "auto") -> dict[str, dict[str, float]]:
    """Run the demo into ``out`` (resumable) and return ``{method: {label: Dice}}`` on the test case."""
    out = Path(out)
    bar = progress_factory or (lambda desc: None)
    task_path = out / "phantoms" / TASK_FILE
    if not task_path.exists():
        make_scenario("wmh", task_path.parent, quick=True, counts=DEMO_COUNTS, seed=0,
                      overwrite=task_path.parent.exists(), progress=bar("phantoms"))
    task = load_task(task_path)
    images, labels = test_folders(task)
    case = cases_in_folder(images)[0]
    gt, geom = read_image(labels / f"{case.name}.nii.gz", dtype=np.int64)
    profile = PROFILES["quick"]
    scores: dict[str, dict[str, float]] = {}
    segmentations = {}
    for key in DEMO_METHODS:
        method = METHODS[key]
        config = method_config(profile, method, seed=0, device=device)
        config = config.with_changes(iterations=iterations or DEMO_ITERATIONS)
        run_dir = out / "runs" / key
        model_path = run_dir / "model.safetensors"
        if not model_path.exists():
            train(task, run_dir, config, resume=(run_dir / "config.json").exists(), progress=bar(f"train {key}"))
        seg_path = out / f"{case.name}_{key}.nii.gz"
        predict_case(load_model(model_path, device=device), case, seg_path, overwrite=True)
        seg = read_image(seg_path, dtype=np.int64)[0]
        segmentations[key] = seg
        result = evaluate_case(seg, gt, task.labels, geom.spacing)
        scores[key] = {name: m["dice"] for name, m in result.items()}
    image = read_image(case.image_paths[-1])[0]  # FLAIR
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
    from ACELib.benchmark.figures import _plt, label_rgb, lesion_values

    plt = _plt()
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
