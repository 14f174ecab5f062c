"""The progress callback every long-running ACELib function takes (stated once)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)``: called as work advances; ``done`` counts up to ``total``."""

__all__ = ["Progress"]
