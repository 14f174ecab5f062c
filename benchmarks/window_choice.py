"""Which inference window? Dice per class and seconds of a trained model for a few window settings.

Runs one model over a folder of joint test cases (a dataset folder in the nnU-Net raw layout whose
``dataset.json`` label names are the model's label names, e.g. the test dataset ``ace phantoms``
writes) with each window setting, and prints, per setting: the mean Dice of every foreground label over
the cases, the mean tissue Dice, and the seconds for all cases (also relative to the whole volume).
The settings (``P`` = the model's training patch size, from its model file):

* ``whole``: the whole volume as one window;
* ``default``: what ``ace predict`` does now (windows planned from the voxel budget; the whole volume
  when it fits);
* ``P/0.25``, ``P/0.5``: training-patch windows at overlap 0.25 and 0.5;
* ``2P/0.25``, ``2P/0.5``: windows of twice the training patch.

    python benchmarks/window_choice.py MODEL.safetensors TEST_DATASET_DIR [--cases 3 (0 = all)] [--threads 2]
        [--settings default whole P/0.5 ...] [--csv out.csv]

The timings are of one process on this machine as loaded at the time: compare settings within one run.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ACELib.data.contract import list_cases, read_dataset_info
from ACELib.inference import load_model
from ACELib.metrics.masks import dice

SETTINGS = ("whole", "default", "P/0.25", "P/0.5", "2P/0.25", "2P/0.5")
TISSUES = ("CSF", "GM", "WM")


def window_of(setting: str, patch: tuple[int, int, int]) -> tuple[tuple[int, int, int] | None, float]:
    """``(window, overlap)`` of a setting name; window None = the library's planned default."""
    if setting == "default":
        return None, 0.25
    if setting == "whole":
        return (100_000,) * 3, 0.0  # clipped to the volume per axis: one window
    size, _, overlap = setting.partition("/")
    factor = {"P": 1, "2P": 2}.get(size)
    if factor is None or not overlap:
        raise ValueError(f"setting must be one of {list(SETTINGS)} or like 'P/0.5', '2P/0.25', got {setting!r}")
    return tuple(factor * p for p in patch), float(overlap)


def load_cases(folder: Path, modalities, label_names, limit: int | None):
    """``[(name, image (C, D, H, W), geometry, label values mapped to the model's values)]``."""
    info = read_dataset_info(folder)
    missing = [m for m in modalities if m not in info.channel_names]
    if missing:
        raise ValueError(f"{folder}: lacks the model's modalities {missing} (it has {list(info.channel_names)})")
    unknown = [n for n in info.labels if n not in label_names]
    if unknown:
        raise ValueError(f"{folder}: dataset.json labels {unknown} are not labels of the model {list(label_names)}")
    lut = np.zeros(max(info.labels.values()) + 1, dtype=np.int64)
    for name, value in info.labels.items():
        lut[value] = label_names[name]
    channels = [info.channel_names.index(m) for m in modalities]
    out = []
    for case in list_cases(folder, info)[:limit]:
        image, label, geom = case.read()
        if label is None:
            raise ValueError(f"{folder}: case {case.name!r} has no label file (joint test cases are needed)")
        out.append((case.name, image[channels], geom, lut[label]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a trained model file (.safetensors)")
    ap.add_argument("test", type=Path, help="a dataset folder of joint test cases (imagesTr + labelsTr)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), help=f"default: {' '.join(SETTINGS)}")
    ap.add_argument("--cases", type=int, default=3,
                    help="use the first N cases (default 3, a few minutes on 2 busy cores; 0 = all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--csv", type=Path, help="also write the table (one row per setting) to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    patch = tuple(int(p) for p in model.metadata.patch_size)
    labels = {lab.name: lab.value for lab in model.labels}
    foreground = [lab for lab in model.labels if lab.value != 0]
    cases = load_cases(args.test, model.modalities, labels, args.cases or None)
    plans = [(s, *window_of(s, patch)) for s in args.settings]  # check every name before running
    print(f"model {args.model} (training patch {patch}, spacing {model.metadata.preprocessing.spacing}); "
          f"{len(cases)} cases of {args.test}; {args.threads} threads", flush=True)
    names = [lab.name for lab in foreground]
    tissues = [n for n in TISSUES if n in names]
    header = f"{'setting':10s} {'window':>14s} {'overlap':>7s} " + " ".join(f"{n:>7s}" for n in names)
    header += f" {'tissue':>7s} {'seconds':>8s} {'x whole':>7s}"
    print(header)
    rows, whole_seconds = [], None
    model.predict(cases[0][1][:, :16, :16, :16], cases[0][2].spacing, window=(16, 16, 16))  # warm-up
    for setting, window, overlap in plans:
        scores = {n: [] for n in names}
        start = time.perf_counter()
        predictions = [model.predict(image, geometry=geom, window=window, overlap=overlap).labels
                       for _, image, geom, _ in cases]
        seconds = time.perf_counter() - start
        for pred, (_, _, _, truth) in zip(predictions, cases):
            for lab in foreground:
                p, t = pred == lab.value, truth == lab.value
                if p.any() or t.any():  # a label absent from both is not scored
                    scores[lab.name].append(dice(p, t))
        mean = {n: float(np.mean(v)) if v else float("nan") for n, v in scores.items()}
        tissue = float(np.mean([mean[n] for n in tissues])) if tissues else float("nan")
        if setting == "whole":
            whole_seconds = seconds
        shown = "planned" if window is None else ("volume" if setting == "whole" else "x".join(map(str, window)))
        rel = f"{seconds / whole_seconds:7.2f}" if whole_seconds else f"{'':7s}"
        print(f"{setting:10s} {shown:>14s} {overlap if window is not None else '':>7} "
              + " ".join(f"{mean[n]:7.4f}" for n in names) + f" {tissue:7.4f} {seconds:8.1f} {rel}", flush=True)
        rows.append({"setting": setting, "window": shown, "overlap": overlap if window is not None else "",
                     **{f"dice_{n}": mean[n] for n in names}, "dice_tissue": tissue, "seconds": seconds})
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
