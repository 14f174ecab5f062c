"""Training patches per second: from the preprocessed cache (memory-mapped) versus from the NIfTI files.

A dataset too large for RAM leaves two ways to draw balanced patches: read (decompress, normalise,
convert) the case's NIfTI files at every draw, or preprocess every case once into the cache
(``ACELib.data.cache``) and memory-map it. This script writes a synthetic dataset (default 8 cases,
2 modalities, 128^3, gzipped NIfTI) in a temporary folder and measures, side by side in one run and
each in its own subprocess (so that peak memory is its own):

    nifti         per draw: read the case's files, normalise, convert labels, find the class voxels
    cache         ace's cache, built beforehand (build time reported), memory-mapped, in-process sampler
    cache+workers the same with DataLoader worker processes (--workers)
    memory        everything loaded in RAM (today's default; needs RAM for the whole dataset)

Balanced batches of 7 patches of 32^3 (the paper's), timed in blocks (best and median block
reported: the machine may be shared). The page cache is warm for the cache runs (the files were
just written): on a cold start the first patches read from disk.

    python benchmarks/loading.py [--cases 8] [--modalities 2] [--shape 128 128 128] [--batches 30]

Augmentation throughput (``--part augmentation``; also part of the default ``--part all``): on tiny WMH
phantoms (``ace phantoms --quick``, 2 + 2 + 1 cases, preprocessed as the ``cpu`` training profile), the
patches/s of the balanced sampler without augmentation, with the default augmentation, with domain
randomisation 0.5 and with class gains 0.5, in one process with 1 torch thread (one DataLoader worker's share), against the
patches/s that a training step of the ``cpu`` profile consumes (its batch, patch and UNet3D, channels-last,
forward + ACE loss + backward + Adam, as the trainer runs it) with 1 and with 2 torch threads (on a loaded
machine 2 threads can be slower); the ratio is against the fastest. Target: augmented patches/s at
least 5x what a step consumes.

    python benchmarks/loading.py --part augmentation [--aug-batches 20] [--steps 5] [--step-threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import brain_like_volume, peak_rss_mb  # noqa: E402

from ACELib.data.contract import list_cases, read_dataset_info, write_case, write_dataset_info  # noqa: E402
from ACELib.data.loading import LoadedCase, load_datasets  # noqa: E402
from ACELib.data.preprocessing import Preprocessing  # noqa: E402
from ACELib.data.sampling import BalancedSampler, extract_patch  # noqa: E402
from ACELib.io.image import Geometry  # noqa: E402
from ACELib.labels import annotated_mask, candidate_table, load_task, to_joint  # noqa: E402

CONTRASTS = np.array([[0, 0.25, 0.55, 0.85, 0.45], [0, 0.1, 0.6, 0.5, 1.0]], np.float32)


def write_dataset(root: Path, cases: int, modalities: int, shape: tuple[int, int, int]) -> Path:
    """A one-dataset task (background, CSF, GM, WM, WMH) of synthetic brains; returns the task file."""
    names = [f"M{i}" for i in range(modalities)]
    labels = {"background": 0, "CSF": 1, "GM": 2, "WM": 3, "WMH": 4}
    write_dataset_info(root / "bench", names, labels, cases)
    geom = Geometry(tuple(reversed(shape)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    for i in range(cases):
        image = brain_like_volume(shape, channels=modalities, seed=i)
        # label: the nearest noise-free contrast of the first channel
        label = np.abs(image[0][None] - CONTRASTS[0][:, None, None, None]).argmin(0).astype(np.uint8)
        write_case(root / "bench", f"case_{i:03d}", image, geom, label)
    task = {"name": "bench", "datasets": [{"name": "bench", "path": "bench", "modalities": names,
                                           "labels": {"1": "CSF", "2": "GM", "3": "WM", "4": "WMH"}}],
            "labels": [{"name": n, "value": v, "color": "#808080"} for n, v in labels.items()]}
    path = root / "task.json"
    path.write_text(json.dumps(task))
    return path


class NiftiSampler:
    """Balanced draws that read the case from its NIfTI files at every draw (no cache, nothing in RAM)."""

    def __init__(self, task, prep: Preprocessing, patch: int, batch: int, seed: int = 0):
        self.task, self.ds, self.prep = task, task.train_datasets[0], prep
        folder = task.dataset_path(self.ds)
        self.cases = list_cases(folder, read_dataset_info(folder))
        self.patch, self.batch = (patch,) * 3, batch
        self.rng = np.random.default_rng(seed)
        # which classes each case holds: small metadata a no-cache loader may keep
        self.by_class: dict[int, list] = {}
        for case in self.cases:
            _, label, _ = case.read()
            joint, _ = to_joint(task, self.ds, label)
            for c in np.unique(joint):
                self.by_class.setdefault(int(c), []).append(case)
        self.annotated, self.candidates = annotated_mask(task, self.ds), candidate_table(task, self.ds)

    def sample(self) -> torch.Tensor:
        images = []
        classes = sorted(self.by_class)
        for _ in range(self.batch):
            c = classes[int(self.rng.integers(len(classes)))]
            case = self.by_class[c][int(self.rng.integers(len(self.by_class[c])))]
            image, label, geom = case.read()
            target = to_joint(self.task, self.ds, label)[0].astype(np.uint8)
            loaded = LoadedCase(case.name, self.ds.name, self.prep.normalize(image), target, geom)
            voxels = np.flatnonzero(target.reshape(-1) == c)
            centre = np.unravel_index(int(voxels[int(self.rng.integers(voxels.size))]), target.shape)
            images.append(extract_patch(loaded, centre, self.patch)[0])
        return torch.from_numpy(np.stack(images))


def rss_breakdown_mb() -> dict[str, float]:
    """Current anonymous and file-backed resident memory (Linux), in MB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) / 1024
    except OSError:
        pass
    return out


