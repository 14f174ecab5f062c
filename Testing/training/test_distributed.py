"""Distributed training: `ace train` under torchrun (2 CPU processes, gloo), stop and resume of a
distributed run, and the collective helpers.

Two torchrun launches of 2 CPU processes (about 10-20 s each on 2 cores, mostly importing torch):
`ace train` itself, and this file as a script, whose ranks call the library directly.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from factory import make_tiny_task

from ACELib.data.loading import load_datasets
from ACELib.data.preprocessing import Preprocessing
from ACELib.io.safetensors import load_safetensors
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train
from ACELib.training.checkpoint import load_checkpoint
from ACELib.training.distributed import (
    DistContext,
    RankBatches,
    any_rank,
    barrier,
    broadcast_object,
    distributed_session,
    env_context,
    gather_objects,
    mean_over_ranks,
    run_on_main,
    state_digest,
    sync_buffers,
    wrap_model,
)

ITERATIONS = 40
TRAIN = ["--iterations", str(ITERATIONS), "--batch-size", "3", "--patch-size", "8", "--base-channels", "4",
         "--depth", "2", "--lr", "0.01", "--val-fraction", "0", "--checkpoint-interval", "20", "--device", "cpu",
         "--threads", "1", "--no-augment", "--lr-schedule", "constant"]
LAUNCH_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def task_path(tmp_path_factory):
    return make_tiny_task(tmp_path_factory.mktemp("ddp"), n_anatomy=2, n_lesion=2, n_test=0, shape=(12, 12, 12))


@pytest.fixture(scope="module")
def cli_run(task_path):
    """`ace train` under torchrun: 2 CPU processes (gloo), with a case cache."""
    out = task_path.parent / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ACELib.cli.main", "train", "--task", str(task_path), "--out", str(out), *TRAIN,
           "--cache", str(task_path.parent / "cache")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out, proc.stdout


def test_torchrun_ranks_end_identical_and_loss_goes_down(cli_run, task_path):
    run, stdout = cli_run
    info = json.loads((run / "distributed.json").read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo" and info["step"] == ITERATIONS
    assert "per rank" in info["batch_norm"]
    a, b = info["weights_sha256"]
    ckpt = load_checkpoint(run / "checkpoint.safetensors")
    assert a == b == state_digest(ckpt.model_state)  # every rank holds what rank 0 saved
    ranks = ckpt.sampler_state["ranks"]  # each rank drew its own patches
    assert ckpt.sampler_state["world_size"] == 2 and len(ranks) == 2 and ranks[0] != ranks[1]
    rows = _log(run)
    assert [int(r["step"]) for r in rows] == list(range(1, ITERATIONS + 1))  # one writer
    loss = np.array([float(r["loss"]) for r in rows])
    assert loss[-10:].mean() < 0.8 * loss[:10].mean()
    for name in ("model.safetensors", "model_last.safetensors", "curves.png", "config.json"):
        assert (run / name).is_file(), name
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert stdout.count("model: ") == 1  # rank 0 reports
    assert len(list((task_path.parent / "cache").rglob("meta.json"))) == 4


def _log(run):
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ library calls on 2 ranks
# A second torchrun launch runs this file as a script (see the end of the file): each rank calls the
# library directly, through three training runs and the collective helpers, and the tests check
# what the ranks wrote. (Forking ranks from a process that has already computed can hang them in
# inherited OpenMP state, so the ranks are fresh processes.)
SMALL = TrainConfig(loss="ace", iterations=6, batch_size=2, patch_size=8, base_channels=2, depth=2,
                    validation_fraction=0.0, checkpoint_interval=2, device="cpu", num_threads=1)
TRAIN_RUNS = (("full", None), ("part", 3), ("part", None))  # (run folder, stop rank 1 after this many steps)


def _train_run(ctx, task_file, out, stop_after, result_file):
    calls = {"n": 0}

    def stop():  # only rank 1 is asked to stop
        calls["n"] += 1
        return ctx.rank == 1 and stop_after is not None and calls["n"] > stop_after

    res = train(load_task(task_file), out, SMALL, resume=Path(out, "config.json").exists(), should_stop=stop)
    Path(f"{result_file}.{ctx.rank}").write_text(json.dumps({"status": res.status, "steps": res.steps}))


def _helpers(ctx, out_dir, small_task_file):
    """Each collective helper, on this rank; results to ``helpers.<rank>.json``."""
    rank = ctx.rank
    task = load_task(small_task_file)
    datasets = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities)
    res = {"ctx": [ctx.rank, ctx.world_size, ctx.backend, ctx.local_rank, ctx.local_world_size]}
    res["any"] = [any_rank(rank == 1, ctx, torch.device("cpu")), any_rank(False, ctx, torch.device("cpu"))]
    res["mean"] = float(mean_over_ranks(torch.tensor(2.0 * rank + 1), ctx))
    res["gather"] = gather_objects(f"r{rank}", ctx)
    res["bcast"] = broadcast_object({"from": rank}, ctx)
    res["main_value"] = run_on_main(ctx, lambda: rank * 10 + 7)

    def bad():
        raise FileExistsError("the run folder holds a run")

    try:
        run_on_main(ctx, bad)
    except FileExistsError as exc:
        res["main_error"] = str(exc)
    # batch norm buffers: rank 0's everywhere
    bn = torch.nn.BatchNorm3d(2)
    bn.running_mean.fill_(float(rank + 1))
    sync_buffers(bn, ctx)
    res["buffers"] = bn.running_mean.tolist()
    # DDP: different batches per rank, identical weights after a step
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 3, 3, padding=1), torch.nn.BatchNorm3d(3))
    model = wrap_model(net, ctx, torch.device("cpu"))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    batches = RankBatches(datasets, 4, 2, seed=5, ctx=ctx)
    batch = batches.next()
    res["batch_sum"] = float(batch.image.sum())
    model(batch.image).square().mean().backward()
    opt.step()
    sync_buffers(net, ctx)
    res["digests"] = gather_objects(state_digest(net), ctx)
    # per-rank sampler states in the checkpoint, and a resume continuing each rank's stream
    state = batches.state()
    expected = batches.next()
    again = RankBatches(datasets, 4, 2, seed=5, ctx=ctx)
    again.restore(state, 1)
    res["state_ranks"] = len(state["ranks"])
    res["resume_exact"] = bool(torch.equal(again.next().image, expected.image))
    (Path(out_dir) / f"helpers.{rank}.json").write_text(json.dumps(res))


def _rank_main(out: Path, task_file: Path, small_task_file: Path) -> None:
    """One rank's work under torchrun: three training runs, then the helper checks."""
    with distributed_session("cpu") as ctx:
        for name, stop_after in TRAIN_RUNS:
            _train_run(ctx, task_file, out / name, stop_after, out / f"result-{name}-{stop_after}")
            if ctx.is_main and stop_after is not None:  # keep the half-way checkpoint
                shutil.copy(out / name / "checkpoint.safetensors", out / "half.safetensors")
            barrier(ctx)
        _helpers(ctx, out, small_task_file)


