"""Learning-rate schedules, training profiles and per-class model selection."""

from __future__ import annotations

import argparse

import pytest

from ACELib.cli import cmd_train
from ACELib.data.augment import AugmentationConfig
from ACELib.training import TRAIN_PROFILES, TrainConfig, profile_config
from ACELib.training.schedule import learning_rate
from ACELib.training.validation import selection_score


@pytest.mark.parametrize("schedule, step, expected", [
    ("constant", 0, 1.0), ("constant", 99, 1.0),
    ("poly", 0, 1.0), ("poly", 50, 0.5 ** 0.9), ("poly", 100, 0.0),
    ("cosine", 0, 1.0), ("cosine", 50, 0.5), ("cosine", 100, 0.0),
])
def test_schedules_by_hand(schedule, step, expected):
    assert learning_rate(step, 100, 1.0, schedule) == pytest.approx(expected, abs=1e-12)


def test_warmup_rises_linearly_then_the_schedule_starts():
    rates = [learning_rate(s, 100, 2.0, "poly", warmup=10) for s in range(12)]
    assert rates[:10] == pytest.approx([0.2 * (s + 1) for s in range(10)])
    assert rates[10] == pytest.approx(2.0) and rates[11] < 2.0
    assert all(a > b for a, b in zip(rates[10:], rates[11:]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="step"), r"lr schedule must be one of \['constant', 'poly', 'cosine'\], got 'step'"),
    (dict(warmup=-1), "warmup >= 0"),
])
def test_bad_schedule_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        learning_rate(0, 10, 1.0, **kwargs)


def test_selection_weighs_every_dataset_and_class_the_same():
    # the lesion dataset's one class weighs as much as the anatomy dataset's three together
    per_class = {"anatomy/1": 0.6, "anatomy/2": 0.9, "anatomy/3": 0.9, "lesion/4": 0.2}
    assert selection_score(per_class) == pytest.approx((0.8 + 0.2) / 2)
    assert selection_score({}) != selection_score({})  # NaN when nothing is scored


def _args(*argv):
    p = argparse.ArgumentParser()
    cmd_train.add_arguments(p)
    return p.parse_args(["--task", "t.json", "--out", "r", *argv])


def test_profile_settings_and_explicit_options_override_them():
    cfg = cmd_train.config_from_args(_args("--profile", "cpu"))
    assert cfg == profile_config("cpu") and cfg.profile == "cpu"
    assert cfg.preprocessing.spacing == (3.0, 3.0, 3.0) and cfg.augmentation == AugmentationConfig()
    cfg = cmd_train.config_from_args(_args("--profile", "cpu", "--iterations", "70", "--lr", "0.01",
                                           "--no-augment", "--spacing", "2", "2", "2"))
    assert (cfg.iterations, cfg.learning_rate) == (70, 0.01)
    assert cfg.base_channels == TRAIN_PROFILES["cpu"]["base_channels"] and not cfg.augmentation.enabled
    assert cfg.preprocessing.spacing == (2.0, 2.0, 2.0)
    cfg = cmd_train.config_from_args(_args("--domain-randomization", "0.5"))
    assert cfg.profile is None and cfg.augmentation.domain_randomization == 0.5
    cfg = cmd_train.config_from_args(_args("--profile", "cpu", "--class-gain", "0.5"))
    assert cfg.augmentation.p_class_gain == 0.5 and cfg.augmentation.uses_label_maps
    assert cmd_train.config_from_args(_args()) == TrainConfig()
    cfg = cmd_train.config_from_args(_args("--hetero-modal", "--modality-dropout", "0.3"))
    assert cfg.hetero_modal and cfg.modality_dropout == 0.3


def test_profile_and_augmentation_round_trip_through_config_json():
    cfg = profile_config("cpu", augmentation=AugmentationConfig(domain_randomization=0.3))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"profile must be one of \['cpu', 'paper'\], got 'fast'"):
        profile_config("fast")


def test_settings_saved_before_the_uniform_subset_rule_keep_the_per_modality_one():
    new = TrainConfig(hetero_modal=True)
    assert new.modality_subsets == "uniform"
    old = new.to_dict()
    del old["modality_subsets"]
    read = TrainConfig.from_dict(old)
    assert read.modality_subsets == "independent"
    assert new.resume_conflicts(read) == ["modality_subsets: run has 'independent', asked 'uniform'"]
    plain = TrainConfig()  # not hetero-modal: the dropout rule cannot conflict
    assert plain.resume_conflicts(TrainConfig.from_dict({k: v for k, v in plain.to_dict().items()
                                                         if k != "modality_subsets"})) == []
    cfg = cmd_train.config_from_args(_args("--hetero-modal", "--modality-subsets", "independent"))
    assert cfg.modality_subsets == "independent"
    assert cmd_train.config_from_args(_args("--hetero-modal", "--modality-subsets", "single")).modality_subsets == "single"
    assert cmd_train.config_from_args(_args("--hetero-modal", "--modality-subsets", "shared")).modality_subsets == "shared"


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr_schedule="linear"), "lr_schedule must be one of"),
    (dict(modality_subsets="all"), "modality_subsets must be one of"),
    (dict(warmup_steps=10, iterations=10), r"warmup_steps must be >= 0 and < iterations \(10\)"),
])
def test_bad_training_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)
