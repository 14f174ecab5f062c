"""Training log (CSV, appended row by row) and a PNG plot of the curves."""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path

from ACELib.io.atomic import atomic_path

log = logging.getLogger(__name__)
COLUMNS = ("step", "loss", "patches_per_s", "val_dice", "elapsed_s")


class TrainingLog:
    """Append-only CSV log; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        rows = self.read() if resume_step is not None and self.path.exists() else []
        rows = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            w.writerows(rows)

    def append(self, **row) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, COLUMNS).writerow({k: _fmt(row.get(k)) for k in COLUMNS})

    def read(self) -> list[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def _fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> bool:
    """Plot loss and validation Dice against step. Returns False (and logs why) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no training plot (pip install matplotlib)")
        return False
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows if r["loss"]]
    loss = [float(r["loss"]) for r in rows if r["loss"]]
    vsteps = [int(r["step"]) for r in rows if r["val_dice"]]
    vdice = [float(r["val_dice"]) for r in rows if r["val_dice"]]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, loss, color="tab:blue", lw=0.8, label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="tab:blue")
    if vdice:
        ax2 = ax.twinx()
        ax2.plot(vsteps, vdice, "o-", color="tab:red", ms=3, label="validation Dice")
        ax2.set_ylabel("validation Dice", color="tab:red")
        ax2.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True
