"""Which Slicer releases the module supports, decided before anything else of the module is imported.

Slicer 5.8 and older embed Python 3.9 (ACELib needs 3.10) and lack ``vtkSegment.SetTerminology``
(Slicer 5.10), so the module refuses them with a clear message instead of failing at import. This file
must itself import on Python 3.9: no ``X | Y`` is evaluated here.
"""

from __future__ import annotations

import sys

MINIMUM_SLICER = "5.10"
MINIMUM_PYTHON = (3, 10)


def unsupportedReason(pythonVersion=None, segmentClass=None):
    """A sentence saying why this Slicer cannot run the module, or None when it can.

    Args:
        pythonVersion: ``sys.version_info`` (default) or a ``(major, minor)`` tuple.
        segmentClass: ``slicer.vtkSegment`` (default, imported here), checked for ``SetTerminology``.
    """
    version = tuple(pythonVersion if pythonVersion is not None else sys.version_info)[:2]
    if version < MINIMUM_PYTHON:
        return (f"ACE Segmentation needs Slicer {MINIMUM_SLICER} or later (Python "
                f"{'.'.join(map(str, MINIMUM_PYTHON))}); this Slicer embeds Python {'.'.join(map(str, version))}. "
                "Install a current Slicer release.")
    if segmentClass is None:
        import slicer

        segmentClass = getattr(slicer, "vtkSegment", None)
    if segmentClass is not None and not hasattr(segmentClass, "SetTerminology"):
        return (f"ACE Segmentation needs Slicer {MINIMUM_SLICER} or later (vtkSegment.SetTerminology is "
                "missing). Install a current Slicer release.")
    return None
