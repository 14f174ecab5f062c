"""The model file: one self-describing, code-free ``.safetensors`` file.

Weights are safetensors tensors named ``member{i}/{parameter}``; the header's ``__metadata__``
holds one JSON document under ``"ace_model"``: the label space (names, values, colours), the
modalities in channel order, preprocessing, network hyper-parameters, patch size, the training
settings and the ACELib version. A single joint model has one member; a Multi-UNet has one member
per dataset, fused in order (a later member's non-background labels overwrite earlier ones).
Loading never unpickles: it reads JSON and raw tensor bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import ACELib
from ACELib.data.preprocessing import Preprocessing
from ACELib.inference.model_schema import (
    ALL_MODALITIES,
    ANY_SUBSET,
    metadata_problems,
    subset_rule_problems,
    weight_shape_problems,
)
from ACELib.io.safetensors import (
    CHECKSUM_KEY,
    SafetensorsError,
    has_checksum,
    load_safetensors,
    read_safetensors_header,
    save_safetensors,
)
from ACELib.labels import JointLabel
from ACELib.networks import UNet3D, build_network

log = logging.getLogger(__name__)
FORMAT = "ace-segmentation-model"
FORMAT_VERSION = 1
METADATA_KEY = "ace_model"


@dataclass(frozen=True)
class MemberSpec:
    """One network of a model.

    Attributes:
        name: ``"joint"`` for a single model, the dataset name for a Multi-UNet member.
        modalities: input channels, in order.
        classes: the joint label index of each output channel (``classes[0] == 0``).
        network: :class:`UNetConfig` as a dict, plus ``"kind": "hetero"`` for a hetero-modal network
            (see :func:`ACELib.networks.build_network`).
    """

    name: str
    modalities: tuple[str, ...]
    classes: tuple[int, ...]
    network: dict

    def to_dict(self) -> dict:
        return {"name": self.name, "modalities": list(self.modalities), "classes": list(self.classes),
                "network": dict(self.network)}

    @classmethod
    def from_dict(cls, d: dict) -> MemberSpec:
        return cls(str(d["name"]), tuple(d["modalities"]), tuple(int(c) for c in d["classes"]), dict(d["network"]))


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to use a model, saved beside its weights."""

    labels: tuple[JointLabel, ...]
    members: tuple[MemberSpec, ...]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    patch_size: tuple[int, int, int] = (32, 32, 32)
    task_name: str = ""
    training: dict = field(default_factory=dict)
    acelib_version: str = ACELib.__version__
    modality_subsets: str | tuple[tuple[str, ...], ...] = ALL_MODALITIES
    """Which subsets of :attr:`modalities` the model accepts: :data:`ALL_MODALITIES` (every one is
    needed; every model before the hetero-modal network), :data:`ANY_SUBSET` (any non-empty subset), or
    the accepted subsets themselves (each a tuple of names)."""

    def __post_init__(self):
        problems = subset_rule_problems(self.modality_subsets, self.modalities)
        if problems:
            raise ValueError("ModelMetadata.modality_subsets: " + "; ".join(problems))

    @property
    def kind(self) -> str:
        return "single" if len(self.members) == 1 else "multi-unet"

    def accepts(self, modalities) -> bool:
        """Whether the model can segment an image with exactly these modalities (any order)."""
        given = set(modalities)
        if not given or not given <= set(self.modalities) or len(given) != len(tuple(modalities)):
            return False
        if self.modality_subsets == ALL_MODALITIES:
            return given == set(self.modalities)
        if self.modality_subsets == ANY_SUBSET:
            return True
        return any(given == set(s) for s in self.modality_subsets)

    def check_modalities(self, modalities) -> tuple[str, ...]:
        """``modalities`` (the channels of an input, in their order), checked against the model.

        Returns:
            the model's modalities that the input lacks (empty for a complete input).

        Raises:
            ValueError: an empty list, a repeated or unknown name, or a subset the model does not accept;
                the message names the model's modalities and what is missing.
        """
        names = tuple(modalities)
        if not names:
            raise ValueError(f"modalities: the input names no modality; the model takes {list(self.modalities)}")
        unknown = [m for m in names if m not in self.modalities]
        if unknown:
            raise ValueError(f"modalities: unknown {unknown}; the model's modalities are {list(self.modalities)}")
        if len(set(names)) != len(names):
            raise ValueError(f"modalities: a name repeats in {list(names)}")
        missing = tuple(m for m in self.modalities if m not in names)
        if not self.accepts(names):
            rule = ("all of them" if self.modality_subsets == ALL_MODALITIES else
                    "one of the subsets " + ", ".join(str(list(s)) for s in self.modality_subsets))
            raise ValueError(f"modalities: the model needs {rule} of {list(self.modalities)}; the input has "
                             f"{list(names)} (missing {list(missing)})")
        return missing

    @property
    def modalities(self) -> tuple[str, ...]:
        """All modalities the model needs, in order of first use by its members."""
        out: list[str] = []
        for m in self.members:
            out.extend(x for x in m.modalities if x not in out)
        return tuple(out)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "acelib_version": self.acelib_version,
            "task_name": self.task_name,
            "labels": [lab.to_dict() for lab in self.labels],
            "modalities": list(self.modalities),
            "members": [m.to_dict() for m in self.members],
            "preprocessing": self.preprocessing.to_dict(),
            "patch_size": list(self.patch_size),
            "training": self.training,
            **({} if self.modality_subsets == ALL_MODALITIES else
               {"modality_subsets": self.modality_subsets if isinstance(self.modality_subsets, str)
                else [list(x) for x in self.modality_subsets]}),
        }, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> ModelMetadata:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: metadata is not valid JSON ({exc})") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            fmt = d.get("format") if isinstance(d, dict) else None
            raise ValueError(f"{source}: not an ACE Segmentation model (format {fmt!r})")
        problems = metadata_problems(d)
        if problems:
            raise ValueError(f"{source}: invalid model metadata: " + "; ".join(problems))
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{source}: model format version {d['format_version']} is newer than this ACELib "
                f"({ACELib.__version__}) supports ({FORMAT_VERSION}); update ACELib"
            )
        return cls(labels=tuple(JointLabel.from_dict(e) for e in d["labels"]),
                   members=tuple(MemberSpec.from_dict(m) for m in d["members"]),
                   preprocessing=Preprocessing.from_dict(d.get("preprocessing", {})),
                   patch_size=tuple(d.get("patch_size", (32, 32, 32))), task_name=d.get("task_name", ""),
                   training=d.get("training", {}), acelib_version=d.get("acelib_version", "?"),
                   modality_subsets=_subset_rule(d.get("modality_subsets", ALL_MODALITIES)))



