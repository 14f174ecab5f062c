"""Train a joint model (or a Multi-UNet) from a task's partially labelled datasets.

Run folder layout::

    config.json, task.json          settings and the task, as trained
    model.safetensors               the model file: best validation Dice (last step without validation)
    model_last.safetensors          the model file at the last step
    log.csv, curves.png             training log and its plot (per member for a Multi-UNet)
    checkpoint.safetensors          resumable state (per member: members/<name>/...)
    distributed.json                a distributed run: world size, batch-norm policy, per-rank weight hashes

Under ``torchrun`` (see :mod:`ACELib.training.distributed`) every rank trains, rank 0 alone validates
and writes the run folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ACELib.data.cache import build_cache
from ACELib.data.check import check_task
from ACELib.data.loading import LoadedDataset, load_datasets, split_validation
from ACELib.inference.device import autocast_dtype, resolve_device
from ACELib.inference.model_file import MemberSpec, ModelMetadata, save_model
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import DatasetSpec, Task
from ACELib.losses import build_loss
from ACELib.networks import UNet3D, UNetConfig
from ACELib.training.checkpoint import load_checkpoint, save_checkpoint
from ACELib.training.config import TrainConfig
from ACELib.training.curves import TrainingLog, plot_curves
from ACELib.training.distributed import (
    DistContext,
    RankBatches,
    any_rank,
    barrier,
    broadcast_object,
    current_context,
    gather_objects,
    mean_over_ranks,
    rank_device,
    record,
    run_on_main,
    state_digest,
    sync_buffers,
    wrap_model,
)
from ACELib.training.lock import RunLock
from ACELib.training.validation import validate

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class MemberPlan:
    """What one network learns: from which datasets, with which inputs, outputs and loss."""

    name: str
    datasets: tuple[DatasetSpec, ...]
    modalities: tuple[str, ...]
    classes: tuple[int, ...]
    loss: str


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    last_model_path: Path
    status: str  # "finished" or "stopped"
    steps: dict[str, int]
    best_val_dice: dict[str, float]


def plan_members(task: Task, config: TrainConfig) -> list[MemberPlan]:
    """One joint network, or (``multi_unet``) one network per training dataset trained with CE."""
    if not config.multi_unet:
        return [MemberPlan("joint", task.train_datasets, task.input_modalities,
                           tuple(range(task.num_classes)), config.loss)]
    plans = []
    for ds in task.train_datasets:
        classes = (0, *sorted(task.label_index(n) for n in ds.labels.values()))
        plans.append(MemberPlan(ds.name, (ds,), ds.modalities, classes, "ce"))
    return plans


def train(task: Task, run_dir: str | os.PathLike, config: TrainConfig, *, resume: bool = False,
          progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train and write the run folder (see module docstring).

    Args:
        resume: continue the run in ``run_dir`` from its checkpoints.
        progress: ``progress(step, total, message)`` after every step.
        should_stop: polled every step; when True, a checkpoint is written and the run returns
            with status ``"stopped"`` (resume it later).

    Raises:
        ValueError: the task or its data fail :func:`ACELib.data.check.check_task`, or a resumed run's
            settings conflict with the saved ones.
        FileExistsError: ``run_dir`` holds a run and ``resume`` is False.
    """
    run_dir = Path(run_dir)
    ctx = current_context()
    plans = plan_members(task, config)
    run_on_main(ctx, _check_run_dir, task, run_dir, config, resume)  # nothing is written before these checks
    problems = run_on_main(ctx, check_task, task, modalities=() if config.multi_unet else None, include_test=False)
    if problems:
        raise ValueError(f"the task's data has {len(problems)} problems:\n  - " + "\n  - ".join(problems))
    lock = RunLock(run_dir) if ctx.is_main else contextlib.nullcontext()
    run_on_main(ctx, lock.__enter__)
    try:
        run_on_main(ctx, _check_run_dir, task, run_dir, config, resume)  # again, now that the folder is ours
        run_on_main(ctx, _prepare_run_dir, task, run_dir, config, resume)
        return _train_members(task, plans, run_dir, config, resume, progress, should_stop, ctx)
    finally:
        lock.__exit__(None, None, None)


