"""Benchmark figures (matplotlib, imported lazily: it is a `bench`/`test` extra, not a runtime need)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ACELib.benchmark.methods import METHODS
from ACELib.benchmark.testset import per_case_dice, test_folders
from ACELib.io.atomic import atomic_path
from ACELib.io.image import read_image
from ACELib.labels import Task


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display).

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("figures need matplotlib: pip install 'ace-segmentation[bench]'") from exc
    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def figure3_boxplot(results, labels: Sequence[str], path: str | os.PathLike) -> None:
    """Box plots of per-case Dice (seed-averaged), one panel per class, one box per method (Figure 3)."""
    plt = pyplot()
    methods = list(results)
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 4.2), sharey=True)
    axes = np.atleast_1d(axes)
    colors = plt.cm.tab10(np.arange(len(methods)))
    for ax, label in zip(axes, labels):
        data = [list(per_case_dice(results[m], label).values()) for m in methods]
        bp = ax.boxplot(data, patch_artist=True, widths=0.6)
        for patch, c in zip(bp["boxes"], colors):
            patch.set_facecolor(c)
            patch.set_alpha(0.6)
        ax.scatter(range(1, len(methods) + 1), [np.mean(d) for d in data], marker="D", color="red", zorder=3, s=18)
        ax.set_title(label)
        ax.set_xticks(range(1, len(methods) + 1), [m for m in methods], rotation=60, ha="right", fontsize=8)
        ax.set_ylim(-0.02, 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("Dice (test cases, mean over seeds)")
    fig.suptitle("Dice per class and method (red diamond: mean)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def label_rgb(labels_map: np.ndarray, task: Task) -> np.ndarray:
    """``(H, W)`` joint values -> ``(H, W, 4)`` RGBA overlay in the task's colours (background clear)."""
    rgba = np.zeros((*labels_map.shape, 4), np.float32)
    for lab in task.labels[1:]:
        m = labels_map == lab.value
        rgba[m, :3] = np.asarray(lab.color) / 255.0
        rgba[m, 3] = 0.75
    return rgba


def lesion_values(task: Task) -> list[int]:
    """Joint values of the lesion labels: those of the last training dataset (the lesion dataset in
    both scenarios)."""
    return [task.labels[task.label_index(n)].value for n in task.train_datasets[-1].labels.values()]


def figure4_qualitative(run, task: Task, path: str | os.PathLike, seed: int | None = None) -> None:
    """One test case: image, ground truth and every method's segmentation, on the axial slice with the
    most lesion voxels (Figure 4)."""
    plt = pyplot()
    seed = run.seeds[0] if seed is None else seed
    images, labels = test_folders(task)
    cases = sorted(p.name[: -len(".nii.gz")] for p in labels.glob("*.nii.gz"))
    gt_maps = {c: read_image(labels / f"{c}.nii.gz", dtype=np.int64)[0] for c in cases}
    lesions = lesion_values(task)
    loads = {c: int(np.isin(g, lesions).sum()) for c, g in gt_maps.items()}
    case = sorted(loads, key=loads.get)[len(loads) // 2]  # median lesion load
    gt = gt_maps[case]
    lesion = np.isin(gt, lesions)
    z = int(np.argmax(lesion.sum((1, 2)))) if lesion.any() else gt.shape[0] // 2
    channel = len(task.test_datasets[0].modalities) - 1  # FLAIR in both scenarios
    img = read_image(images / f"{case}_{channel:04d}.nii.gz")[0][z]
    panels = [("image", None), ("ground truth", gt[z])]
    for m in run.methods:
        p = run.prediction_dir(m, seed) / f"{case}.nii.gz"
        if p.exists():
            panels.append((METHODS[m.key].title, read_image(p, dtype=np.int64)[0][z]))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0))
    for ax, (title, lab) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img[::-1], cmap="gray")
        if lab is not None:
            ax.imshow(label_rgb(lab, task)[::-1])
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"test case {case}, slice {z}, seed {seed}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
