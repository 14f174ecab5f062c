"""`ace train`: train a joint model (or a Multi-UNet) on a task."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import replace

from ACELib.cli.progress import ProgressBar
from ACELib.data.augment import AugmentationConfig
from ACELib.data.sampling import MODALITY_SUBSETS, SUBSET_RULES
from ACELib.device import DEVICE_CHOICES
from ACELib.labels import load_task
from ACELib.losses import LOSSES
from ACELib.training import TRAIN_PROFILES, TrainConfig, profile_config, train
from ACELib.training.control import PROGRESS_FILE, STOP_FILE, ProgressWriter, StopWatcher
from ACELib.training.distributed import distributed_session
from ACELib.training.schedule import SCHEDULES

NAME = "train"
HELP = "train one network on partially labelled datasets (ACE + marginal Dice loss by default)"
DESCRIPTION = (HELP + ". The run folder gets model.safetensors (best validation Dice), model_last.safetensors, "
               "log.csv, curves.png and a resumable checkpoint. SIGINT/SIGTERM, or a file named "
               f"{STOP_FILE} created in the run folder, stop after the current step and save a checkpoint (exit "
               f"code 3; the {STOP_FILE} file is removed); continue with --resume. Progress is also appended to "
               f"{PROGRESS_FILE} in the run folder, one JSON object per line. Runs unchanged under torchrun "
               "(e.g. torchrun --nproc-per-node 4 -m ACELib.cli.main train ...): DistributedDataParallel, "
               "one process per GPU (or gloo on the CPU), --batch-size patches per process.")


def add_arguments(p) -> None:
    d = TrainConfig()
    p.add_argument("--task", required=True, help="task file (JSON)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--profile", choices=sorted(TRAIN_PROFILES), default=None,
                   help="cpu: 3 mm voxels, small U-Net, <= 15 min on 2 CPU cores; paper: the paper's network and "
                        "patches at the data's resolution, for a GPU. Options given explicitly override the profile; "
                        "the resolved settings are written to config.json and the model file")
    p.add_argument("--loss", default=None, choices=sorted(LOSSES),
                   help="; ".join(f"{k}: {v}" for k, v in LOSSES.items()) + f" (default {d.loss})")
    p.add_argument("--iterations", type=int, help=f"steps per network (default {d.iterations}: about 3.5 h on 2 CPU "
                   "cores with the default network, minutes on a GPU; --profile cpu: 1000 steps, about 7 min on 2 idle cores)")
    p.add_argument("--batch-size", type=int, help=f"patches per batch (default {d.batch_size})")
    p.add_argument("--patch-size", type=int, help=f"patch edge in voxels (default {d.patch_size})")
    p.add_argument("--base-channels", type=int, help=f"U-Net width (default {d.base_channels})")
    p.add_argument("--depth", type=int, help=f"U-Net blocks per path (default {d.depth})")
    p.add_argument("--lr", type=float, help=f"peak Adam learning rate (default {d.learning_rate})")
    p.add_argument("--lr-schedule", choices=SCHEDULES, help=f"learning-rate schedule (default {d.lr_schedule})")
    p.add_argument("--warmup", type=int, help=f"steps of linear learning-rate warm-up (default {d.warmup_steps})")
    p.add_argument("--no-augment", action="store_true", help="no patch augmentation (default: nnU-Net-like "
                   "spatial and intensity augmentation, see docs/training.md)")
    p.add_argument("--domain-randomization", type=float, metavar="P",
                   help="chance that a sample's image is synthesised with random contrasts from the case's generator "
                        "label map (datasets written by ace phantoms; default 0)")
    p.add_argument("--contrast-curve", type=float, metavar="P",
                   help="chance that a patch channel's intensities are remapped through a random increasing curve, "
                        "which changes tissue contrasts as another scanner would (any data; default "
                        f"{d.augmentation.p_curve:g})")
    p.add_argument("--class-gain", type=float, metavar="P",
                   help="chance that a patch channel's brightness is multiplied per tissue class by a random factor, "
                        "on the image itself, so contrasts change and may swap order (needs the generator label maps "
                        f"of ace phantoms; default {d.augmentation.p_class_gain:g})")
    p.add_argument("--val-fraction", type=float, help=f"cases held out per dataset for validation (default {d.validation_fraction})")
    p.add_argument("--val-interval", type=int, help=f"steps between validations (default {d.validation_interval})")
    p.add_argument("--checkpoint-interval", type=int, help=f"steps between checkpoints (default {d.checkpoint_interval})")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"), help="resample to this spacing (mm)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help=f"one of {list(DEVICE_CHOICES)} or cuda:N (default auto)")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--cache", metavar="DIR", help="keep preprocessed cases in DIR, memory-mapped (for data larger "
                   "than RAM; built once, reused while the sources and settings are unchanged)")
    p.add_argument("--workers", type=int, help=f"processes drawing patches (default {d.num_workers}: in the training process)")
    p.add_argument("--multi-unet", action="store_true", help="train one network per dataset with CE (baseline)")
    p.add_argument("--hetero-modal", action="store_true",
                   help="one network over the union of the datasets' modalities, each sample with its own "
                        "(per-modality stems fused by mean and variance; docs/hetero_modal.md)")
    p.add_argument("--modality-dropout", type=float, metavar="P",
                   help="with --hetero-modal: chance that a patch loses some of its dataset's modalities "
                        f"(default {d.modality_dropout})")
    p.add_argument("--modality-subsets", choices=MODALITY_SUBSETS,
                   help="with --hetero-modal: " + "; ".join(f"{k}: {v}" for k, v in SUBSET_RULES.items())
                        + f" (default {d.modality_subsets})")
    p.add_argument("--pass-distillation", type=float, metavar="W",
                   help="with --hetero-modal: weight of pass distillation, which teaches the model to give in one "
                        "pass what the label-source passes give together (a lesion patch is also run with the "
                        "anatomy dataset's modalities alone, as the teacher); the model is then segmented in one pass "
                        f"(docs/hetero_modal.md; default {d.pass_distillation:g}: off)")
    p.add_argument("--any-contrast", action="store_true",
                   help="one network with one input of any contrast, trained on every image of every dataset "
                        "(each patch shows one of its case's modalities, with the case's labels); add "
                        "--domain-randomization so that contrasts no dataset has are learned too "
                        "(docs/any_contrast.md)")
    p.add_argument("--contrast-distillation", type=float, metavar="W",
                   help="with --any-contrast: weight of contrast distillation, which teaches the tissue the lesion "
                        "datasets do not annotate in their other images from the same patch's T1 (the modality every "
                        f"dataset has), as the teacher (docs/any_contrast.md; default {d.contrast_distillation:g}: off)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")


_OPTIONS = {  # argparse destination -> TrainConfig field
    "loss": "loss", "iterations": "iterations", "batch_size": "batch_size", "patch_size": "patch_size",
    "base_channels": "base_channels", "depth": "depth", "lr": "learning_rate", "lr_schedule": "lr_schedule",
    "warmup": "warmup_steps", "val_fraction": "validation_fraction", "val_interval": "validation_interval",
    "checkpoint_interval": "checkpoint_interval", "seed": "seed", "device": "device", "threads": "num_threads",
    "cache": "cache_dir", "workers": "num_workers", "modality_dropout": "modality_dropout",
    "modality_subsets": "modality_subsets", "pass_distillation": "pass_distillation",
    "contrast_distillation": "contrast_distillation",
}


def config_from_args(args) -> TrainConfig:
    """The profile's settings (or the defaults), overridden by every option given explicitly."""
    overrides = {field: getattr(args, dest) for dest, field in _OPTIONS.items() if getattr(args, dest) is not None}
    if args.no_amp:
        overrides["amp"] = False
    if args.multi_unet:
        overrides["multi_unet"] = True
    if args.hetero_modal:
        overrides["hetero_modal"] = True
    if args.any_contrast:
        overrides["any_contrast"] = True
    base = profile_config(args.profile)
    if args.spacing:
        overrides["preprocessing"] = replace(base.preprocessing, spacing=tuple(args.spacing))
    aug = base.augmentation
    if args.no_augment:
        aug = AugmentationConfig.off()
    if args.domain_randomization is not None:
        aug = replace(aug, domain_randomization=args.domain_randomization)
    if args.contrast_curve is not None:
        aug = replace(aug, p_curve=args.contrast_curve)
    if args.class_gain is not None:
        aug = replace(aug, p_class_gain=args.class_gain)
    if aug != base.augmentation:
        overrides["augmentation"] = aug
    return profile_config(args.profile, **overrides)


