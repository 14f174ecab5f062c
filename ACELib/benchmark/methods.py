"""The methods compared by ``ace benchmark`` and the two profiles it runs them with."""

from __future__ import annotations

from dataclasses import dataclass

from ACELib.data.preprocessing import Preprocessing
from ACELib.training import TrainConfig


@dataclass(frozen=True)
class Method:
    """One compared method: a display name and how it is trained.

    Attributes:
        hetero_modal: one hetero-modal network on the union of the datasets' modalities
            (``TrainConfig.hetero_modal``).
        conditions: further input subsets its models are tested with, besides all modalities (see
            :mod:`ACELib.benchmark.conditions`); a subset the test set lacks is skipped.
    """

    key: str
    title: str
    loss: str
    multi_unet: bool = False
    hetero_modal: bool = False
    conditions: tuple[tuple[str, ...], ...] = ()


METHODS: dict[str, Method] = {m.key: m for m in (
    Method("multi-unet", "Multi-UNet (CE)", "ce", multi_unet=True),
    Method("naive-ce", "Naive CE", "ce"),
    Method("naive-dice", "Naive Dice", "dice"),
    Method("ace-patch", "ACE (paper, patch labels)", "ace-patch"),
    Method("ace", "ACE (dataset labels)", "ace"),
    Method("ace+dice", "ACE + marginal Dice", "ace+dice"),
    Method("marginal", "Marginal CE (widened labels)", "marginal"),
    Method("ace-hetero", "ACE, hetero-modal", "ace", hetero_modal=True, conditions=(("T1",),)),
)}
DEFAULT_METHODS = ("multi-unet", "naive-ce", "naive-dice", "ace-patch", "ace", "ace+dice")
"""The paper's comparison (plus ACE + marginal Dice); ``marginal`` (which also reads an anatomy
dataset's WM as possibly WMH) runs when asked for."""
REFERENCE_METHOD = "ace"


@dataclass(frozen=True)
class Profile:
    """Training settings shared by every method of a benchmark run."""

    name: str
    phantoms_quick: bool
    train: TrainConfig


PROFILES: dict[str, Profile] = {
    # paper settings (32^3 patches, batches of 7, 32 base channels, 4 blocks per path): meant for a GPU
    "full": Profile("full", False, TrainConfig(iterations=4000, batch_size=7, patch_size=32, base_channels=32,
                                               depth=4, validation_interval=250, checkpoint_interval=250)),
    # small network on 3 mm phantoms, for 2 CPU cores; models resample any input to 3 mm, so the
    # ACE models double as the module's bundled models
    "quick": Profile("quick", True, TrainConfig(iterations=320, batch_size=7, patch_size=24, base_channels=8,
                                                depth=3, validation_interval=160, checkpoint_interval=160,
                                                preprocessing=Preprocessing(spacing=(3.0, 3.0, 3.0)))),
}


def method_config(profile: Profile, method: Method, seed: int, device: str = "auto",
                  cache_dir: str | None = None) -> TrainConfig:
    """The training settings of ``method`` under ``profile`` with ``seed`` (and a shared data cache)."""
    return profile.train.with_changes(loss=method.loss, multi_unet=method.multi_unet, seed=seed, device=device,
                                      cache_dir=cache_dir, hetero_modal=method.hetero_modal)


def get_methods(keys) -> list[Method]:
    """Methods by key (:data:`DEFAULT_METHODS` when ``keys`` is empty); a typo lists the valid keys."""
    if not keys:
        return [METHODS[k] for k in DEFAULT_METHODS]
    unknown = [k for k in keys if k not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid: {list(METHODS)}")
    return [METHODS[k] for k in keys]
