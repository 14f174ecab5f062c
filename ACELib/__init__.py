"""ACELib: one network for brain anatomy and lesions, trained from partially labelled datasets.

The package is pure Python (torch, numpy, SimpleITK, nibabel): no Slicer and no Qt imports, so the
command line and the 3D Slicer module call the same functions.
"""

__version__ = "0.1.0"
