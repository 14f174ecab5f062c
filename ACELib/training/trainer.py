"""Train a joint model (or a Multi-UNet) from a task's partially labelled datasets.

Run folder layout::

    config.json, task.json          settings and the task, as trained
    model.safetensors               the model file: best validation Dice (last step without validation)
    model_last.safetensors          the model file at the last step
    model_best_member.safetensors   best-so-far model while a run is under way (read on resume)
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
from ACELib.data.check import check_task, data_error
from ACELib.data.loading import LoadedDataset, load_datasets, split_validation
from ACELib.device import autocast_dtype, resolve_device
from ACELib.inference.model_file import read_model_file, save_model
from ACELib.io.atomic import atomic_write_text
from ACELib.labels import Task
from ACELib.losses import build_loss
from ACELib.networks import HeteroUNet3D, UNet3D
from ACELib.progress import Progress
from ACELib.training.checkpoint import load_checkpoint, save_checkpoint
from ACELib.training.config import TrainConfig
from ACELib.training.curves import VAL_PREFIX, TrainingLog, plot_curves
from ACELib.training.distill import (
    PassViews,
    contrast_distillation_loss,
    distillation_loss,
    pass_views,
    with_views,
)
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
from ACELib.training.hetero import label_sources
from ACELib.training.lock import RunLock
from ACELib.training.members import (
    MemberPlan,
    build_net,
    dataset_modalities,
    local_tables,
    model_metadata,
    plan_members,
    sampler_options,
)
from ACELib.training.run_folder import TEXT_LOG, check_run_dir, prepare_run_dir, text_log
from ACELib.training.schedule import learning_rate
from ACELib.training.validation import validate

log = logging.getLogger(__name__)
BEST_MEMBER_FILE = "model_best_member.safetensors"
"""A member's best-so-far model, written at each new best validation score so that a resumed run
can still return the best weights (its checkpoint holds the latest ones). Same format as the model file."""


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    last_model_path: Path
    status: str  # "finished" or "stopped"
    steps: dict[str, int]
    best_val_dice: dict[str, float]


def train(task: Task, run_dir: str | os.PathLike, config: TrainConfig, *, resume: bool = False,
          progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train and write the run folder (see module docstring).

    The data is checked in two steps before anything is written: the headers (:func:`check_task`
    with ``values=False``: files, dimensions, geometry, channels), then the voxels while the cases are
    loaded, each file decoded once (:func:`ACELib.data.loading.load_datasets`; every member's data is
    loaded before its training starts).

    Args:
        resume: continue the run in ``run_dir`` from its checkpoints.
        progress: ``progress(step, total, message)`` after every step.
        should_stop: polled every step; when True, a checkpoint is written and the run returns
            with status ``"stopped"`` (resume it later).

    Raises:
        ValueError: the task or its data fail these checks (every problem listed; a voxel problem names
            its file), or a resumed run's settings conflict with the saved ones.
        FileExistsError: ``run_dir`` holds a run and ``resume`` is False.
    """
    run_dir = Path(run_dir)
    ctx = current_context()
    if config.hetero_modal and ctx.distributed:  # a stem without its modality in a batch has no gradient
        raise ValueError("hetero_modal training runs in one process for now (DDP would need "
                         "find_unused_parameters for the per-modality stems); start it without torchrun")
    plans = plan_members(task, config)
    run_on_main(ctx, check_run_dir, task, run_dir, config, resume)  # nothing is written before these checks
    own = config.multi_unet or config.hetero_modal or config.any_contrast  # every dataset with its own modalities
    problems = run_on_main(ctx, check_task, task, modalities=() if own else None, include_test=False, values=False)
    if problems:
        raise data_error(problems)
    data = [_load_member_data(task, plan, config, ctx) for plan in plans]
    lock = RunLock(run_dir) if ctx.is_main else contextlib.nullcontext()
    run_on_main(ctx, lock.__enter__)
    try:
        run_on_main(ctx, check_run_dir, task, run_dir, config, resume)  # again, now that the folder is ours
        run_on_main(ctx, prepare_run_dir, task, run_dir, config, resume)
        with text_log(run_dir / TEXT_LOG if ctx.is_main else None):
            return _train_members(task, plans, data, run_dir, config, resume, progress, should_stop, ctx)
    finally:
        lock.__exit__(None, None, None)


