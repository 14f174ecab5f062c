"""Named training profiles: settings chosen for a kind of machine, overridable option by option.

``cpu``: 3 mm voxels, a small U-Net and a step budget that finish one training in at most 15 minutes
on 2 idle CPU cores (measured; see docs/results/cpu/). ``paper``: the paper's network and patches
(Appendix A: 32 base channels, 4 blocks per path, batches of 7 patches of 32^3) at the data's own
resolution, sized for a GPU.
"""

from __future__ import annotations

from ACELib.data.augment import AugmentationConfig
from ACELib.data.preprocessing import Preprocessing
from ACELib.training.config import TrainConfig

TRAIN_PROFILES: dict[str, dict] = {
    "cpu": dict(iterations=1000, batch_size=6, patch_size=24, base_channels=16, depth=3, learning_rate=2e-3,
                lr_schedule="poly", warmup_steps=50, validation_interval=250, checkpoint_interval=250,
                preprocessing=Preprocessing(spacing=(3.0, 3.0, 3.0)), augmentation=AugmentationConfig()),
    "paper": dict(iterations=20000, batch_size=7, patch_size=32, base_channels=32, depth=4, learning_rate=1e-3,
                  lr_schedule="poly", warmup_steps=200, validation_interval=500, checkpoint_interval=500,
                  augmentation=AugmentationConfig()),
}


def profile_config(name: str | None, **overrides) -> TrainConfig:
    """The settings of profile ``name`` (None: the library defaults) with ``overrides`` applied.

    Raises:
        ValueError: unknown profile name (the valid ones are listed) or invalid resulting settings.
    """
    if name is None:
        return TrainConfig(**overrides)
    if name not in TRAIN_PROFILES:
        raise ValueError(f"profile must be one of {sorted(TRAIN_PROFILES)}, got {name!r}")
    return TrainConfig(**{**TRAIN_PROFILES[name], "profile": name, **overrides})


__all__ = ["TRAIN_PROFILES", "profile_config"]
