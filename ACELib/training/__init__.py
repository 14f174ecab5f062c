"""Training: settings, the loop (single joint model or Multi-UNet), checkpoints, logs and plots.

The names below are imported on first use (:mod:`ACELib.lazy`), so that the run-folder helpers that
front ends read while a training runs (:mod:`ACELib.training.control`, :mod:`ACELib.training.curves`)
import without torch.
"""

from ACELib.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ACELib.training.config": ("TrainConfig",),
    "ACELib.training.profiles": ("TRAIN_PROFILES", "profile_config"),
    "ACELib.training.members": ("MemberPlan", "plan_members"),
    "ACELib.training.trainer": ("TrainResult", "train"),
})