def _subset_rule(value) -> str | tuple[tuple[str, ...], ...]:
    return value if isinstance(value, str) else tuple(tuple(s) for s in value)


def build_networks(meta: ModelMetadata) -> list[torch.nn.Module]:
    """Fresh (untrained) networks for the members of ``meta`` (:class:`UNet3D`, or a hetero-modal one)."""
    return [build_network(m.network) for m in meta.members]


def save_model(path: str | os.PathLike, meta: ModelMetadata, networks: Sequence[torch.nn.Module]) -> Path:
    """Write weights and metadata to one safetensors file, atomically."""
    if len(networks) != len(meta.members):
        raise ValueError(f"got {len(networks)} networks for {len(meta.members)} members")
    tensors = {}
    for i, net in enumerate(networks):
        for k, v in net.state_dict().items():
            tensors[f"member{i}/{k}"] = v
    save_safetensors(path, tensors, {METADATA_KEY: meta.to_json()})
    return Path(path)


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_model_file(path: str | os.PathLike, expected_sha256: str | None = None
                    ) -> tuple[ModelMetadata, list[UNet3D]]:
    """Read a model file into metadata and networks (on CPU, eval mode).

    Raises:
        FileNotFoundError: no such file.
        ValueError: checksum mismatch, not a model file, or weights that do not fit the metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != expected_sha256.lower():
            raise ValueError(
                f"model file {str(path)!r} has SHA-256 {actual}, expected {expected_sha256}: "
                "the file is corrupt or not the one that was published"
            )
    header, metadata = _read_header(path)
    if METADATA_KEY not in metadata:
        raise ValueError(f"{str(path)!r} is a safetensors file without ACE Segmentation metadata")
    meta = ModelMetadata.from_json(metadata[METADATA_KEY], source=str(path))
    problems = weight_shape_problems([m.network for m in meta.members], header)
    if problems:  # checked on the meta device: nothing of the claimed size is allocated
        raise ValueError(f"{str(path)!r}: the weights do not fit the network description: " + "; ".join(problems))
    if CHECKSUM_KEY not in metadata:
        log.warning("%s carries no checksum of its weights (written before ACELib checked them); damage would "
                    "go unnoticed: re-save it (ACELib.inference.resave_with_checksum) or verify it with --sha256",
                    path)
    tensors, _ = load_safetensors(path)  # verifies the checksum of the tensor data
    nets = build_networks(meta)
    for i, net in enumerate(nets):
        prefix = f"member{i}/"
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{str(path)!r}: weights of member {meta.members[i].name!r} do not fit its "
                             f"network description: {str(exc).splitlines()[0]}") from None
        net.eval()
    return meta, nets


def _read_header(path: Path) -> tuple[dict, dict[str, str]]:
    """Tensor entries and metadata of a model file; a file of another kind is named as such."""
    try:
        header, metadata, _ = read_safetensors_header(path)
    except SafetensorsError as exc:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic[:1] == b"\x80" or magic == b"PK\x03\x04":
            raise ValueError(f"{str(path)!r} is not a safetensors model file: it looks like a PyTorch pickle "
                             "(torch.save) file, which can run code and is never loaded; use the "
                             "model.safetensors written by `ace train`") from None
        raise ValueError(f"{str(path)!r} is not a safetensors model file ({exc})") from None
    return header, metadata


def resave_with_checksum(path: str | os.PathLike) -> bool:
    """Rewrite a model file written before checksums existed so that it carries one (tensors unchanged).

    Returns:
        False when the file already had a checksum (it is left untouched).
    """
    if has_checksum(path):
        return False
    tensors, metadata = load_safetensors(path)
    save_safetensors(path, tensors, metadata)
    return True
