"""Inference: the model file, whole-volume sliding-window prediction, case and folder prediction.

The names below are imported on first use (:mod:`ACELib.lazy`), so that the model-header reader
(:mod:`ACELib.inference.metadata`) imports without torch.
"""

from ACELib.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ACELib.device": ("resolve_device",),
    "ACELib.inference.model": ("DEFAULT_WINDOW_VOXELS", "Prediction", "SegmentationModel", "create_model",
                               "load_model"),
    "ACELib.inference.metadata": ("MemberSpec", "ModelMetadata", "read_model_metadata"),
    "ACELib.inference.model_file": ("read_model_file", "resave_with_checksum", "save_model", "sha256_of"),
    "ACELib.inference.predict": ("CaseInput", "cases_in_folder", "predict_case", "predict_folder"),
    "ACELib.inference.sliding_window": ("Cancelled", "sliding_window_logits"),
})