@pytest.fixture(scope="module")
def ranks(task_path):
    out = task_path.parent / "ranks"
    out.mkdir()
    small = make_tiny_task(task_path.parent / "small", n_anatomy=1, n_lesion=1, n_test=0, shape=(9, 10, 11))
    testing = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (testing, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           __file__, str(out), str(task_path), str(small)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out


def _results(out, tag):
    return [json.loads((out / f"result-{tag}.{r}").read_text()) for r in (0, 1)]


def test_stop_on_one_rank_then_resume_is_bit_identical(ranks):
    assert all(r == {"status": "finished", "steps": {"joint": 6}} for r in _results(ranks, "full-None"))
    # rank 1 alone was asked to stop: both ranks stopped after the same step
    assert all(r == {"status": "stopped", "steps": {"joint": 3}} for r in _results(ranks, "part-3"))
    half = load_checkpoint(ranks / "half.safetensors")
    assert half.step == 3 and len(half.sampler_state["ranks"]) == 2
    assert all(r == {"status": "finished", "steps": {"joint": 6}} for r in _results(ranks, "part-None"))
    a, _ = load_safetensors(ranks / "full/model_last.safetensors")
    b, _ = load_safetensors(ranks / "part/model_last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [int(r["step"]) for r in _log(ranks / "part")] == list(range(1, 7))


def test_collective_helpers_on_two_processes(ranks):
    r0, r1 = (json.loads((ranks / f"helpers.{r}.json").read_text()) for r in (0, 1))
    assert r0["ctx"] == [0, 2, "gloo", 0, 2] and r1["ctx"] == [1, 2, "gloo", 1, 2]
    for r in (r0, r1):
        assert r["any"] == [True, False] and r["mean"] == 2.0 and r["gather"] == ["r0", "r1"]
        assert r["bcast"] == {"from": 0} and r["main_value"] == 7
        assert r["main_error"] == "the run folder holds a run"
        assert r["buffers"] == [1.0, 1.0] and r["state_ranks"] == 2 and r["resume_exact"]
    assert r0["batch_sum"] != r1["batch_sum"]  # each rank its own patches
    assert r0["digests"][0] == r0["digests"][1] == r1["digests"][0]


# ------------------------------------------------------------------ single process
@pytest.mark.parametrize("env, expected", [
    ({}, DistContext(0, 0, 1)),
    ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}, DistContext(3, 1, 4, "", 2)),
    ({"WORLD_SIZE": "2", "RANK": "1"}, DistContext(1, 1, 2, "", 2)),
])
def test_env_context(env, expected):
    assert env_context(env) == expected


