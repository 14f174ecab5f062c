"""Whole-volume inference: ACELib against MONAI's sliding_window_inference, side by side in one run.

The paper's network (2 channels -> 5 classes, 32 base channels, 4 blocks per path) on a two-channel
144x176x144 volume, on this machine's CPU. MONAI runs the paper's patch (32^3, overlap 0.5, Gaussian);
ACELib its defaults (batch norm folded, channels-last, planned large windows). Each method runs in its
own subprocess so its peak memory is its own. Prints both times, their ratio, the agreement of the two
label maps, and the compute bound (FLOPs per voxel x voxels / measured matmul throughput).

    python benchmarks/inference.py [--model MODEL.safetensors] [--shape 144 176 144] [--threads 2]

Without --model the network has random He-initialised weights and random batch-norm statistics.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import brain_like_volume, matmul_gflops, peak_rss_mb  # noqa: E402

from ACELib.inference import create_model, load_model  # noqa: E402
from ACELib.labels import JointLabel  # noqa: E402

LABELS = tuple(JointLabel(n, i, (i * 40, 100, 200 - i * 40)) for i, n in enumerate(["background", "CSF", "GM", "WM", "WMH"]))


def make_model(path: Path, seed: int = 0) -> None:
    model = create_model(LABELS, ("T1", "FLAIR"), base_channels=32, depth=4, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for m in model.networks[0].modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(1.0 + 0.5 * torch.rand(m.num_features, generator=g))
    model.save(path)


def run_one(method: str, model_path: str, image_path: str, out_path: str, threads: int) -> None:
    torch.set_num_threads(threads)
    model = load_model(model_path, device="cpu")
    image = np.load(image_path)
    if method == "acelib":
        t = time.perf_counter()
        labels = model.predict(image).labels
        seconds = time.perf_counter() - t
    else:
        from monai.inferers import sliding_window_inference

        net = model.networks[0].eval()
        values = np.array([lab.value for lab in model.labels])
        t = time.perf_counter()
        x = torch.from_numpy(model.metadata.preprocessing.normalize(image))[None]
        with torch.inference_mode():
            logits = sliding_window_inference(x, (32, 32, 32), 1, net, overlap=0.5, mode="gaussian")
        labels = values[logits[0].argmax(0).numpy()]
        seconds = time.perf_counter() - t
    np.save(out_path, labels.astype(np.uint8))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def flops_per_voxel(model_path: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    net = load_model(model_path, device="cpu").networks[0].eval()
    x = torch.zeros(1, 2, 32, 32, 32)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return counter.get_total_flops() / x[0, 0].numel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a single joint model with 2 input channels (default: random weights)")
    ap.add_argument("--shape", type=int, nargs=3, default=[144, 176, 144])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-monai", action="store_true", help="ACELib only (e.g. a 256^3 memory check)")
    ap.add_argument("--run", choices=["acelib", "monai"], help=argparse.SUPPRESS)
    ap.add_argument("--io", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run_one(args.run, *args.io, args.threads)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ace-bench-"))
    model_path = args.model or str(tmp / "model.safetensors")
    if not args.model:
        make_model(Path(model_path))
    image_path = tmp / "image.npy"
    np.save(image_path, brain_like_volume(tuple(args.shape)))
    results = {}
    for method in ("acelib",) if args.skip_monai else ("acelib", "monai"):
        out = tmp / f"{method}.npy"
        proc = subprocess.run([sys.executable, __file__, "--run", method, "--threads", str(args.threads),
                               "--io", model_path, str(image_path), str(out)],
                              capture_output=True, text=True, check=True)
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[method]["labels"] = np.load(out)
    torch.set_num_threads(args.threads)
    gflops = matmul_gflops()
    fpv = flops_per_voxel(model_path)
    voxels = int(np.prod(args.shape))
    bound = fpv * voxels / (gflops * 1e9)
    a = results["acelib"]
    print(f"volume {tuple(args.shape)} x 2 channels, {args.threads} threads, weights: "
          f"{'from ' + args.model if args.model else 'random (He init)'}")
    print(f"ACELib predict                     {a['seconds']:8.1f} s   peak RSS {a['peak_rss_mb']:7.0f} MB")
    print(f"compute bound {bound:.1f} s ({fpv / 1e3:.0f} kFLOP/voxel at {gflops:.0f} GFLOP/s measured); "
          f"ACELib at {a['seconds'] / bound:.2f} x the bound (target <= 2)")
    if "monai" not in results:
        return
    m = results["monai"]
    agree = float((a["labels"] == m["labels"]).mean())
    print(f"MONAI sliding_window_inference 32^3 {m['seconds']:7.1f} s   peak RSS {m['peak_rss_mb']:7.0f} MB")
    print(f"speed-up over MONAI                {m['seconds'] / a['seconds']:8.2f} x   (target >= 3)")
    print(f"label agreement                    {100 * agree:8.2f} %   (target >= 99.5)")


if __name__ == "__main__":
    main()