def measure(mode: str, task_path: str, cache_dir: str, batches: int, patch: int, batch: int, workers: int,
            blocks: int) -> dict:
    """Run one mode in this process; returns setup seconds, patches/s (best and median of ``blocks``
    blocks of ``batches`` batches), peak and current memory."""
    task = load_task(task_path)
    prep = Preprocessing()
    t = time.perf_counter()
    if mode == "nifti":
        sampler = NiftiSampler(task, prep, patch, batch)
        next_batch = sampler.sample
    else:
        datasets = load_datasets(task, prep, lambda ds: task.input_modalities,
                                 cache_dir=None if mode == "memory" else cache_dir)
        if mode == "cache+workers":
            from ACELib.training.distributed import DistContext, RankBatches

            stream = RankBatches(datasets, patch, batch, seed=0, ctx=DistContext(), workers=workers)
            next_batch = stream.next
        else:
            next_batch = BalancedSampler(datasets, patch, batch, seed=0).sample
    setup = time.perf_counter() - t
    next_batch()  # warm-up (starts the workers)
    seconds = []
    for _ in range(blocks):  # the best block: the machine may be shared
        t = time.perf_counter()
        for _ in range(batches):
            next_batch()
        seconds.append(time.perf_counter() - t)
    return {"mode": mode, "setup_s": setup, "patches_per_s": batches * batch / min(seconds),
            "median_patches_per_s": batches * batch / float(np.median(seconds)),
            "peak_rss_mb": peak_rss_mb(), **rss_breakdown_mb()}


