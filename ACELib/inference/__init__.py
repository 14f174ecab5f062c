"""Inference: the model file, whole-volume sliding-window prediction, case and folder prediction."""

from ACELib.device import resolve_device
from ACELib.inference.model import (
    DEFAULT_WINDOW_VOXELS,
    Prediction,
    SegmentationModel,
    create_model,
    load_model,
)
from ACELib.inference.model_file import (
    MemberSpec,
    ModelMetadata,
    read_model_file,
    resave_with_checksum,
    save_model,
    sha256_of,
)
from ACELib.inference.predict import CaseInput, cases_in_folder, predict_case, predict_folder
from ACELib.inference.sliding_window import Cancelled, sliding_window_logits

__all__ = [
    "DEFAULT_WINDOW_VOXELS",
    "Cancelled",
    "CaseInput",
    "SegmentationModel",
    "MemberSpec",
    "ModelMetadata",
    "Prediction",
    "cases_in_folder",
    "create_model",
    "load_model",
    "predict_case",
    "predict_folder",
    "read_model_file",
    "resave_with_checksum",
    "resolve_device",
    "save_model",
    "sha256_of",
    "sliding_window_logits",
]
