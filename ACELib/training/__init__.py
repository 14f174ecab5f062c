"""Training: settings, the loop (single joint model or Multi-UNet), checkpoints, logs and plots."""

from ACELib.training.config import TrainConfig
from ACELib.training.profiles import TRAIN_PROFILES, profile_config
from ACELib.training.trainer import MemberPlan, TrainResult, plan_members, train

__all__ = ["TRAIN_PROFILES", "MemberPlan", "TrainConfig", "TrainResult", "plan_members", "profile_config", "train"]
