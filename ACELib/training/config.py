"""Training settings: one frozen dataclass, saved as JSON in the run folder."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from ACELib.data.augment import AugmentationConfig
from ACELib.data.preprocessing import Preprocessing
from ACELib.data.sampling import DEFAULT_SUBSET_RULE, MODALITY_SUBSETS
from ACELib.io.strict_json import refuse_unknown_keys
from ACELib.losses import LOSSES
from ACELib.training.schedule import SCHEDULES

# settings that may change when a run is resumed; any other difference is an error
RESUMABLE_CHANGES = ("iterations", "device", "validation_interval", "checkpoint_interval", "num_threads",
                     "cache_dir", "num_workers")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (defaults follow the paper where it says: Adam with default parameters, batches
    of 7 patches of 32^3, 32 base channels).

    Attributes:
        loss: a name from :data:`ACELib.losses.LOSSES` (single model); Multi-UNet members use "ce".
        iterations: optimisation steps (per network for a Multi-UNet).
        validation_fraction: share of each training dataset's cases held out for validation Dice.
        validation_interval: steps between validations (and best-model selection).
        checkpoint_interval: steps between resumable checkpoints.
        multi_unet: train one network per dataset (each on all of its own modalities) instead.
        hetero_modal: train the single model with the hetero-modal network
            (:class:`ACELib.networks.HeteroUNet3D`) on the union of the datasets' modalities, each
            sample with exactly the modalities its dataset has (see :mod:`ACELib.training.hetero`).
        modality_dropout: (hetero_modal) probability in [0, 1) of modality dropout on a training
            patch; 0 trains only the datasets' own subsets.
        modality_subsets: (hetero_modal) how dropout draws the kept modalities, one of
            :data:`ACELib.data.sampling.SUBSET_RULES` (``"uniform"``: a dropped patch keeps a
            uniformly drawn non-empty subset; runs saved without this setting read as
            ``"independent"``, the earlier per-modality rule).
        any_contrast: train a single-input model (its input named :data:`ACELib.inference.model_schema.ANY_CONTRAST`) on every
            image of every dataset: each patch shows one of its case's modalities, drawn uniformly,
            with the case's labels, so the model segments one image of any contrast the datasets
            hold (with domain randomisation, of others too). Validation gives case ``i`` of a
            dataset its modality ``i mod M``.
        contrast_distillation: (any_contrast) weight of contrast distillation
            (:func:`ACELib.training.distill.contrast_distillation_loss`): a patch showing another
            image than the teacher modality (the first every dataset has, e.g. T1) also runs that
            image of the same patch, and the split of what its dataset does not annotate (the
            tissue, for a lesion dataset) is pulled toward the teacher's; 0: off.
        pass_distillation: (hetero_modal) weight of pass distillation (:mod:`ACELib.training.distill`):
            patches whose modalities need more than one label-source pass are also run with each
            pass's modalities alone, and their one-pass output is pulled toward the passes combined,
            so that the model is segmented in one pass (``passes: "one"`` in its file); 0: off.
        cache_dir: keep preprocessed cases in this folder, memory-mapped (see :mod:`ACELib.data.cache`);
            None holds them in RAM.
        num_workers: DataLoader processes drawing patches (0: in the training process). A resume
            continues the same patch stream only with the same number of workers (and processes).
        lr_schedule: one of :data:`ACELib.training.schedule.SCHEDULES`; ``warmup_steps`` of linear
            warm-up first. The rate is a function of the step and ``iterations``.
        augmentation: patch augmentation and domain randomisation (:mod:`ACELib.data.augment`).
        profile: the name of the profile the settings came from (``ace train --profile``), or None.
    """

    loss: str = "ace+dice"
    iterations: int = 2000
    batch_size: int = 7
    patch_size: int = 32
    base_channels: int = 32
    depth: int = 4
    learning_rate: float = 1e-3
    validation_fraction: float = 0.2
    validation_interval: int = 100
    checkpoint_interval: int = 50
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    multi_unet: bool = False
    hetero_modal: bool = False
    modality_dropout: float = 0.5
    modality_subsets: str = DEFAULT_SUBSET_RULE
    pass_distillation: float = 0.0
    any_contrast: bool = False
    contrast_distillation: float = 0.0
    num_threads: int | None = None
    cache_dir: str | None = None
    num_workers: int = 0
    lr_schedule: str = "poly"
    warmup_steps: int = 0
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    profile: str | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        for name in ("iterations", "batch_size", "patch_size", "base_channels", "depth",
                     "validation_interval", "checkpoint_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patch_size % (2 ** (self.depth - 1)):
            raise ValueError(f"patch_size {self.patch_size} must be divisible by 2^(depth-1) = {2 ** (self.depth - 1)}")
        if int(self.num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise ValueError(f"learning_rate (--lr) must be a finite number > 0, got {self.learning_rate}")
        if self.hetero_modal and self.multi_unet:
            raise ValueError("hetero_modal and multi_unet exclude each other (a Multi-UNet member uses its "
                             "dataset's own modalities); choose one")
        if self.any_contrast and (self.hetero_modal or self.multi_unet):
            raise ValueError("any_contrast (--any-contrast: one input of any contrast) excludes hetero_modal and "
                             "multi_unet (several inputs); choose one")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {self.modality_dropout}")
        if self.modality_subsets not in MODALITY_SUBSETS:
            raise ValueError(f"modality_subsets must be one of {list(MODALITY_SUBSETS)}, got {self.modality_subsets!r}")
        if not math.isfinite(self.pass_distillation) or self.pass_distillation < 0:
            raise ValueError(f"pass_distillation must be a finite number >= 0, got {self.pass_distillation}")
        if self.pass_distillation and not self.hetero_modal:
            raise ValueError(f"pass_distillation ({self.pass_distillation:g}) needs hetero_modal (--hetero-modal): "
                             "only a hetero-modal model has passes to distil")
        if not math.isfinite(self.contrast_distillation) or self.contrast_distillation < 0:
            raise ValueError(f"contrast_distillation must be a finite number >= 0, got {self.contrast_distillation}")
        if self.contrast_distillation and not self.any_contrast:
            raise ValueError(f"contrast_distillation ({self.contrast_distillation:g}) needs any_contrast "
                             "(--any-contrast): only a one-image model has contrasts to distil")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(SCHEDULES)}, got {self.lr_schedule!r}")
        if int(self.warmup_steps) < 0 or int(self.warmup_steps) >= int(self.iterations):
            raise ValueError(f"warmup_steps must be >= 0 and < iterations ({self.iterations}), got {self.warmup_steps}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preprocessing"] = self.preprocessing.to_dict()
        d["augmentation"] = self.augmentation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        refuse_unknown_keys(d, cls, "training settings")
        d = dict(d)
        if "modality_dropout" in d:  # saved before the uniform rule existed: the per-modality one
            d.setdefault("modality_subsets", "independent")
        if "preprocessing" in d:
            d["preprocessing"] = Preprocessing.from_dict(d["preprocessing"])
        if "augmentation" in d:
            d["augmentation"] = AugmentationConfig.from_dict(d["augmentation"])
        return cls(**d)

    def resume_conflicts(self, saved: TrainConfig) -> list[str]:
        """Settings that differ from a saved run's and cannot change on resume."""
        ignored = set(RESUMABLE_CHANGES)
        if not (self.hetero_modal or saved.hetero_modal):  # dropout settings mean nothing then
            ignored |= {"modality_dropout", "modality_subsets", "pass_distillation"}
        return [f"{f.name}: run has {getattr(saved, f.name)!r}, asked {getattr(self, f.name)!r}"
                for f in fields(self) if f.name not in ignored
                and getattr(self, f.name) != getattr(saved, f.name)]

    def with_changes(self, **kw) -> TrainConfig:
        return replace(self, **kw)
