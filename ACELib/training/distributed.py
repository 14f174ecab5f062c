"""Training on several processes with ``torch.distributed``, as launched by ``torchrun``.

``ace train`` under ``torchrun --nproc-per-node N`` (one or several machines) trains the same model
with DistributedDataParallel; without ``torchrun`` nothing here changes a single-process run.

Policy (see ``docs/distributed.md``):

- The process group comes from torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
  ``MASTER_ADDR``/``MASTER_PORT``): NCCL when training on CUDA (one GPU per process, ``cuda:LOCAL_RANK``),
  gloo on the CPU.
- Every rank draws its own balanced patches: its sampler is seeded by
  :func:`ACELib.data.sampling.stream_seed` from (seed, rank); ``--batch-size`` is per rank.
- Batch norm: on CUDA the layers become ``SyncBatchNorm`` (statistics over the global batch). On the
  CPU (gloo; ``SyncBatchNorm`` needs CUDA) each rank normalises with its own batch's statistics;
  DDP broadcasts rank 0's running statistics at every forward, and they are broadcast again at every
  checkpoint and at the end, so all ranks hold identical weights and buffers.
- Only rank 0 writes the run folder (checkpoints, logs, plots, model files) and validates; other
  ranks wait at barriers or at the next collective. A stop request on any rank stops every rank
  at the same step.
- The checkpoint keeps every rank's sampler state (gathered to rank 0), so a resumed run continues
  each rank's stream; with another world size or worker count, fresh streams are seeded from
  (seed, rank, step) instead.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ACELib.data.sampling import DEFAULT_SUBSET_RULE, BalancedSampler, Batch, SamplerStream, stream_seed
from ACELib.device import resolve_device

log = logging.getLogger(__name__)

TIMEOUT_S = 3600  # collectives wait this long (rank 0 validates while the others wait)
_REBUILT = (ValueError, TypeError, FileExistsError, FileNotFoundError, FloatingPointError)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str = ""
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_context(environ: Mapping[str, str] | None = None) -> DistContext:
    """The rank layout torchrun put in the environment (single process when ``WORLD_SIZE`` is unset).

    Raises:
        ValueError: the variables are not integers or are inconsistent.
    """
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise ValueError("WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers, got "
                         f"{[env.get(k) for k in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE')]}") from None
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world:
        raise ValueError(f"inconsistent torchrun environment: WORLD_SIZE={world}, RANK={rank}, "
                         f"LOCAL_RANK={local}, LOCAL_WORLD_SIZE={local_world}")
    return DistContext(rank, local, world, "", local_world)


def current_context() -> DistContext:
    """This process's context: from the initialised process group, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    world, rank, backend = dist.get_world_size(), dist.get_rank(), str(dist.get_backend())
    try:
        env = env_context()
    except ValueError:
        env = None
    if env is not None and (env.world_size, env.rank) == (world, rank):
        return DistContext(rank, env.local_rank, world, backend, env.local_world_size)
    return DistContext(rank, rank, world, backend, world)  # a group set up without torchrun: one machine