def _train_members(task: Task, plans: list[MemberPlan], run_dir: Path, config: TrainConfig, resume: bool,
                   progress: Progress | None, should_stop: Callable[[], bool] | None, ctx: DistContext) -> TrainResult:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = rank_device(resolve_device(config.device), ctx)
    if ctx.distributed and device.type == "cuda":
        torch.cuda.set_device(device)  # collectives of picklable objects use the current device
    nets, steps, best, status = [], {}, {}, "finished"
    for plan in plans:
        member_dir = run_dir if len(plans) == 1 else run_dir / "members" / plan.name
        if ctx.is_main:
            member_dir.mkdir(parents=True, exist_ok=True)
        net, step, score, stopped = _train_member(task, plan, config, member_dir, device, resume,
                                                  progress if ctx.is_main else None, should_stop, ctx)
        nets.append(net)
        steps[plan.name], best[plan.name] = step, score
        if stopped:
            status = "stopped"
            break
    meta = _metadata(task, plans, config)
    last_path = run_dir / "model_last.safetensors"
    model_path = run_dir / "model.safetensors"
    if status == "finished" and ctx.is_main:
        save_model(last_path, meta, [n[1] for n in nets])
        save_model(model_path, meta, [n[0] for n in nets])
        log.info("finished: model written to %s", model_path)
    barrier(ctx)
    return TrainResult(run_dir, model_path, last_path, status, steps, best)