def _in_subprocess(args, mode: str, task_path: Path, cache_dir: Path, batches: int, blocks: int) -> dict:
    cmd = [sys.executable, __file__, "--_measure", mode, "--_task", str(task_path), "--_cache", str(cache_dir),
           "--batches", str(batches), "--blocks", str(blocks), "--patch", str(args.patch), "--batch", str(args.batch),
           "--workers", str(args.workers), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def augmentation_throughput(root: Path, batches: int, blocks: int, steps: int, threads: Sequence[int]) -> None:
    """Print sampler patches/s (none / default / domain randomisation 0.5 / class gains 0.5) against a
    cpu-profile training step."""
    from ACELib.phantoms import make_scenario
    from ACELib.training.profiles import profile_config

    t = time.perf_counter()
    task = load_task(make_scenario("wmh", root / "phantoms", quick=True, counts=(2, 2, 1)))
    config = profile_config("cpu")
    datasets = load_datasets(task, config.preprocessing, lambda ds: task.input_modalities)
    shape = datasets[0].cases[0].image.shape
    print(f"\naugmentation: WMH phantoms (quick, 2 + 2 cases of {shape[1:]} at {config.preprocessing.spacing} mm) "
          f"made and loaded in {time.perf_counter() - t:.1f} s; cpu profile: batch {config.batch_size}, "
          f"patch {config.patch_size}^3, UNet3D {config.base_channels} channels depth {config.depth}, loss {config.loss}")
    torch.set_num_threads(1)
    rates = {}
    settings = [("no augmentation", None), ("default augmentation", config.augmentation),
                ("domain randomisation 0.5", replace(config.augmentation, domain_randomization=0.5)),
                ("class gains 0.5", replace(config.augmentation, p_class_gain=0.5))]
    for name, aug in settings:
        sampler = BalancedSampler(datasets, config.patch_size, config.batch_size, seed=0, augmentation=aug)
        sampler.sample()
        seconds = []
        for _ in range(blocks):
            t = time.perf_counter()
            for _ in range(batches):
                sampler.sample()
            seconds.append(time.perf_counter() - t)
        n = batches * config.batch_size
        rates[name] = (n / min(seconds), n / float(np.median(seconds)))
    batch = BalancedSampler(datasets, config.patch_size, config.batch_size, seed=1,
                            augmentation=config.augmentation).sample()
    consumed = 0.0
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        times = _step_times(config, task, batch, steps)
        rate = config.batch_size / float(np.median(times))
        consumed = max(consumed, rate)
        print(f"training step ({n_threads} threads): median {np.median(times):.3f} s, best {min(times):.3f} s over "
              f"{steps} steps -> consumes {rate:.1f} patches/s")
    print(f"{'sampler (1 torch thread)':<28}{'patches/s':>10}{'median':>9}{'x fastest step':>16}   target >= 5x")
    for name, (best, median) in rates.items():
        print(f"{name:<28}{best:>10.1f}{median:>9.1f}{median / consumed:>15.1f}x")


def _step_times(config, task, batch, steps: int) -> list[float]:
    """Seconds of ``steps`` training steps of the profile's network on ``batch`` (after one warm-up)."""
    from ACELib.losses import build_loss
    from ACELib.networks import UNet3D, UNetConfig

    torch.manual_seed(0)
    net = UNet3D(UNetConfig(len(task.input_modalities), task.num_classes, config.base_channels, config.depth))
    net = net.to(memory_format=torch.channels_last_3d).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = build_loss(config.loss)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = net(batch.image.contiguous(memory_format=torch.channels_last_3d))
        loss_fn(logits.float(), batch.target, batch.annotated, batch.candidates).backward()
        optimizer.step()

    step()  # warm-up (kernel selection)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--modalities", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=3, default=(128, 128, 128))
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--batch", type=int, default=7)
    p.add_argument("--batches", type=int, default=30, help="batches timed from the cache and from RAM")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks of --batches (best and median reported)")
    p.add_argument("--nifti-batches", type=int, default=2, help="batches timed from the NIfTI files (one block)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the sources part")
    p.add_argument("--step-threads", type=int, nargs="+", default=[1, 2],
                   help="torch threads of the training step, each measured (augmentation part; the fastest counts)")
    p.add_argument("--part", choices=["all", "sources", "augmentation"], default="all",
                   help="sources: NIfTI / cache / RAM; augmentation: sampler with augmentation vs a training step")
    p.add_argument("--aug-batches", type=int, default=20, help="batches per timed block of the augmentation part")
    p.add_argument("--aug-blocks", type=int, default=3, help="timed blocks of the augmentation part")
    p.add_argument("--steps", type=int, default=5, help="timed training steps of the augmentation part")
    p.add_argument("--_measure"), p.add_argument("--_task"), p.add_argument("--_cache")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args._measure:
        print(json.dumps(measure(args._measure, args._task, args._cache, args.batches, args.patch, args.batch,
                                 args.workers, args.blocks)))
        return
    root = Path(tempfile.mkdtemp(prefix="ace-loading-bench-"))
    try:
        if args.part != "augmentation":
            sources(args, root)
        if args.part != "sources":
            augmentation_throughput(root, args.aug_batches, args.aug_blocks, args.steps, args.step_threads)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def sources(args, root: Path) -> None:
    """Patches/s from the NIfTI files, the cache (with and without workers) and RAM."""
    t = time.perf_counter()
    task_path = write_dataset(root / "data", args.cases, args.modalities, tuple(args.shape))
    size = sum(f.stat().st_size for f in (root / "data").rglob("*.nii.gz")) / 2**20
    print(f"dataset: {args.cases} cases x {args.modalities} modalities at {tuple(args.shape)}, "
          f"{size:.0f} MB of .nii.gz, written in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    task = load_task(task_path)
    load_datasets(task, Preprocessing(), lambda ds: task.input_modalities, cache_dir=root / "cache")
    cache_mb = sum(f.stat().st_size for f in (root / "cache").rglob("*") if f.is_file()) / 2**20
    print(f"cache: built in {time.perf_counter() - t:.1f} s, {cache_mb:.0f} MB on disk")
    rows = [_in_subprocess(args, "nifti", task_path, root / "cache", args.nifti_batches, 1)]
    for mode in ("cache", "cache+workers", "memory"):
        rows.append(_in_subprocess(args, mode, task_path, root / "cache", args.batches, args.blocks))
    print(f"\nbalanced batches of {args.batch} patches of {args.patch}^3, torch threads {args.threads}, "
          f"workers {args.workers}")
    print(f"{'source':<15}{'setup s':>9}{'patches/s':>11}{'median':>9}{'peak RSS MB':>13}{'anon MB':>9}"
          f"{'file MB':>9}")
    for r in rows:
        print(f"{r['mode']:<15}{r['setup_s']:>9.2f}{r['patches_per_s']:>11.1f}{r['median_patches_per_s']:>9.1f}"
              f"{r['peak_rss_mb']:>13.0f}{r.get('RssAnon', float('nan')):>9.0f}{r.get('RssFile', float('nan')):>9.0f}")
    by = {r["mode"]: r for r in rows}
    print(f"\nbest patches/s, cache / nifti: {by['cache']['patches_per_s'] / by['nifti']['patches_per_s']:.0f}x; "
          f"cache / memory: {by['cache']['patches_per_s'] / by['memory']['patches_per_s']:.2f}x")


if __name__ == "__main__":
    main()
