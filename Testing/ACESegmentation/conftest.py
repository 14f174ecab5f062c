"""A real MRML scene, set up as the Slicer application would, from the ``slicer-core`` wheel.

No MRML is mocked: the scene has the application logic (with its colour logic and default colour
nodes), the segmentations logic registered as "Segmentations" (needed to create binary labelmap
representations), subject hierarchy and a terminologies logic.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "ACESegmentation"
for _path in (MODULE_DIR, Path(__file__).resolve().parent):  # as Slicer does for a module folder; helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

try:
    import slicer
    import vtk
    from vtkmodules.vtkCommonCore import vtkCollection

    SLICER_MISSING = None if hasattr(slicer, "vtkMRMLScene") else "the installed 'slicer' package is not slicer-core"
except ImportError as exc:  # pragma: no cover - slicer-core is a test dependency
    SLICER_MISSING = f"the slicer-core wheel cannot be imported ({exc}); pip install slicer-core"


@dataclass
class SlicerContext:
    scene: object
    applicationLogic: object
    segmentationsLogic: object
    terminologiesLogic: object
    subjectHierarchyLogic: object


@pytest.fixture
def slicerContext():
    """A fresh scene with the module logics the ACE Logic relies on."""
    if SLICER_MISSING:
        pytest.skip(SLICER_MISSING)
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.GetColorLogic().SetMRMLScene(scene)
    app.GetColorLogic().AddDefaultColorNodes()
    app.SetSliceLogics(vtkCollection())
    app.SetViewLogics(vtkCollection())

    shLogic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    shLogic.SetMRMLScene(scene)
    shLogic.SetMRMLApplicationLogic(app)
    app.SetModuleLogic("SubjectHierarchy", shLogic)

    segLogic = slicer.vtkSlicerSegmentationsModuleLogic()
    segLogic.SetMRMLScene(scene)
    segLogic.SetMRMLApplicationLogic(app)
    app.SetModuleLogic("Segmentations", segLogic)

    # Slicer's own terminology files are not in the wheel: an empty share folder makes the logic
    # report them missing (silenced), and the ACE terminology file is loaded explicitly by the code.
    warnings = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()
    share = tempfile.TemporaryDirectory()
    termLogic = slicer.vtkSlicerTerminologiesModuleLogic()
    termLogic.SetModuleShareDirectory(share.name)
    termLogic.SetMRMLScene(scene)
    termLogic.SetMRMLApplicationLogic(app)
    app.SetModuleLogic("Terminologies", termLogic)
    vtk.vtkObject.SetGlobalWarningDisplay(warnings)

    yield SlicerContext(scene, app, segLogic, termLogic, shLogic)
    scene.Clear(True)
    share.cleanup()