def _both(*callbacks):
    def progress(step: int, total: int, message: str = "") -> None:
        for callback in callbacks:
            callback(step, total, message)
    return progress


def run(args) -> int:
    task = load_task(args.task)
    config = config_from_args(args)
    signalled = threading.Event()

    def request_stop(signum, frame):
        signalled.set()

    stop = StopWatcher(args.out, signalled.is_set)  # the stop file, or SIGINT/SIGTERM from a terminal
    old = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    writer = None
    try:
        with distributed_session(config.device) as ctx:
            if not ctx.is_main:  # rank 0 reports for everyone
                logging.getLogger("ACELib").setLevel(logging.WARNING)
            else:
                writer = ProgressWriter(args.out)
                writer.event("start", total=config.iterations, resume=bool(args.resume))
            progress = _both(ProgressBar("train", unit="step"), writer) if ctx.is_main else None
            result = train(task, args.out, config, resume=args.resume, should_stop=stop, progress=progress)
    except Exception as exc:
        if writer is not None:
            writer.event("end", status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stop.clear()  # the request is answered (or moot): a later run must not stop at once
    steps = max(result.steps.values(), default=0)
    if not ctx.is_main:
        return 3 if result.status == "stopped" else 0
    if result.status == "stopped":
        writer.event("end", status="stopped", step=steps, reason=stop.reason)
        print(f"stopped; checkpoint kept in {result.run_dir} (continue with --resume)")
        return 3
    writer.event("end", status="finished", step=steps, model=str(result.model_path))
    best = ", ".join(f"{k}: {v:.3f}" for k, v in result.best_val_dice.items() if v >= 0)
    print(f"model: {result.model_path}" + (f" (best validation Dice {best})" if best else ""))
    return 0
