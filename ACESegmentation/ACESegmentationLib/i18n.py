"""Slicer's translation function ``_()`` for user-visible strings, or the identity outside Slicer.

Slicer (5.4 and later) translates module strings through ``slicer.i18n.tr``; the ``slicer-core`` wheel
and older releases have no ``slicer.i18n``, and then strings are shown as written.
"""

from __future__ import annotations

try:
    from slicer.i18n import tr as _
except ImportError:  # slicer-core, or no translation support

    def _(text: str) -> str:
        return text


__all__ = ["_"]
