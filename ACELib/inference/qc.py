"""A quality-control picture of a segmentation: three orthogonal slices with the labels over the image.

matplotlib is an optional extra (``pip install 'ace-segmentation[bench]'``), imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ACELib.io.atomic import atomic_path
from ACELib.io.image import Geometry
from ACELib.io.orientation import reorient


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("the QC picture needs matplotlib: pip install 'ace-segmentation[bench]' "
                          "(or pip install matplotlib)") from exc
    return plt


def overlay_rgba(labels: np.ndarray, joint_labels: Sequence, alpha: float = 0.5) -> np.ndarray:
    """``(H, W)`` joint values -> ``(H, W, 4)`` float RGBA in the labels' colours (background clear)."""
    rgba = np.zeros((*labels.shape, 4), np.float32)
    for lab in joint_labels[1:]:
        m = labels == lab.value
        rgba[m, :3] = np.asarray(lab.color, dtype=np.float32) / 255.0
        rgba[m, 3] = alpha
    return rgba


def slice_centre(labels: np.ndarray) -> tuple[int, int, int]:
    """``(z, y, x)``: the centre of the labelled voxels' bounding box (the volume's centre when none)."""
    fg = np.argwhere(labels != 0)
    if not len(fg):
        return tuple(s // 2 for s in labels.shape)
    return tuple(int(v) for v in (fg.min(0) + fg.max(0)) // 2)


def write_qc_png(path: str | os.PathLike, image: np.ndarray, labels: np.ndarray, geometry: Geometry,
                 joint_labels: Sequence, title: str = "") -> None:
    """Axial, coronal and sagittal slices through the segmentation's centre, labels over the image.

    The volume is first brought to the LPS orientation (axis permutations and flips only), so the
    views are the usual ones whatever the storage: radiological convention (the patient's left on the
    right of the picture), anterior up in the axial view, superior up in the others.

    Args:
        image: ``(D, H, W)`` intensities; labels: ``(D, H, W)`` joint values; both on ``geometry``.
        joint_labels: names and colours (``JointLabel``; ``[0]`` is background).

    Raises:
        ValueError: image, labels and geometry do not share a shape. ImportError: no matplotlib.
    """
    image, labels = np.asarray(image, dtype=np.float32), np.asarray(labels)
    if image.shape != geometry.shape or labels.shape != geometry.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must both have the geometry's shape "
                         f"{geometry.shape} (D, H, W)")
    plt = _pyplot()
    image, turn = reorient(image, geometry, "LPS")
    labels = turn.apply(labels)
    sx, sy, sz = turn.target.spacing
    z, y, x = slice_centre(labels)
    lo, hi = np.percentile(image, [1, 99])
    views = [("axial", image[z], labels[z], sy / sx),
             ("coronal", image[:, y, :][::-1], labels[:, y, :][::-1], sz / sx),
             ("sagittal", image[:, :, x][::-1], labels[:, :, x][::-1], sz / sy)]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.9))
    for ax, (name, img, lab, aspect) in zip(axes, views):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect)
        ax.imshow(overlay_rgba(lab, joint_labels), aspect=aspect, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(lab.color) / 255) for lab in joint_labels[1:]]
    fig.legend(handles, [lab.name for lab in joint_labels[1:]], loc="lower center", ncol=max(1, len(handles)),
               fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
