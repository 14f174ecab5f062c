"""The methods compared by ``ace benchmark`` and the two profiles it runs them with."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ACELib.training import TrainConfig, profile_config


@dataclass(frozen=True)
class Method:
    """One compared method: a display name and how it is trained.

    Attributes:
        hetero_modal: one hetero-modal network on the union of the datasets' modalities
            (``TrainConfig.hetero_modal``).
        conditions: further input subsets its models are tested with, besides all modalities (see
            :mod:`ACELib.benchmark.conditions`); a subset the test set lacks is skipped.
        augment: ``(field, value)`` pairs that change the profile's augmentation
            (:class:`ACELib.data.augment.AugmentationConfig`) for this method.
        settings: ``(field, value)`` pairs that change the profile's other training settings
            (:class:`ACELib.training.TrainConfig`).
    """

    key: str
    title: str
    loss: str
    multi_unet: bool = False
    hetero_modal: bool = False
    conditions: tuple[tuple[str, ...], ...] = ()
    augment: tuple[tuple[str, float], ...] = ()
    settings: tuple[tuple[str, object], ...] = ()


METHODS: dict[str, Method] = {m.key: m for m in (
    Method("multi-unet", "Multi-UNet (CE)", "ce", multi_unet=True),
    Method("naive-ce", "Naive CE", "ce"),
    Method("naive-dice", "Naive Dice", "dice"),
    Method("ace-patch", "ACE (paper, patch labels)", "ace-patch"),
    Method("ace", "ACE (dataset labels)", "ace"),
    Method("ace+dice", "ACE + marginal Dice", "ace+dice"),
    Method("marginal", "Marginal CE (widened labels)", "marginal"),
    Method("ace-hetero", "ACE + marginal Dice, hetero-modal", "ace+dice", hetero_modal=True, conditions=(("T1",),)),
    Method("ace-hetero+distill", "ACE + marginal Dice, hetero-modal, pass distillation", "ace+dice",
           hetero_modal=True, conditions=(("T1",),), settings=(("pass_distillation", 0.1),)),
    Method("ace-hetero+shared", "ACE + marginal Dice, hetero-modal, shared-modality dropout", "ace+dice",
           hetero_modal=True, conditions=(("T1",),), settings=(("modality_subsets", "shared"),)),
    Method("ace-hetero+shared+distill", "ACE + marginal Dice, hetero-modal, shared-modality dropout, pass distillation",
           "ace+dice", hetero_modal=True, conditions=(("T1",),),
           settings=(("modality_subsets", "shared"), ("pass_distillation", 0.1))),
    Method("ace+dice+curve", "ACE + marginal Dice, contrast curves", "ace+dice", augment=(("p_curve", 0.5),)),
    Method("ace+dice+gain", "ACE + marginal Dice, class gains", "ace+dice", augment=(("p_class_gain", 0.5),)),
)}
DEFAULT_METHODS = ("multi-unet", "naive-ce", "naive-dice", "ace-patch", "ace", "ace+dice")
"""The paper's comparison (plus ACE + marginal Dice); ``marginal`` (which also reads an anatomy
dataset's WM as possibly WMH) runs when asked for."""
REFERENCE_METHODS = ("ace+dice", "ace")
"""The method the others are tested against: the first of these that ran (the default loss, else the paper's ACE)."""


@dataclass(frozen=True)
class Profile:
    """Training settings shared by every method of a benchmark run."""

    name: str
    phantoms_quick: bool
    train: TrainConfig


PROFILES: dict[str, Profile] = {
    # the training profiles of ``ace train --profile``: 3 mm phantoms and a small U-Net for 2 CPU cores
    # (models resample any input to 3 mm, so the ACE models double as bundled models), or the paper's
    # network at 1 mm for a GPU
    "cpu": Profile("cpu", True, profile_config("cpu")),
    "paper": Profile("paper", False, profile_config("paper")),
}
PROFILE_ALIASES = {"quick": "cpu", "full": "paper"}
"""Earlier names of the profiles."""


def get_profile(name: str) -> Profile:
    """The profile called ``name`` (or an earlier name of it); a typo lists the valid names."""
    name = PROFILE_ALIASES.get(name, name)
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {name!r}")
    return PROFILES[name]


def method_config(profile: Profile, method: Method, seed: int, device: str = "auto",
                  cache_dir: str | None = None) -> TrainConfig:
    """The training settings of ``method`` under ``profile`` with ``seed`` (and a shared data cache)."""
    augmentation = replace(profile.train.augmentation, **dict(method.augment))
    return profile.train.with_changes(loss=method.loss, multi_unet=method.multi_unet, seed=seed, device=device,
                                      cache_dir=cache_dir, hetero_modal=method.hetero_modal,
                                      augmentation=augmentation, **dict(method.settings))


def get_methods(keys) -> list[Method]:
    """Methods by key (:data:`DEFAULT_METHODS` when ``keys`` is empty); a typo lists the valid keys."""
    if not keys:
        return [METHODS[k] for k in DEFAULT_METHODS]
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid: {list(METHODS)}")
    return [METHODS[k] for k in keys]