@pytest.mark.parametrize("env, match", [
    ({"WORLD_SIZE": "two"}, "must be integers"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "inconsistent torchrun environment: WORLD_SIZE=2, RANK=2"),
    ({"WORLD_SIZE": "0"}, "inconsistent torchrun environment: WORLD_SIZE=0"),
    ({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"}, "LOCAL_RANK=2, LOCAL_WORLD_SIZE=2"),
])
def test_env_context_bad(env, match):
    with pytest.raises(ValueError, match=match):
        env_context(env)


def test_single_process_keeps_the_plain_sampler_and_its_state(tmp_path, caplog):
    task = load_task(make_tiny_task(tmp_path / "data", n_anatomy=1, n_lesion=1, n_test=0, shape=(9, 10, 11)))
    datasets = load_datasets(task, Preprocessing(), lambda ds: task.input_modalities)
    ctx = DistContext()
    assert wrap_model(torch.nn.Conv3d(1, 1, 1), ctx, torch.device("cpu")).__class__ is torch.nn.Conv3d
    plain = RankBatches(datasets, 4, 2, seed=3, ctx=ctx)
    state = plain.state()
    assert "bit_generator" in state  # the checkpoint format of single-process runs is unchanged
    # a checkpoint of an in-process sampler resumed with workers: fresh streams, and a warning
    with_workers = RankBatches(datasets, 4, 2, seed=3, ctx=ctx, workers=1)
    with caplog.at_level("WARNING"):
        with_workers.restore(state, 5)
    assert "patch streams restart" in caplog.text
    assert with_workers.next().image.shape == (2, 2, 4, 4, 4)
    assert with_workers.state() == {"world_size": 1, "workers": 1, "origin": 5, "ranks": [None]}
    with_workers.close()
    with pytest.raises(ValueError, match="workers must be >= 0, got -1"):
        RankBatches(datasets, 4, 2, seed=3, ctx=ctx, workers=-1)


if __name__ == "__main__":  # each rank of the `ranks` fixture's torchrun launch
    _rank_main(*(Path(a) for a in sys.argv[1:4]))
    # Every result is written by now. Leave without the interpreter's C++ teardown, where gloo's
    # threads now and then abort the process ("terminate called without an active exception",
    # exit -6) after all the work is done, which failed the launch.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
