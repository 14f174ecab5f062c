"""The module's parameter node (typed, saved with the scene), for the widget.

The folder fields are plain strings synchronised by the widget rather than ``Path`` parameters bound to
the ``ctkPathLineEdit`` widgets: an unset ``Path`` is ``Path("")``, which the bound widget shows as ".".
"""

from __future__ import annotations

from typing import Annotated

import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper

from ACESegmentationLib import training_process
from ACESegmentationLib.export import ANNOTATION_MODES

DEVICES = {"auto": "auto", "GPU": "cuda", "CPU": "cpu"}


@parameterNodeWrapper
class ACESegmentationParameterNode:
    """Everything the panel shows, saved with the scene."""

    inputVolume1: slicer.vtkMRMLScalarVolumeNode
    inputVolume2: slicer.vtkMRMLScalarVolumeNode
    inputVolume3: slicer.vtkMRMLScalarVolumeNode
    inputVolume4: slicer.vtkMRMLScalarVolumeNode
    outputSegmentation: slicer.vtkMRMLSegmentationNode
    modelPath: str = ""
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    resample: bool = False
    showIn3D: bool = False
    datasetFolder: str = ""
    caseName: str = ""
    annotated: Annotated[str, Choice(list(ANNOTATION_MODES))] = "all"
    datasetFolders: list[str]
    loss: Annotated[str, Choice(list(training_process.LOSSES))] = "ace+dice"
    iterations: Annotated[int, WithinRange(1, 1000000)] = 2000
    runFolder: str = ""
