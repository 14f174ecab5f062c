"""A run stopped (or killed) and resumed ends with the same weights as a run that never stopped."""

import pytest
import torch
from factory import make_tiny_task

from ACELib.data.augment import AugmentationConfig
from ACELib.inference import read_model_file
from ACELib.io import atomic
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train
from ACELib.training.checkpoint import load_checkpoint, save_checkpoint

# every spatial and most intensity transforms on, and a schedule: a resume must replay them exactly
CFG = TrainConfig(loss="ace", iterations=6, batch_size=2, patch_size=8, base_channels=2, depth=2,
                  validation_interval=2, checkpoint_interval=2, device="cpu", lr_schedule="poly", warmup_steps=2,
                  augmentation=AugmentationConfig(p_rotation=1.0, p_scale=1.0, p_elastic=1.0, p_noise=1.0,
                                                  p_bias=1.0, p_gamma=1.0))


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_tiny_task(tmp_path_factory.mktemp("r"), n_anatomy=2, n_lesion=2, n_test=0,
                                    shape=(12, 12, 12)))


def _weights(path):
    _, nets = read_model_file(path)
    return nets[0].state_dict()


def test_stop_and_resume_is_bit_identical(task, tmp_path):
    full = train(task, tmp_path / "full", CFG)
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] > 3

    part = train(task, tmp_path / "part", CFG, should_stop=stop_after_three)
    assert part.status == "stopped" and part.steps == {"joint": 3}
    assert load_checkpoint(tmp_path / "part/checkpoint.safetensors").step == 3
    assert not (tmp_path / "part/model.safetensors").exists()
    resumed = train(task, tmp_path / "part", CFG, resume=True)
    assert resumed.status == "finished" and resumed.steps == {"joint": 6}
    a, b = _weights(full.last_model_path), _weights(resumed.last_model_path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "part/log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2", "3", "4", "5", "6"]


def test_crash_while_checkpointing_keeps_the_previous_checkpoint(task, tmp_path, monkeypatch):
    real_replace = atomic.os.replace
    state = {"n": 0}

    def flaky_replace(src, dst):
        if str(dst).endswith("checkpoint.safetensors"):
            state["n"] += 1
            if state["n"] == 2:  # the second checkpoint (step 4) dies half-way
                raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        train(task, tmp_path / "run", CFG)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert load_checkpoint(tmp_path / "run/checkpoint.safetensors").step == 2
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".checkpoint")]
    resumed = train(task, tmp_path / "run", CFG, resume=True)
    assert resumed.steps == {"joint": 6}


def test_log_has_learning_rate_and_per_class_validation_columns(task, tmp_path):
    import csv

    train(task, tmp_path / "run", CFG)
    with open(tmp_path / "run/log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0])
    assert columns[:6] == ["step", "loss", "patches_per_s", "val_dice", "elapsed_s", "lr"]
    per_class = [c for c in columns if c.startswith("val:")]
    assert "val:anatomy/GM" in per_class and "val:lesion/WMH" in per_class
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[0] == pytest.approx(CFG.learning_rate / 2) and lrs[1] == pytest.approx(CFG.learning_rate)
    assert lrs[-1] < lrs[1]  # poly decay after the warm-up
    validated = [r for r in rows if r["val_dice"]]
    assert validated and all(r["val:anatomy/GM"] for r in validated)
    assert "validation score" in (tmp_path / "run/train.log").read_text()
    assert (tmp_path / "run/curves.png").stat().st_size > 0


def test_load_checkpoint_leaves_the_global_random_state_alone(tmp_path):
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    torch.manual_seed(1)
    saved = torch.get_rng_state()
    save_checkpoint(tmp_path / "c.safetensors", net, opt, 0, float("-inf"), 0, {})
    torch.manual_seed(2)
    before = torch.get_rng_state()
    state = load_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(state.torch_rng_state, saved)
