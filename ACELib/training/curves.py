"""Training log (CSV, appended row by row) and a PNG plot of the curves.

Columns: ``step, loss, patches_per_s, val_dice, elapsed_s, lr`` and one ``val:<dataset>/<label>`` column
per validated (dataset, class): the mean validation Dice of that class on that dataset's cases.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from ACELib.io.atomic import atomic_path

log = logging.getLogger(__name__)
COLUMNS = ("step", "loss", "patches_per_s", "val_dice", "elapsed_s", "lr")
VAL_PREFIX = "val:"


class TrainingLog:
    """Append-only CSV log; on resume, rows after the resumed step are dropped.

    Args:
        extra: further column names (e.g. ``val:anatomy/CSF``), after :data:`COLUMNS`.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None, extra: Sequence[str] = ()):
        self.path = Path(path)
        self.columns = (*COLUMNS, *extra)
        rows = read_log(self.path) if resume_step is not None and self.path.exists() else []
        rows = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    def append(self, **row) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.columns).writerow({k: _fmt(row.get(k)) for k in self.columns})


def read_log(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a training log: column -> text (empty where a row has no value; a row still being
    written may lack its last columns)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def log_series(rows: Sequence[dict], column: str) -> tuple[list[int], list[float]]:
    """Steps and values of one column of :func:`read_log`'s rows; rows without a finite value are left out."""
    steps, values = [], []
    for row in rows:
        try:
            step, value = int(row["step"]), float(row[column])
        except (KeyError, TypeError, ValueError):  # no value, or a row cut short
            continue
        if math.isfinite(value):
            steps.append(step)
            values.append(value)
    return steps, values


def _fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> bool:
    """Plot loss, learning rate and validation Dice (selection score and per class) against step.

    Returns False (and logs why) without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no training plot (pip install matplotlib)")
        return False
    rows = read_log(csv_path)
    names = list(rows[0]) if rows else []
    fig, (ax, ax3) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    ax.plot(*log_series(rows, "loss"), color="tab:blue", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss", color="tab:blue")
    if any(r.get("lr") for r in rows):
        ax2 = ax.twinx()
        ax2.plot(*log_series(rows, "lr"), color="tab:gray", lw=1.0, ls="--")
        ax2.set_ylabel("learning rate (dashed)", color="tab:gray")
    ax.set_title(title)
    ax3.plot(*log_series(rows, "val_dice"), "o-", color="black", ms=3, lw=1.5, label="selection score")
    for name in names:
        if name.startswith(VAL_PREFIX):
            ax3.plot(*log_series(rows, name), ".-", ms=2, lw=0.8, label=name[len(VAL_PREFIX):])
    ax3.set_ylim(0, 1)
    ax3.set_xlabel("step")
    ax3.set_ylabel("validation Dice")
    ax3.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True