def _load_member_data(task: Task, plan: MemberPlan, config: TrainConfig, ctx: DistContext) -> list[LoadedDataset]:
    """The datasets one member trains and validates on: the one pass that decodes (and checks) the voxels."""
    if config.cache_dir and ctx.distributed:  # the processes of each machine share the cache build
        build_cache(task, config.preprocessing, dataset_modalities(plan, config), config.cache_dir, plan.datasets,
                    shard=(ctx.local_rank, ctx.local_world_size))
        barrier(ctx)
    aug = config.augmentation
    return load_datasets(task, config.preprocessing, dataset_modalities(plan, config), plan.datasets,
                         seed=config.seed, cache_dir=config.cache_dir,
                         synth=aug.uses_label_maps)


def _train_members(task: Task, plans: list[MemberPlan], data: list[list[LoadedDataset]], run_dir: Path,
                   config: TrainConfig, resume: bool, progress: Progress | None,
                   should_stop: Callable[[], bool] | None, ctx: DistContext) -> TrainResult:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = rank_device(resolve_device(config.device), ctx)
    if ctx.distributed and device.type == "cuda":
        torch.cuda.set_device(device)  # collectives of picklable objects use the current device
    nets, steps, best, status = [], {}, {}, "finished"
    for plan, datasets in zip(plans, data):
        member_dir = run_dir if len(plans) == 1 else run_dir / "members" / plan.name
        if ctx.is_main:
            member_dir.mkdir(parents=True, exist_ok=True)
        net, step, score, stopped = _train_member(task, plan, datasets, config, member_dir, device, resume,
                                                  progress if ctx.is_main else None, should_stop, ctx)
        nets.append(net)
        steps[plan.name], best[plan.name] = step, score
        if stopped:
            status = "stopped"
            break
    meta = model_metadata(task, plans, config)
    last_path = run_dir / "model_last.safetensors"
    model_path = run_dir / "model.safetensors"
    if status == "finished" and ctx.is_main:
        save_model(last_path, meta, [n[1] for n in nets])
        save_model(model_path, meta, [n[0] for n in nets])
        log.info("finished: model written to %s", model_path)
    barrier(ctx)
    return TrainResult(run_dir, model_path, last_path, status, steps, best)


@dataclass
class _MemberRun:
    """Everything one network's training loop works with."""

    plan: MemberPlan
    net: UNet3D
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batches: RankBatches
    loss_fn: torch.nn.Module
    lut: torch.Tensor | None
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    val_sets: list[LoadedDataset]
    columns: dict[str, str]  # validate()'s "<dataset>/<class index>" -> log column
    distill: tuple = ()  # pass distillation: (label sources, {label name: class index}); () when off
    one_channel: bool = False  # any_contrast: one of a case's images at a time
    step: int = 0
    best_score: float = -1.0
    best_step: int = 0
    best_state: dict | None = None


def _setup_member(task: Task, plan: MemberPlan, datasets: list[LoadedDataset], config: TrainConfig,
                  device: torch.device, ctx: DistContext) -> _MemberRun:
    """Network, optimiser, sampler and loss of one member, on its loaded ``datasets`` (no resume yet)."""
    train_sets, val_sets = split_validation(datasets, config.validation_fraction, config.seed)
    log.info("%s: %d training and %d validation cases", plan.name, sum(len(d.cases) for d in train_sets),
             sum(len(d.cases) for d in val_sets))
    torch.manual_seed(config.seed)
    # channels-last: oneDNN runs 3D convolutions (and above all their backward) several times faster
    net = build_net(plan, config).to(device, memory_format=torch.channels_last_3d)
    amp_dtype = autocast_dtype(device) if config.amp else None
    columns = {f"{ds.spec.name}/{c}": f"{VAL_PREFIX}{ds.spec.name}/{task.labels[c].name}"
               for ds in val_sets if ds.cases for c in np.flatnonzero(ds.annotated) if c != 0}
    distill = ((label_sources(task, plan.modalities), {task.labels[c].name: k for k, c in enumerate(plan.classes)})
               if config.pass_distillation else ())
    return _MemberRun(
        plan=plan, net=net, model=wrap_model(net, ctx, device),
        optimizer=torch.optim.Adam(net.parameters(), lr=config.learning_rate),
        batches=RankBatches(train_sets, config.patch_size, config.batch_size, config.seed, ctx,
                            workers=config.num_workers, pin_memory=device.type == "cuda",
                            augmentation=config.augmentation, **sampler_options(plan, config)),
        loss_fn=build_loss(plan.loss).to(device), lut=local_tables(plan, task.num_classes),
        amp_dtype=amp_dtype, scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
        val_sets=val_sets, columns=columns, distill=distill, one_channel=config.any_contrast)


