"""Behaviour of the module that only shows inside the Slicer application, reproduced here: Slicer 5.8's
Python 3.9, the model choice after a scene close, ``slicer.packaging`` being a submodule,
``downloadFile`` returning False, ``tryWithErrorDisplay`` re-raising, the terminology at startup, and
user-visible strings through ``_()``."""

from __future__ import annotations

import ast
import contextlib
import importlib
import re
import sys
import types
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")
import qt_standins  # noqa: E402
from ACESegmentationLib import compat, dependencies, models  # noqa: E402
from ACESegmentationLib.logic import ACESegmentationLogic  # noqa: E402
from ACESegmentationLib.terminology import TERMINOLOGY_CONTEXT  # noqa: E402

MODULE = Path(__file__).resolve().parents[2] / "ACESegmentation"
GUI = [MODULE / "ACESegmentation.py", *(MODULE / "ACESegmentationLib").glob("gui_*.py")]


def _evaluatedUnions(path: Path) -> list[str]:
    """``X | Y`` annotations that Python 3.9 evaluates (function signatures, class bodies) and rejects."""
    tree = ast.parse(path.read_text())
    if any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
           for n in tree.body):
        return []
    found = []
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            annotations = [a.annotation for a in args if a.annotation is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in filter(None, annotations):
            if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation)):
                found.append(f"{path.name}:{annotation.lineno}")
    return found


@pytest.mark.parametrize("path", [MODULE / "ACESegmentation.py", MODULE / "ACESegmentationLib" / "compat.py",
                                  MODULE / "ACESegmentationLib" / "i18n.py"], ids=lambda p: p.name)
def test_what_slicer_58_imports_first_has_no_python_310_annotation(path):
    assert _evaluatedUnions(path) == []


@pytest.mark.parametrize(("python", "segment", "expected"), [
    ((3, 9), None, "needs Slicer 5.10 or later \\(Python 3.10\\); this Slicer embeds Python 3.9"),
    ((3, 12), type("OldSegment", (), {}), "SetTerminology is missing"),
])
def test_old_slicer_is_refused_with_a_reason(python, segment, expected):
    assert re.search(expected, compat.unsupportedReason(python, segment))


def test_current_slicer_core_is_supported():
    assert compat.unsupportedReason() is None


@pytest.mark.parametrize(("stored", "expected"), [("b.safetensors", 1), ("", -1), ("gone.safetensors", -1)])
def test_model_index_of_the_parameter_node(stored, expected):
    """After ``Clear(0)`` the stored path is "": the widget then writes its shown model back."""
    entries = [models.ModelEntry("a", Path("a.safetensors")), models.ModelEntry("b", Path("b.safetensors"))]
    assert models.entryIndex(entries, stored) == expected


def test_pip_ensure_is_imported_from_the_slicer_packaging_submodule(monkeypatch):
    calls = []
    packaging = types.ModuleType("slicer.packaging")
    packaging.pip_ensure = lambda requirements, requester=None: calls.append((requirements, requester))
    monkeypatch.delattr(slicer, "packaging", raising=False)  # "import slicer" does not load it
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    monkeypatch.setattr(dependencies, "PIP_REQUIREMENTS", {"ace_missing_pkg": "ace-missing-pkg>=1"})
    with pytest.raises(dependencies.DependencyError, match="could not be installed"):
        dependencies.ensurePipPackages(confirm=lambda message: False)
    assert calls == [(["ace-missing-pkg>=1"], "ACE Segmentation")]


def test_terminology_can_be_loaded_before_any_segmentation(slicerContext):
    logic = ACESegmentationLogic(slicerContext.scene, slicerContext.segmentationsLogic,
                                 slicerContext.terminologiesLogic)
    assert logic.loadTerminology() == TERMINOLOGY_CONTEXT
    names = __import__("vtk").vtkStringArray()
    slicerContext.terminologiesLogic.GetLoadedTerminologyNames(names)
    assert TERMINOLOGY_CONTEXT in [names.GetValue(i) for i in range(names.GetNumberOfValues())]


@pytest.fixture
def segmentationPanel(monkeypatch):
    qt_standins.install(monkeypatch)
    shown = []

    @contextlib.contextmanager
    def tryWithErrorDisplay(message="", waitCursor=False):  # as Slicer's: shows, then re-raises
        try:
            yield
        except Exception as error:
            shown.append(f"{message} {error}")
            raise

    monkeypatch.setattr(slicer.util, "tryWithErrorDisplay", tryWithErrorDisplay, raising=False)
    monkeypatch.delitem(sys.modules, "ACESegmentationLib.gui_segmentation", raising=False)
    gui = importlib.import_module("ACESegmentationLib.gui_segmentation")
    button = types.SimpleNamespace(connect=lambda *a: None, enabled=True)
    ui = types.SimpleNamespace(progressBar=types.SimpleNamespace(hide=lambda: None), applyButton=button,
                               cancelButton=button, statusLabel=types.SimpleNamespace(text=""))
    widget = types.SimpleNamespace(ui=ui, logic=None, _entries=[], updates=[], torchDevice=lambda: "cpu")
    widget.updateButtons = lambda: widget.updates.append(1)
    return gui.SegmentationPanel(widget), widget, shown


def test_a_failed_download_is_an_error(segmentationPanel, monkeypatch, tmp_path):
    panel, widget, _ = segmentationPanel
    monkeypatch.setattr(slicer.util, "downloadFile", lambda *a, **k: False, raising=False)
    entry = models.ModelEntry("wmh", tmp_path / "wmh.safetensors", "ab", "bundled", "https://example.org/wmh")
    widget._entries = [entry]
    widget._parameterNode = types.SimpleNamespace(modelPath=str(entry.path))
    with pytest.raises(RuntimeError, match="could not download the model from https://example.org/wmh"):
        panel.loadModel()


def test_a_failed_apply_is_shown_and_the_buttons_are_updated(segmentationPanel, monkeypatch):
    panel, widget, shown = segmentationPanel
    monkeypatch.setattr(panel, "startSegmentation", lambda: (_ for _ in ()).throw(OSError("disk full")))
    panel.onApply()  # tryWithErrorDisplay re-raises; the panel must not
    assert shown == ["Segmentation failed. disk full"] and widget.updates and not panel.busy


def _quotedStrings(call: ast.Call) -> list[str]:
    return [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


@pytest.mark.parametrize("path", GUI, ids=lambda p: p.name)
def test_user_visible_strings_go_through_translation(path):
    """Texts given to the log, status line, labels and message boxes are ``_()`` calls, not bare literals."""
    tree = ast.parse(path.read_text())
    shown = {"appendPlainText", "log", "errorDisplay", "confirmYesNoDisplay", "showErrors", "killRun"}
    bare = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in shown:
            bare += [f"{path.name}:{node.lineno} {s!r}" for s in _quotedStrings(node)]
        if isinstance(node, ast.Assign) and any(getattr(t, "attr", None) == "text" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                bare.append(f"{path.name}:{node.lineno} {node.value.value!r}")
    assert bare == []