def _check_run_dir(task: Task, run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Refuse a start or resume that conflicts with the run folder (reads only).

    Raises:
        FileExistsError: the folder holds a run with progress and ``resume`` is False.
        ValueError: ``resume`` without a run, or with other settings or another task than the run's.
    """
    cfg_path = run_dir / "config.json"
    if resume and not cfg_path.exists():
        raise ValueError(f"--resume: {str(run_dir)!r} holds no training run to resume (no config.json); "
                         "drop --resume to start one there")
    if not cfg_path.exists():
        return
    if not resume:
        if _has_progress(run_dir):
            raise FileExistsError(f"{str(run_dir)!r} already holds a training run; pass resume=True (--resume) "
                                  "to continue it or choose another folder")
        return  # a start that failed before its first checkpoint: it is started afresh
    saved = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
    conflicts = config.resume_conflicts(saved)
    if conflicts:
        raise ValueError(f"cannot resume {str(run_dir)!r} with other settings: " + "; ".join(conflicts))
    task_path = run_dir / "task.json"
    if task_path.exists():
        changes = task_changes(json.loads(task_path.read_text()), _run_task_dict(task))
        if changes:
            raise ValueError(f"cannot resume {str(run_dir)!r} with another task: " + "; ".join(changes)
                             + "; the run's task is in task.json; train the new task in a new folder")


def _has_progress(run_dir: Path) -> bool:
    """Whether a run folder holds anything worth keeping: a checkpoint or a model."""
    return any(run_dir.rglob("checkpoint.safetensors")) or any(run_dir.glob("model*.safetensors"))


def _run_task_dict(task: Task) -> dict:
    task_dict = task.to_dict()
    for e, ds in zip(task_dict["datasets"], task.datasets):
        e["path"] = str(task.dataset_path(ds).resolve())
    return task_dict


def task_changes(saved: dict, new: dict) -> list[str]:
    """What differs between two task dicts, ignoring dataset paths (data may move) and descriptions."""
    def strip(d: dict) -> dict:
        d = {k: v for k, v in d.items() if k != "description"}
        d["datasets"] = [{k: v for k, v in e.items() if k != "path"} for e in d.get("datasets", [])]
        return d

    a, b = strip(saved), strip(new)
    return [f"{key}: run has {a.get(key)!r}, asked {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]


def _prepare_run_dir(task: Task, run_dir: Path, config: TrainConfig, resume: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    atomic_write_text(run_dir / "task.json", json.dumps(_run_task_dict(task), indent=2) + "\n")


def _metadata(task: Task, plans: list[MemberPlan], config: TrainConfig) -> ModelMetadata:
    members = tuple(MemberSpec(p.name, p.modalities, p.classes, _net_config(p, config).to_dict()) for p in plans)
    local = ("device", "num_threads", "preprocessing", "cache_dir", "num_workers")
    training = {k: v for k, v in config.to_dict().items() if k not in local}
    return ModelMetadata(labels=task.labels, members=members, preprocessing=config.preprocessing,
                         patch_size=(config.patch_size,) * 3, task_name=task.name, training=training)


def _net_config(plan: MemberPlan, config: TrainConfig) -> UNetConfig:
    return UNetConfig(in_channels=len(plan.modalities), num_classes=len(plan.classes),
                      base_channels=config.base_channels, depth=config.depth)


def _local_tables(plan: MemberPlan, num_joint: int):
    """Joint -> member class lookup, or None when the member predicts every joint label."""
    if plan.classes == tuple(range(num_joint)):
        return None
    lut = torch.zeros(num_joint, dtype=torch.int64)
    for i, c in enumerate(plan.classes):
        lut[c] = i
    return lut


def _train_member(task: Task, plan: MemberPlan, config: TrainConfig, member_dir: Path, device: torch.device,
                  resume: bool, progress: Progress | None, should_stop: Callable[[], bool] | None,
                  ctx: DistContext | None = None):
    """Train one network; returns ``((best_net, last_net), step, best_score, stopped)``."""
    ctx = ctx or DistContext()
    if config.cache_dir and ctx.distributed:  # the processes of each machine share the cache build
        build_cache(task, config.preprocessing, lambda ds: plan.modalities, config.cache_dir, plan.datasets,
                    shard=(ctx.local_rank, ctx.local_world_size))
        barrier(ctx)
    datasets = load_datasets(task, config.preprocessing, lambda ds: plan.modalities, plan.datasets,
                             seed=config.seed, cache_dir=config.cache_dir)
    train_sets, val_sets = split_validation(datasets, config.validation_fraction, config.seed)
    torch.manual_seed(config.seed)
    # channels-last: oneDNN runs 3D convolutions (and above all their backward) several times faster
    net = UNet3D(_net_config(plan, config)).to(device, memory_format=torch.channels_last_3d)
    model = wrap_model(net, ctx, device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    batches = RankBatches(train_sets, config.patch_size, config.batch_size, config.seed, ctx,
                          workers=config.num_workers, pin_memory=device.type == "cuda")
    loss_fn = build_loss(plan.loss).to(device)
    lut = _local_tables(plan, task.num_classes)
    k = len(plan.classes)
    amp_dtype = autocast_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    ckpt = member_dir / "checkpoint.safetensors"
    step, best_score, best_step = 0, -1.0, 0
    st = run_on_main(ctx, lambda: load_checkpoint(ckpt) if resume and ckpt.exists() else None)
    if st is not None:
        net.load_state_dict(st.model_state)
        optimizer.load_state_dict(st.optimizer_state)
        batches.restore(st.sampler_state, st.step)
        step, best_score, best_step = st.step, st.best_score, st.best_step
        log.info("%s: resumed at step %d", plan.name, step)
    best_state = _load_best(member_dir, net) if best_step and ctx.is_main else None
    train_log = TrainingLog(member_dir / "log.csv", resume_step=step if resume else None) if ctx.is_main else None
    has_val = any(d.cases for d in val_sets)
    t0, rate, stopped = time.perf_counter(), None, False
    model.train()
    while step < config.iterations:
        if any_rank(should_stop is not None and should_stop(), ctx, device):
            stopped = True
            break
        tic = time.perf_counter()
        batch = batches.next().to(device)
        target, annotated, candidates = batch.target, batch.annotated, batch.candidates
        if lut is not None:
            lut_d = lut.to(device)
            target = lut_d[target]
            annotated = torch.ones(target.shape[0], k, dtype=torch.bool, device=device)
            candidates = torch.eye(k, dtype=torch.bool, device=device).expand(target.shape[0], k, k)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(batch.image.contiguous(memory_format=torch.channels_last_3d))
        loss = loss_fn(logits.float(), target, annotated, candidates)
        loss_value = mean_over_ranks(loss.detach(), ctx)  # every rank sees the same value
        if not torch.isfinite(loss_value):
            raise FloatingPointError(
                f"{plan.name}: the loss diverged (became {loss_value.item()} at step {step + 1}) with learning "
                f"rate {config.learning_rate:g}; lower --lr (e.g. to {config.learning_rate / 10:g})")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        step += 1
        dt = time.perf_counter() - tic
        inst = config.batch_size * ctx.world_size / max(dt, 1e-9)
        rate = inst if rate is None else 0.9 * rate + 0.1 * inst
        val = float("nan")
        if has_val and (step % config.validation_interval == 0 or step == config.iterations):
            if ctx.is_main:  # rank 0 validates; the others wait here
                val, per_class = validate(net, val_sets, plan.classes, device, amp_dtype=amp_dtype)
                log.info("%s step %d validation Dice %.4f %s", plan.name, step, val,
                         {k_: round(v, 3) for k_, v in per_class.items()})
            val = broadcast_object(val, ctx)
            if not np.isnan(val) and val > best_score:
                best_score, best_step = val, step
                if ctx.is_main:
                    best_state = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
                    _save_member_model(member_dir / "model_best_member.safetensors", task, plan, config, net)
        loss_item = float(loss_value.item())
        if train_log is not None:
            train_log.append(step=step, loss=loss_item, patches_per_s=rate, val_dice=val,
                             elapsed_s=time.perf_counter() - t0)
        msg = f"{plan.name} loss {loss_item:.4f} | {rate:.1f} patches/s" + (f" | val Dice {val:.3f}" if val == val else "")
        if progress is not None:
            progress(step, config.iterations, msg)
        if step % 10 == 0 or step == config.iterations or val == val:
            log.debug("step %d/%d %s", step, config.iterations, msg)
        if step % config.checkpoint_interval == 0 or step == config.iterations:
            _checkpoint(ckpt, net, optimizer, step, best_score, best_step, batches, ctx, device, config)
    if stopped:
        _checkpoint(ckpt, net, optimizer, step, best_score, best_step, batches, ctx, device, config)
        log.info("%s: stopped at step %d; resume with --resume", plan.name, step)
    batches.close()
    if ctx.is_main:
        plot_curves(member_dir / "log.csv", member_dir / "curves.png", title=f"{task.name} - {plan.name} ({plan.loss})")
    last = _clone(net)
    best_net = last if best_state is None else _clone(net, best_state)
    return (best_net.cpu().eval(), last.cpu().eval()), step, best_score, stopped


def _checkpoint(path: Path, net: UNet3D, optimizer, step: int, best_score: float, best_step: int,
                batches: RankBatches, ctx: DistContext, device: torch.device, config: TrainConfig) -> None:
    """Save the resumable state (every rank calls this; rank 0 writes, the others wait)."""
    sampler_state = batches.state()
    sync_buffers(net, ctx)
    digests = gather_objects(state_digest(net), ctx) if ctx.distributed else []
    if len(set(digests)) > 1:
        log.warning("step %d: the ranks' weights differ (%s)", step, digests)
    if ctx.is_main:
        save_checkpoint(path, net, optimizer, step, best_score, best_step, sampler_state)
        if ctx.distributed:
            info = record(ctx, device, config.num_workers, step, digests)
            atomic_write_text(path.parent / "distributed.json", json.dumps(info, indent=2) + "\n")
    barrier(ctx)


def _clone(net: UNet3D, state: dict | None = None) -> UNet3D:
    out = UNet3D(net.config)
    out.load_state_dict(state if state is not None else net.state_dict())
    return out


def _save_member_model(path: Path, task: Task, plan: MemberPlan, config: TrainConfig, net: torch.nn.Module) -> None:
    save_model(path, _metadata(task, [plan], config), [net])


def _load_best(member_dir: Path, net: UNet3D) -> dict | None:
    from ACELib.inference.model_file import read_model_file

    path = member_dir / "model_best_member.safetensors"
    if not path.exists():
        return None
    _, nets = read_model_file(path)
    return nets[0].state_dict()


__all__ = ["LoadedDataset", "MemberPlan", "TrainResult", "plan_members", "train"]