def _resume_member(run: _MemberRun, ckpt: Path, member_dir: Path, ctx: DistContext) -> None:
    """Load the member's checkpoint (rank 0 reads it) into ``run``."""
    st = run_on_main(ctx, lambda: load_checkpoint(ckpt) if ckpt.exists() else None)
    if st is None:
        return
    if ctx.is_main and st.torch_rng_state is not None:  # only rank 0 saved (and used to restore) it
        torch.set_rng_state(st.torch_rng_state)
    run.net.load_state_dict(st.model_state)
    run.optimizer.load_state_dict(st.optimizer_state)
    run.batches.restore(st.sampler_state, st.step)
    run.step, run.best_score, run.best_step = st.step, st.best_score, st.best_step
    if run.best_step and ctx.is_main:
        run.best_state = _load_best(member_dir)
    log.info("%s: resumed at step %d", run.plan.name, run.step)


def _train_step(run: _MemberRun, config: TrainConfig, device: torch.device, ctx: DistContext) -> float:
    """One optimisation step at ``run.step``'s learning rate; returns the loss (same on every rank)."""
    lr = learning_rate(run.step, config.iterations, config.learning_rate, config.lr_schedule, config.warmup_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = run.batches.next().to(device)
    target, annotated, candidates = batch.target, batch.annotated, batch.candidates
    if run.lut is not None:  # a Multi-UNet member predicts its own classes only
        k = len(run.plan.classes)
        target = run.lut.to(device)[target]
        annotated = torch.ones(target.shape[0], k, dtype=torch.bool, device=device)
        candidates = torch.eye(k, dtype=torch.bool, device=device).expand(target.shape[0], k, k)
    image, present, views = batch.image, batch.present, None
    if run.distill and present is not None:  # pass distillation: each patch's further passes join the batch
        views = pass_views(present, run.plan.modalities, run.distill[0])
        image, present = with_views(image, present, views)
    if batch.view is not None:  # contrast distillation: the teacher images join the batch
        image = torch.cat([image, batch.view])
    run.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        image = image.contiguous(memory_format=torch.channels_last_3d)
        logits = run.model(image) if present is None else run.model(image, present)
    b = target.shape[0]  # the views (after the batch) are teachers only: the loss scores the batch
    loss = run.loss_fn(logits[:b].float(), target, annotated, candidates)
    if views is not None:
        loss = loss + config.pass_distillation * _distillation(run, logits, views)
    if batch.view is not None:
        idx = batch.view_sample
        loss = loss + config.contrast_distillation * contrast_distillation_loss(logits[idx], logits[b:], annotated[idx])
    loss_value = mean_over_ranks(loss.detach(), ctx)  # every rank sees the same value
    if not torch.isfinite(loss_value):
        raise FloatingPointError(
            f"{run.plan.name}: the loss diverged (became {loss_value.item()} at step {run.step + 1}, learning rate "
            f"{lr:.3g}); lower --lr (e.g. to {config.learning_rate / 10:g}) or add --warmup steps")
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    run.step += 1
    return float(loss_value.item())


def _distillation(run: _MemberRun, logits: torch.Tensor, views: PassViews) -> torch.Tensor:
    """The pass-distillation term of a batch whose ``(B + V, K, ...)`` logits end with its ``V`` views."""
    b = logits.shape[0] - len(views)
    sources, class_index = run.distill
    return distillation_loss(logits[:b], logits[b:], views, sources, class_index.get)


def _validate_and_select(run: _MemberRun, device: torch.device, ctx: DistContext) -> tuple[float, dict]:
    """Validate (rank 0), keep the best state; returns ``(score, {log column: Dice})``."""
    val, per_class = float("nan"), {}
    if ctx.is_main:  # rank 0 validates; the others wait here
        layout = run.plan.modalities if isinstance(run.net, HeteroUNet3D) else None
        val, per_class = validate(run.net, run.val_sets, run.plan.classes, device, amp_dtype=run.amp_dtype,
                                  layout=layout, one_channel=run.one_channel)
        log.info("%s step %d validation score %.4f %s", run.plan.name, run.step, val,
                 {run.columns.get(k, k)[len(VAL_PREFIX):]: round(v, 3) for k, v in per_class.items()})
    val = broadcast_object(val, ctx)
    if not np.isnan(val) and val > run.best_score:
        run.best_score, run.best_step = val, run.step
        if ctx.is_main:
            run.best_state = {k: v.detach().clone() for k, v in run.net.state_dict().items()}
    return val, {run.columns[k]: v for k, v in per_class.items() if k in run.columns}


def _train_member(task: Task, plan: MemberPlan, datasets: list[LoadedDataset], config: TrainConfig,
                  member_dir: Path, device: torch.device, resume: bool, progress: Progress | None,
                  should_stop: Callable[[], bool] | None, ctx: DistContext | None = None):
    """Train one network on its loaded ``datasets``; returns ``((best_net, last_net), step, best_score, stopped)``."""
    ctx = ctx or DistContext()
    run = _setup_member(task, plan, datasets, config, device, ctx)
    ckpt = member_dir / "checkpoint.safetensors"
    if resume:
        _resume_member(run, ckpt, member_dir, ctx)
    train_log = (TrainingLog(member_dir / "log.csv", resume_step=run.step if resume else None,
                             extra=tuple(run.columns.values())) if ctx.is_main else None)
    has_val = any(d.cases for d in run.val_sets)
    t0, rate, stopped = time.perf_counter(), None, False
    run.model.train()
    while run.step < config.iterations:
        if any_rank(should_stop is not None and should_stop(), ctx, device):
            stopped = True
            break
        tic = time.perf_counter()
        loss_item = _train_step(run, config, device, ctx)
        lr = run.optimizer.param_groups[0]["lr"]
        inst = config.batch_size * ctx.world_size / max(time.perf_counter() - tic, 1e-9)
        rate = inst if rate is None else 0.9 * rate + 0.1 * inst
        val, per_class = float("nan"), {}
        if has_val and (run.step % config.validation_interval == 0 or run.step == config.iterations):
            val, per_class = _validate_and_select(run, device, ctx)
            if ctx.is_main and run.best_step == run.step:
                _save_member_model(member_dir / BEST_MEMBER_FILE, task, plan, config, run.net)
        if train_log is not None:
            train_log.append(step=run.step, loss=loss_item, patches_per_s=rate, val_dice=val,
                             elapsed_s=time.perf_counter() - t0, lr=lr, **per_class)
        msg = f"{plan.name} loss {loss_item:.4f} | {rate:.1f} patches/s" + (f" | val Dice {val:.3f}" if val == val else "")
        if progress is not None:
            progress(run.step, config.iterations, msg)
        if run.step % 10 == 0 or run.step == config.iterations or val == val:
            log.debug("step %d/%d %s", run.step, config.iterations, msg)
        if run.step % config.checkpoint_interval == 0 or run.step == config.iterations:
            _checkpoint(ckpt, run, ctx, device, config)
    if stopped:
        _checkpoint(ckpt, run, ctx, device, config)
        log.info("%s: stopped at step %d; resume with --resume", plan.name, run.step)
    run.batches.close()
    if ctx.is_main:
        plot_curves(member_dir / "log.csv", member_dir / "curves.png", title=f"{task.name} - {plan.name} ({plan.loss})")
    last = _clone(run.net)
    best_net = last if run.best_state is None else _clone(run.net, run.best_state)
    return (best_net.cpu().eval(), last.cpu().eval()), run.step, run.best_score, stopped


def _checkpoint(path: Path, run: _MemberRun, ctx: DistContext, device: torch.device, config: TrainConfig) -> None:
    """Save the resumable state (every rank calls this; rank 0 writes, the others wait)."""
    sampler_state = run.batches.state()
    sync_buffers(run.net, ctx)
    digests = gather_objects(state_digest(run.net), ctx) if ctx.distributed else []
    if len(set(digests)) > 1:
        log.warning("step %d: the ranks' weights differ (%s)", run.step, digests)
    if ctx.is_main:
        save_checkpoint(path, run.net, run.optimizer, run.step, run.best_score, run.best_step, sampler_state)
        if ctx.distributed:
            info = record(ctx, device, config.num_workers, run.step, digests)
            atomic_write_text(path.parent / "distributed.json", json.dumps(info, indent=2) + "\n")
    barrier(ctx)


def _clone(net: torch.nn.Module, state: dict | None = None) -> torch.nn.Module:
    out = type(net)(net.config)
    out.load_state_dict(state if state is not None else net.state_dict())
    return out


def _save_member_model(path: Path, task: Task, plan: MemberPlan, config: TrainConfig, net: torch.nn.Module) -> None:
    save_model(path, model_metadata(task, [plan], config), [net])


def _load_best(member_dir: Path) -> dict | None:
    """The best-so-far weights of an interrupted member (its :data:`BEST_MEMBER_FILE`), or None."""
    path = member_dir / BEST_MEMBER_FILE
    if not path.exists():
        return None
    _, nets = read_model_file(path)
    return nets[0].state_dict()


__all__ = ["LoadedDataset", "TrainResult", "train"]
