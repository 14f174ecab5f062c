"""Read and write the safetensors format without the `safetensors` package.

The format cannot carry code: an 8-byte little-endian header length, a JSON header mapping each
tensor name to ``{"dtype", "shape", "data_offsets"}`` (plus an optional ``"__metadata__"`` object of
strings), then the raw little-endian tensor bytes. Files written here are readable by the
`safetensors` library and vice versa (for the dtypes below). Loading never unpickles anything.

Files written here carry ``"tensor_sha256"`` in their metadata: the SHA-256 of the whole data
section (all tensor bytes). Every load recomputes it and refuses a file whose tensor bytes changed
(one flipped bit is enough); a file without it (older ACELib, other writers) loads as before.

Reading the header (:func:`read_safetensors_header`, :func:`has_checksum`) needs no torch: torch is
imported when tensors are written or loaded, so a model's metadata can be read before torch is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ACELib.io.atomic import atomic_path

if TYPE_CHECKING:
    import torch

_DTYPES = {  # safetensors code -> name of the torch dtype
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
    "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}
_MAX_HEADER = 100 * 1024 * 1024
CHECKSUM_KEY = "tensor_sha256"


class SafetensorsError(ValueError):
    """A file is not a valid safetensors file."""


def save_safetensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (and string ``metadata``) to ``path`` atomically."""
    import torch

    to_code = {getattr(torch, name): code for code, name in _DTYPES.items()}
    header: dict = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise TypeError(f"metadata must map str to str; offending keys: {bad}")
        header["__metadata__"] = dict(metadata)
    header.setdefault("__metadata__", {})
    blobs, offset = [], 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensor {name!r}: expected torch.Tensor, got {type(t).__name__}")
        if t.dtype not in to_code:
            raise TypeError(f"tensor {name!r}: dtype {t.dtype} is not supported")
        t = t.detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": to_code[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    digest = hashlib.sha256()
    for b in blobs:
        digest.update(b)
    header["__metadata__"][CHECKSUM_KEY] = digest.hexdigest()
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # align the data section to 8 bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def read_safetensors_header(path: str | os.PathLike) -> tuple[dict, dict[str, str], int]:
    """Return ``(tensor_entries, metadata, data_start)`` of a safetensors file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{str(path)!r}: too short to be a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER or 8 + n > size:
            raise SafetensorsError(f"{str(path)!r}: header length {n} does not fit a file of {size} bytes")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SafetensorsError(f"{str(path)!r}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{str(path)!r}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    return header, metadata, 8 + n


def load_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read all tensors and the metadata of a safetensors file (no code is ever executed).

    The checksum (see the module docstring) is verified and left out of the returned metadata;
    ``has_checksum(path)`` tells whether a file carries one.

    Raises:
        SafetensorsError: not a safetensors file, malformed entries, or tensor bytes that fail the checksum.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    header, metadata, start = read_safetensors_header(path)
    data = path.read_bytes()[start:]
    metadata = dict(metadata)
    expected = metadata.pop(CHECKSUM_KEY, None)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise SafetensorsError(f"{str(path)!r}: the tensor data does not match its checksum: the file is "
                               "damaged (changed after it was written); restore or re-download it")
    tensors = {}
    for name, e in header.items():
        try:
            torch_dtype = getattr(torch, _DTYPES[e["dtype"]])
            begin, end = (int(x) for x in e["data_offsets"])
            shape = [int(s) for s in e["shape"]]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{str(path)!r}: entry {name!r} is malformed: {e!r}") from None
        itemsize = torch.empty((), dtype=torch_dtype).element_size()
        if not 0 <= begin <= end <= len(data) or (end - begin) != itemsize * int(np.prod(shape, dtype=np.int64)):
            raise SafetensorsError(f"{str(path)!r}: entry {name!r} has offsets {[begin, end]} that do not fit")
        buf = bytearray(data[begin:end])
        t = torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)
        tensors[name] = t.view(torch_dtype).reshape(shape).clone()
    return tensors, metadata


def has_checksum(path: str | os.PathLike) -> bool:
    """Whether a safetensors file carries the tensor-data checksum of this module."""
    return CHECKSUM_KEY in read_safetensors_header(path)[1]
