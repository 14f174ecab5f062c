"""The model file: one self-describing, code-free ``.safetensors`` file.

Weights are safetensors tensors named ``member{i}/{parameter}``; the header's ``__metadata__``
holds one JSON document under ``"ace_model"``: the label space (names, values, colours), the
modalities in channel order, preprocessing, network hyper-parameters, patch size, the training
settings and the ACELib version. A single joint model has one member; a Multi-UNet has one member
per dataset, fused in order (a later member's non-background labels overwrite earlier ones).
Loading never unpickles: it reads JSON and raw tensor bytes. The metadata types and the header reader
(:class:`ModelMetadata`, :func:`read_model_metadata`) live in :mod:`ACELib.inference.metadata`, which
needs no torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ACELib.inference.metadata import (  # noqa: F401  (names of the model file, kept importable from here)
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEY,
    MemberSpec,
    ModelMetadata,
    read_model_header,
)
from ACELib.inference.model_schema import ALL_MODALITIES, ANY_SUBSET, weight_shape_problems  # noqa: F401
from ACELib.io.safetensors import CHECKSUM_KEY, has_checksum, load_safetensors, save_safetensors
from ACELib.networks import UNet3D, build_network

log = logging.getLogger(__name__)


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
    header, metadata, document = read_model_header(path)
    meta = ModelMetadata.from_dict(document)
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
