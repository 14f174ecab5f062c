"""Inference cost of the hetero-modal network against the single-input U-Net of the same width.

Both networks are built through the same inference path (``SegmentationModel``: batch norm folded,
channels-last, planned windows) and run side by side in one process on one volume: the hetero-modal
network with four modalities (and with one), the plain :class:`UNet3D` with one input channel (the
T1-only ACE model) and with four (a 4-channel single model). The hetero-modal network with four
modalities runs as a trained one does: with the tumour scenario's label sources (tissue from T1, the
lesions from all four), either one pass per source combined (``passes: "sources"``, two passes) or
one pass (``passes: "one"``, a model trained with pass distillation). Prints FLOPs per voxel of
each pass (PyTorch's FLOP counter on one window, times the number of passes) and the best of
``--repeats`` wall times of the whole prediction, and the ratios to the 1-channel U-Net.
Target of issue 13: four modalities <= 1.5x the single-input network.

    python benchmarks/hetero_cost.py                                  # cpu profile width (16, depth 3)
    python benchmarks/hetero_cost.py --base 32 --depth 4 --shape 144 176 144   # the paper's width
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ACELib.inference import create_model
from ACELib.inference.label_sources import LabelSource
from ACELib.labels import JointLabel

LABELS = tuple(JointLabel(n, i, (i * 40, 100, 200 - i * 40))
               for i, n in enumerate(["background", "CSF", "GM", "WM", "edema", "tumor"]))
MODS = ("T1", "T1c", "T2", "FLAIR")
SOURCES = (LabelSource(("CSF", "GM", "WM"), ("T1",)), LabelSource(("edema", "tumor"), MODS))
"""The tumour scenario's label sources: the anatomy dataset has T1, the lesion dataset all four."""


def with_passes(model, passes: str):
    """``model`` with the tumour scenario's label sources, run with ``passes`` ("sources" or "one")."""
    model.metadata = dataclasses.replace(model.metadata, label_sources=SOURCES, passes=passes)
    return model


def passes_of(model, names) -> list:
    """The input subsets ``model.predict`` runs the network on for ``names``."""
    return model.metadata.inference_passes(names)


def flops_per_voxel(model, names, side: int = 32) -> float:
    """Forward FLOPs per voxel of the model's (unfolded) network on one ``side``^3 window."""
    net = model.networks[0]
    x = torch.randn(1, len(model.modalities), side, side, side)
    total = 0
    for sub in passes_of(model, names):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            if model.metadata.modality_subsets == "any":
                present = torch.tensor([[m in sub for m in model.modalities]])
                net(x, present)
            else:
                net(x)
        total += counter.get_total_flops()
    return total / side**3


def best_time(model, image, names, repeats: int) -> float:
    model.predict(image, modalities=names)  # warm-up (folding, allocations)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(image, modalities=names)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 80, 64))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (4, *args.shape)).astype(np.float32)
    kw = {"base_channels": args.base, "depth": args.depth, "seed": 0}
    cases = [
        ("UNet3D, 1 input (T1)", create_model(LABELS, MODS[:1], **kw), MODS[:1]),
        ("UNet3D, 4 inputs", create_model(LABELS, MODS, **kw), MODS),
        ("hetero, T1 alone", create_model(LABELS, MODS, hetero=True, **kw), MODS[:1]),
        ("hetero, 4 modalities, label sources (2 passes)", with_passes(create_model(LABELS, MODS, hetero=True, **kw),
                                                                      "sources"), MODS),
        ("hetero, 4 modalities, one pass (distilled)", with_passes(create_model(LABELS, MODS, hetero=True, **kw),
                                                                  "one"), MODS),
    ]
    print(f"base {args.base}, depth {args.depth}, volume {tuple(args.shape)}, {args.threads} threads")
    ref_flops = ref_time = None
    for title, model, names in cases:
        fpv = flops_per_voxel(model, names)
        t = best_time(model, image[[MODS.index(m) for m in names]], names, args.repeats)
        ref_flops, ref_time = ref_flops or fpv, ref_time or t
        print(f"{title:46s} {fpv / 1e3:8.1f} kFLOP/voxel ({fpv / ref_flops:.2f}x)   {t:7.3f} s ({t / ref_time:.2f}x)")


if __name__ == "__main__":
    main()
