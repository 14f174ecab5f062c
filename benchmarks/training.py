"""Training speed: one optimisation step of the paper's configuration, and the losses side by side.

The paper's setting (Appendix A): UNet3D with 32 base channels and 4 blocks per path, 2 input
channels (T1, FLAIR), 5 joint classes (background, CSF, GM, WM, WMH), batches of 7 patches of 32^3,
Adam, ACE loss. A step is what ``ACELib.training.trainer`` does: forward, loss, backward, Adam step
(float32 on CPU, where the trainer does not use autocast).

The batch mixes the two partially labelled datasets of the WMH scenario: 3 patches of a lesion
dataset (annotates background and WMH) and 4 of a tissue dataset (background, CSF, GM, WM).

Prints, measured in one run on this machine's CPU:

1. the training step: median and best time over a few steps after warm-up, patches per second;
2. each loss's forward + backward time on the same (7, 5, 32, 32, 32) logits, best of N interleaved
   rounds, and its ratio to ``torch.nn.functional.cross_entropy``: wall-clock with ``--threads``
   threads, and CPU time on one thread; the verdict against the target ACE <= 1.2 x CE (met when
   both ratios are).

    python benchmarks/training.py [--threads 2] [--steps 4] [--rounds 40]

On a shared machine, best-of over interleaved rounds is the fairest wall-clock comparison (every
method sees the same noise), and single-thread CPU time is barely disturbed by other processes.
The load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import brain_like_volume, peak_rss_mb  # noqa: E402

from ACELib.losses import ace_candidates, build_loss  # noqa: E402
from ACELib.networks import UNet3D, UNetConfig  # noqa: E402

BATCH, PATCH, CHANNELS, CLASSES = 7, 32, 2, 5
BG, CSF, GM, WM, WMH = range(CLASSES)
LESION_SAMPLES = 3  # the first 3 patches come from the lesion dataset, the other 4 from the tissue one
TARGET_RATIO = 1.2


def make_batch(seed: int = 0):
    """Image patches, joint targets, annotated masks and candidate tables of one mixed batch.

    Returns:
        ``(image (7, 2, 32, 32, 32) float32, target (7, 32, 32, 32) int64, annotated (7, 5) bool,
        candidates (7, 5, 5) bool)``.
    """
    gen = torch.Generator().manual_seed(seed)
    volume = torch.from_numpy(brain_like_volume((80, 96, 80), CHANNELS, seed))
    image = torch.empty(BATCH, CHANNELS, PATCH, PATCH, PATCH)
    for b in range(BATCH):
        corner = [int(torch.randint(0, n - PATCH + 1, (1,), generator=gen)) for n in volume.shape[1:]]
        image[b] = volume[:, corner[0]:corner[0] + PATCH, corner[1]:corner[1] + PATCH, corner[2]:corner[2] + PATCH]
    annotated = torch.zeros(BATCH, CLASSES, dtype=torch.bool)
    annotated[:LESION_SAMPLES, [BG, WMH]] = True
    annotated[LESION_SAMPLES:, [BG, CSF, GM, WM]] = True
    shape = (BATCH, PATCH, PATCH, PATCH)
    tissue = torch.randint(BG, WM + 1, shape, generator=gen)
    lesion = torch.where(torch.rand(shape, generator=gen) < 0.05, WMH, BG)
    target = torch.where(torch.arange(BATCH).view(-1, 1, 1, 1) < LESION_SAMPLES, lesion, tissue)
    return image, target, annotated, ace_candidates(annotated, "dataset")


def time_training_step(threads: int, steps: int, warmup: int, loss_name: str) -> list[float]:
    """Seconds of each timed step (forward, loss, backward, Adam) after ``warmup`` steps."""
    torch.manual_seed(0)
    net = UNet3D(UNetConfig(in_channels=CHANNELS, num_classes=CLASSES, base_channels=32, depth=4))
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = build_loss(loss_name)
    image, target, annotated, candidates = make_batch()
    times = []
    for i in range(warmup + steps):
        tic = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits = net(image)
        loss = loss_fn(logits.float(), target, annotated, candidates)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - tic)
    return times


def loss_methods(target, annotated, candidates):
    """name -> ``fn(logits) -> scalar``; the first is the baseline."""
    widened = candidates.clone()
    widened[LESION_SAMPLES:, WM, WMH] = True  # tissue dataset: its WM may hide WMH (two set rows)
    methods = {"F.cross_entropy (baseline)": lambda z: F.cross_entropy(z, target)}
    for name in ("ce", "ace", "ace-patch", "marginal", "marginal+widened", "dice", "ace+dice"):
        module = build_loss(name.replace("+widened", ""))
        tables = widened if name.endswith("+widened") else candidates
        methods[name] = lambda z, m=module, c=tables: m(z, target, annotated, c)
    return methods


def time_losses(rounds: int, threads: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Forward + backward times of every loss over ``rounds`` interleaved rounds (order rotated).

    Returns:
        ``(wall, cpu)``: per loss, wall-clock seconds with ``threads`` threads, and CPU seconds of
        the same work on one thread (``time.thread_time``). The single-thread CPU time is what a
        method costs; other processes competing for the cores barely disturb it, unlike wall time.
    """
    _, target, annotated, candidates = make_batch()
    gen = torch.Generator().manual_seed(1)
    logits = (2.0 * torch.randn(BATCH, CLASSES, PATCH, PATCH, PATCH, generator=gen)).requires_grad_(True)
    methods = loss_methods(target, annotated, candidates)
    names = list(methods)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for clock, num_threads, out in ((time.perf_counter, threads, wall), (time.thread_time, 1, cpu)):
        torch.set_num_threads(num_threads)
        for r in range(rounds + 2):  # two warm-up rounds
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                logits.grad = None
                tic = clock()
                methods[name](logits).backward()
                elapsed = clock() - tic
                if r >= 2:
                    out[name].append(elapsed)
    torch.set_num_threads(threads)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps after one warm-up step")
    ap.add_argument("--rounds", type=int, default=40, help="interleaved timing rounds of the losses")
    ap.add_argument("--loss", default="ace", help="loss of the training step (default ace, as in the paper)")
    args = ap.parse_args()
    if args.threads < 1 or args.steps < 1 or args.rounds < 1:
        ap.error("--threads, --steps and --rounds must be >= 1")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    print(f"torch {torch.__version__}, {threads}, {os.cpu_count()} CPUs, "
          f"load average {load_before:.2f} at start")
    print(f"paper configuration: UNet3D base 32, depth 4, {CHANNELS} -> {CLASSES} channels, batch "
          f"{BATCH} x {PATCH}^3, Adam, loss {args.loss!r}, float32")
    steps = time_training_step(args.threads, args.steps, warmup=1, loss_name=args.loss)
    median, best = statistics.median(steps), min(steps)
    print(f"training step   median {median:6.2f} s   best {best:6.2f} s   over {len(steps)} steps "
          f"after 1 warm-up")
    print(f"patches / s     median {BATCH / median:6.2f}     best {BATCH / best:6.2f}")

    wall, cpu = time_losses(args.rounds, args.threads)
    base_name = next(iter(wall))
    base, base_cpu = min(wall[base_name]), min(cpu[base_name])
    print()
    print(f"loss forward + backward on ({BATCH}, {CLASSES}, {PATCH}, {PATCH}, {PATCH}) logits, best of "
          f"{args.rounds} interleaved rounds")
    print(f"{'':28s} {f'wall, {threads}':>24s}   {'CPU, 1 thread':>15s}")
    print(f"{'loss':28s} {'best ms':>8s} {'median':>8s} {'x CE':>6s}   {'best ms':>8s} {'x CE':>6s}")
    for name in wall:
        print(f"{name:28s} {1e3 * min(wall[name]):8.2f} {1e3 * statistics.median(wall[name]):8.2f} "
              f"{min(wall[name]) / base:6.2f}   {1e3 * min(cpu[name]):8.2f} {min(cpu[name]) / base_cpu:6.2f}")
    print()
    for name in ("ace", "ace-patch", "marginal"):
        ratio, cpu_ratio = min(wall[name]) / base, min(cpu[name]) / base_cpu
        verdict = "met" if max(ratio, cpu_ratio) <= TARGET_RATIO else "NOT met"
        print(f"{name:10s} {ratio:5.2f} x F.cross_entropy in wall time, {cpu_ratio:5.2f} x in CPU time "
              f"(target <= {TARGET_RATIO}): {verdict}")
    share = min(wall[args.loss]) / median if args.loss in wall else float("nan")
    print(f"loss share of a training step: {100 * share:.2f} %")
    print(f"peak RSS {peak_rss_mb():.0f} MB, load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