@contextlib.contextmanager
def distributed_session(device: str = "auto", timeout_s: float = TIMEOUT_S) -> Iterator[DistContext]:
    """Initialise the process group when launched by torchrun with ``WORLD_SIZE`` > 1; tear it down after.

    Args:
        device: the training device setting; CUDA selects NCCL (and ``cuda:LOCAL_RANK``), else gloo.

    Raises:
        ValueError: distributed training asked on Apple MPS (neither backend supports it).
    """
    env = env_context()
    if env.world_size == 1 or (dist.is_available() and dist.is_initialized()):
        yield current_context()
        return
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed; run without torchrun")
    kind = resolve_device(device).type
    if kind == "mps":
        raise ValueError("distributed training runs on CUDA (NCCL) or on the CPU (gloo), not on Apple MPS; "
                         "pass --device cpu")
    backend = "nccl" if kind == "cuda" else "gloo"
    if kind == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise ValueError(f"process {env.local_rank} of this machine needs a GPU of its own, but only "
                             f"{torch.cuda.device_count()} are visible: use --nproc-per-node <= "
                             f"{torch.cuda.device_count()}")
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    try:
        ctx = current_context()
        log.info("rank %d of %d (local rank %d), backend %s", ctx.rank, ctx.world_size, ctx.local_rank, backend)
        yield ctx
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device, ctx: DistContext) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` on CUDA, else ``device`` itself."""
    if ctx.distributed and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap_model(net: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """The module to train: ``net`` itself, or (distributed) DDP around it, with its batch norm layers
    turned into ``SyncBatchNorm`` in place on CUDA. Parameters stay those of ``net``."""
    if not ctx.distributed:
        return net
    if device.type == "cuda":
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        if converted is not net:
            raise TypeError("wrap_model: the network's root module must not be a batch norm layer")
    with torch.no_grad():  # 1x1x1 kernels: channels-last strides are ambiguous and their gradients come
        for p in net.parameters():  # back with plain strides; match them so DDP's buckets do not warn
            if p.dim() == 5 and p.shape[2:] == (1, 1, 1):
                p.data = p.data.clone(memory_format=torch.contiguous_format)
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)  # rank 0's buffers at every forward


def batch_norm_policy(ctx: DistContext, device: torch.device) -> str:
    """How batch norm statistics are handled in this run (recorded in ``distributed.json``)."""
    if not ctx.distributed:
        return "single process"
    if device.type == "cuda":
        return "SyncBatchNorm: statistics over the global batch"
    return "per rank: batch statistics of each rank's batch; running statistics of rank 0, broadcast"


# ------------------------------------------------------------------ collectives (no-ops for one process)
def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_object(obj, ctx: DistContext, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank (picklable objects)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on at least one."""
    if not ctx.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of a (detached) tensor over ranks; ``value`` itself for one process."""
    if not ctx.distributed:
        return value
    t = value.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / ctx.world_size


def sync_buffers(net: torch.nn.Module, ctx: DistContext) -> None:
    """Give every rank rank 0's buffers (batch norm running statistics)."""
    if ctx.distributed:
        for b in net.buffers():
            dist.broadcast(b, src=0)


def state_digest(net: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a module's parameters and buffers, or of a state dict (names, dtypes, shapes, bytes)."""
    state = net.state_dict() if isinstance(net, torch.nn.Module) else net
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def run_on_main(ctx: DistContext, fn: Callable, *args, **kwargs):
    """Run ``fn`` on rank 0 only and return its result on every rank; an exception raised there is
    raised on every rank (same type for the usual user errors, else RuntimeError)."""
    if not ctx.distributed:
        return fn(*args, **kwargs)
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            error = exc
    kind, message, result = broadcast_object(
        (type(error).__name__ if error else None, str(error) if error else "", result), ctx)
    if error is not None:
        raise error
    if kind is not None:
        cls = next((c for c in _REBUILT if c.__name__ == kind), RuntimeError)
        raise cls(message if cls is not RuntimeError else f"rank 0 failed: {kind}: {message}")
    return result


# ------------------------------------------------------------------ this rank's training batches
class RankBatches:
    """The training batches of one rank: an in-process sampler, or ``workers`` DataLoader processes.

    A single process without workers keeps today's stream (sampler seeded with ``seed``) and its
    checkpoint state (the generator state). Otherwise streams are seeded by
    :func:`ACELib.data.sampling.stream_seed` and the state is ``{"world_size", "workers", "ranks"}``,
    ``ranks`` holding every rank's generator state (None with workers: their streams are positioned
    by the step).
    """

    def __init__(self, datasets, patch_size: int, batch_size: int, seed: int, ctx: DistContext,
                 workers: int = 0, pin_memory: bool = False, augmentation=None, layout=None,
                 modality_dropout: float = 0.0, modality_subsets: str = DEFAULT_SUBSET_RULE,
                 one_channel: bool = False, contrast_views: bool = False):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.datasets, self.patch_size, self.batch_size, self.seed = datasets, patch_size, batch_size, seed
        self.ctx, self.workers, self.pin_memory = ctx, workers, pin_memory
        self.augmentation = augmentation
        self.sampler_options = {"layout": layout, "modality_dropout": modality_dropout,  # hetero-modal training
                                "modality_subsets": modality_subsets, "one_channel": one_channel,
                                "contrast_views": contrast_views}
        self.legacy = not ctx.distributed and workers == 0
        self.sampler: BalancedSampler | None = None
        self._iter = None
        self.origin: int | None = None  # step where the streams were restarted (None: at the run's start)
        self._open(0)

    def _open(self, step: int) -> None:
        self.close()
        if self.workers == 0:
            plain = self.legacy and self.origin is None
            tag = 0 if self.origin is None else self.origin + 1
            seed = self.seed if plain else stream_seed(self.seed, self.ctx.rank, 0, tag)
            self.sampler = BalancedSampler(self.datasets, self.patch_size, self.batch_size, seed=seed,
                                           augmentation=self.augmentation, **self.sampler_options)
            return
        stream = SamplerStream(self.datasets, self.patch_size, self.batch_size, self.seed, self.ctx.rank,
                               start_step=step, origin=self.origin, augmentation=self.augmentation,
                               **self.sampler_options)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=self.workers,
                                             pin_memory=self.pin_memory, prefetch_factor=2)
        self._iter = iter(loader)

    def next(self) -> Batch:
        return self.sampler.sample() if self._iter is None else next(self._iter)

    def state(self) -> dict:
        """The checkpoint's sampler state (a collective: call it on every rank)."""
        if self.legacy:
            return self.sampler.get_state()
        own = self.sampler.get_state() if self.sampler is not None else None
        return {"world_size": self.ctx.world_size, "workers": self.workers, "origin": self.origin,
                "ranks": gather_objects(own, self.ctx)}

    def restore(self, state: dict, step: int) -> None:
        """Continue the streams saved in ``state`` at ``step``; fresh streams when the layout changed."""
        if self.legacy and "ranks" not in state:
            self.sampler.set_state(state)
            return
        same = state.get("world_size") == self.ctx.world_size and state.get("workers") == self.workers
        if not same:
            saved = (f"{state.get('world_size', 1)} processes x {state.get('workers', 0)} workers"
                     if "ranks" in state else "1 process x 0 workers")
            log.warning("resuming a run sampled by %s with %d x %d: patch streams restart, seeded by "
                        "(seed, rank, step %d)", saved, self.ctx.world_size, self.workers, step)
            self.origin = step
            self._open(step)
        elif self.workers == 0:
            self.origin = state.get("origin")
            self.sampler.set_state(state["ranks"][self.ctx.rank])
        else:
            self.origin = state.get("origin")
            self._open(step)

    def close(self) -> None:
        """Stop the worker processes, if any."""
        self._iter = None
        self.sampler = None


def record(ctx: DistContext, device: torch.device, workers: int, step: int, digests: list[str]) -> dict:
    """What ``distributed.json`` in the run folder says about a distributed run."""
    return {"world_size": ctx.world_size, "backend": ctx.backend, "device": device.type, "workers": workers,
            "batch_norm": batch_norm_policy(ctx, device), "step": step, "weights_sha256": digests,
            "identical_weights": len(set(digests)) == 1}


__all__ = ["DistContext", "RankBatches", "any_rank", "barrier", "batch_norm_policy", "broadcast_object",
           "current_context", "distributed_session", "env_context", "gather_objects",
           "mean_over_ranks", "rank_device", "record", "run_on_main", "state_digest", "sync_buffers",
           "wrap_model"]
