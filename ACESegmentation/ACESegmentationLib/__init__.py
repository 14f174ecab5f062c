"""ACE Segmentation module internals: MRML I/O, segmentations, dataset export, training and dependencies.

Everything here is free of Qt so that it runs inside Slicer and, with the ``slicer-core`` wheel,
in plain ``pytest``. The module's GUI lives in ``ACESegmentation.py``.
"""
