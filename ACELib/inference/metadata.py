"""A model file's metadata, read from its header alone: no torch, no tensor bytes.

The header's ``__metadata__`` holds one JSON document under :data:`METADATA_KEY` (``"ace_model"``,
see :mod:`ACELib.inference.model_file`). :func:`read_model_metadata` returns it checked against the
schema (:mod:`ACELib.inference.model_schema`); :meth:`ModelMetadata.from_dict` makes it typed. The
Slicer module reads models' labels and modalities this way before torch is installed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ACELib
from ACELib.data.preprocessing import Preprocessing
from ACELib.inference.label_sources import LabelSource, source_passes
from ACELib.inference.model_schema import (
    ALL_MODALITIES,
    ANY_CONTRAST,
    ANY_SUBSET,
    PASSES,
    metadata_problems,
    subset_rule_problems,
)
from ACELib.io.safetensors import SafetensorsError, read_safetensors_header
from ACELib.labels import JointLabel

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


def _in_order_of_use(member_modalities: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """The modalities of all members, each once, in order of first use."""
    return tuple(dict.fromkeys(m for modalities in member_modalities for m in modalities))


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
    label_sources: tuple[LabelSource, ...] = ()
    """The training datasets' annotated labels and modalities (hetero-modal models): inference reads
    each label from the modalities it was trained with (:mod:`ACELib.inference.label_sources`).
    Empty: one pass over the input, whatever it holds."""
    passes: str = "sources"
    """How inference runs a model with label sources: ``"sources"`` (one pass per source, combined) or
    ``"one"`` (a single pass over the input: the model was trained with pass distillation,
    :mod:`ACELib.training.distill`). One of :data:`PASSES`."""

    def __post_init__(self):
        problems = subset_rule_problems(self.modality_subsets, self.modalities)
        if problems:
            raise ValueError("ModelMetadata.modality_subsets: " + "; ".join(problems))
        if self.passes not in PASSES:
            raise ValueError(f"ModelMetadata.passes must be one of {list(PASSES)}, got {self.passes!r}")

    @property
    def kind(self) -> str:
        return "single" if len(self.members) == 1 else "multi-unet"

    @property
    def any_contrast(self) -> bool:
        """Whether the model has one input of any contrast (trained with ``--any-contrast``)."""
        return self.modalities == (ANY_CONTRAST,)

    def input_names(self, modalities) -> tuple[str, ...]:
        """``modalities`` as the model names its inputs: an any-contrast model reads one image of any
        name as its input; other names stay as they are."""
        names = tuple(modalities)
        return (ANY_CONTRAST,) if self.any_contrast and len(names) == 1 else names

    def accepts(self, modalities) -> bool:
        """Whether the model can segment an image with exactly these modalities (any order)."""
        modalities = self.input_names(modalities)
        given = set(modalities)
        if not given or not given <= set(self.modalities) or len(given) != len(tuple(modalities)):
            return False
        if self.modality_subsets == ALL_MODALITIES:
            return given == set(self.modalities)
        if self.modality_subsets == ANY_SUBSET:
            return True
        return any(given == set(s) for s in self.modality_subsets)

    def check_modalities(self, modalities) -> tuple[str, ...]:
        """``modalities`` (the channels of an input, in their order), checked against the model (one
        image of any name for an any-contrast model, :meth:`input_names`).

        Returns:
            the model's modalities that the input lacks (empty for a complete input).

        Raises:
            ValueError: an empty list, a repeated or unknown name, or a subset the model does not accept;
                the message names the model's modalities and what is missing.
        """
        names = self.input_names(modalities)
        if not names:
            raise ValueError(f"modalities: the input names no modality; the model takes {list(self.modalities)}")
        if self.any_contrast and names != (ANY_CONTRAST,):
            raise ValueError(f"modalities: the model takes one image of any contrast, the input has {len(names)} "
                             f"({list(names)}); give one of them")
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

    def unsupported_labels(self, modalities) -> tuple[str, ...]:
        """Labels that no training dataset taught with any of ``modalities`` (from :attr:`label_sources`;
        none for a model without them): the model answers for them, but from inputs it never saw them in."""
        given = set(modalities)
        taught = {lab for s in self.label_sources if given & set(s.modalities) for lab in s.labels}
        return tuple(lab for s in self.label_sources for lab in s.labels if lab not in taught)

    def unsupported_labels_warning(self, modalities) -> str:
        """A sentence naming :meth:`unsupported_labels` and the modalities they were taught with ("" if none)."""
        unsupported = self.unsupported_labels(modalities)
        if not unsupported:
            return ""
        need = sorted({m for s in self.label_sources if set(s.labels) & set(unsupported) for m in s.modalities})
        return (f"{', '.join(unsupported)} were trained only with {' or '.join(need)}, which the input lacks: "
                "expect them to be unreliable")

    def inference_passes(self, modalities) -> list[tuple[str, ...]]:
        """The input subsets inference runs the network on for an input with these ``modalities`` (in
        model order): one per label source (:func:`ACELib.inference.label_sources.source_passes`),
        or the input alone for a model without label sources or with :attr:`passes` ``"one"``."""
        names = tuple(modalities)
        return source_passes(self.label_sources, names) if self.passes == "sources" else [names]

    @property
    def modalities(self) -> tuple[str, ...]:
        """All modalities the model needs, in order of first use by its members."""
        return _in_order_of_use(m.modalities for m in self.members)

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
            **({"label_sources": [x.to_dict() for x in self.label_sources]} if self.label_sources else {}),
            **({} if self.passes == "sources" else {"passes": self.passes}),
        }, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> ModelMetadata:
        """Parse and check (:func:`parse_metadata`) a metadata document."""
        return cls.from_dict(parse_metadata(text, source))

    @classmethod
    def from_dict(cls, d: dict) -> ModelMetadata:
        """The metadata of a document that :func:`parse_metadata` (or :func:`read_model_metadata`) returned."""
        return cls(labels=tuple(JointLabel.from_dict(e) for e in d["labels"]),
                   members=tuple(MemberSpec.from_dict(m) for m in d["members"]),
                   preprocessing=Preprocessing.from_dict(d.get("preprocessing", {})),
                   patch_size=tuple(d.get("patch_size", (32, 32, 32))), task_name=d.get("task_name", ""),
                   training=d.get("training", {}), acelib_version=d.get("acelib_version", "?"),
                   modality_subsets=_subset_rule(d.get("modality_subsets", ALL_MODALITIES)),
                   label_sources=tuple(LabelSource.from_dict(x) for x in d.get("label_sources", ())),
                   passes=d.get("passes", "sources"))


def _subset_rule(value) -> str | tuple[tuple[str, ...], ...]:
    return value if isinstance(value, str) else tuple(tuple(s) for s in value)


def parse_metadata(text: str, source: str = "model") -> dict:
    """The metadata document in ``text``, checked: JSON, the format, the schema, the format version.

    Returns:
        The document, its ``"modalities"`` those of the members in order of first use (as
        :attr:`ModelMetadata.modalities`, whatever the file says).

    Raises:
        ValueError: naming ``source``: not JSON, not an ACE Segmentation model, every departure from
            the schema, or a format version newer than this ACELib reads.
    """
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
    d["modalities"] = list(_in_order_of_use(m["modalities"] for m in d["members"]))
    return d


def read_model_header(path: str | os.PathLike) -> tuple[dict, dict[str, str], dict]:
    """The header of a model file: ``(tensor entries, safetensors metadata strings, model metadata
    document)``, the document checked by :func:`parse_metadata`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file (a PyTorch pickle is named as such), no ACE Segmentation
            metadata, or metadata that fails :func:`parse_metadata`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
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
    if METADATA_KEY not in metadata:
        raise ValueError(f"{str(path)!r} is a safetensors file without ACE Segmentation metadata")
    return header, metadata, parse_metadata(metadata[METADATA_KEY], source=str(path))


def read_model_metadata(path: str | os.PathLike) -> dict:
    """The checked metadata document of a model file (labels, modalities, members, preprocessing...),
    read from its header: torch is not imported and no tensor byte is read.

    Returns:
        The ``"ace_model"`` document (see :func:`parse_metadata`); :meth:`ModelMetadata.from_dict`
        makes it a :class:`ModelMetadata`.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_model_header`.
    """
    return read_model_header(path)[2]
