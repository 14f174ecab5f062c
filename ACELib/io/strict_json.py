"""JSON reading that refuses what ``json.loads`` lets through silently: duplicate keys, NaN/Infinity,
and (for settings saved as JSON) keys that no setting has."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping


class DuplicateKeyError(ValueError):
    """A JSON object repeats a key (``json.loads`` would silently keep the last value)."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"key {key!r} appears twice in one object ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text: str, source: str):
    """Parse JSON, refusing duplicate keys and the non-standard constants NaN/Infinity.

    Raises:
        ValueError: naming ``source``: invalid JSON, a duplicate key (named), or NaN/Infinity.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def refuse_unknown_keys(data: Mapping, settings: type, what: str) -> None:
    """Raise unless every key of ``data`` is a field of the dataclass ``settings``.

    Args:
        what: how the message names the keys, e.g. ``"training settings"``.

    Raises:
        ValueError: ``unknown {what} [...]; known: [...]``.
    """
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; known: {sorted(known)}")
