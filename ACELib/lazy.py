"""Package namespaces filled on first use (PEP 562), so that importing one light module of a package
does not import the heavy modules (torch) of its siblings."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package's ``__init__``.

    Args:
        package: the package's ``__name__``.
        exports: module (full name) -> the names of it that the package offers.

    Example:
        ``__getattr__, __dir__, __all__ = lazy_exports(__name__, {"ACELib.losses.registry": ("build_loss",)})``
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # later look-ups find it without this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__, sorted(where)
