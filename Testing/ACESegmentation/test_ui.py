"""The module's .ui file and the code that uses it, checked without the Slicer application.

The widget cannot run here (it needs Slicer's Qt), so its file is read as text: the .ui is valid XML,
every ``ui.<name>`` the code uses is a widget of the .ui, every widget bound to the parameter node
names a parameter of a type its widget can show, and the module file defines Slicer's four classes.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "ACESegmentation"
UI_FILE = MODULE / "Resources" / "UI" / "ACESegmentation.ui"
GUI_SOURCES = [MODULE / "ACESegmentation.py", MODULE / "ACESegmentationLib" / "gui_training.py",
               MODULE / "ACESegmentationLib" / "gui_segmentation.py"]
PARAMETERS = MODULE / "ACESegmentationLib" / "parameters.py"

#: widget class -> parameter types it can show (Slicer's parameterNodeWrapper GUI connectors)
CONNECTORS = {
    "qMRMLNodeComboBox": ("vtkMRML",),
    "QComboBox": ("Choice",),
    "QCheckBox": ("bool",),
    "QSpinBox": ("int",),
    "QLineEdit": ("str",),
    "ctkPathLineEdit": ("Path",),
}


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


@pytest.fixture(scope="module")
def widgets(ui) -> dict[str, str]:
    found = [(w.get("name"), w.get("class")) for w in ui.iter("widget")]
    names = [n for n, _ in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"duplicate widget names {duplicates}"
    return dict(found)


def test_ui_file_is_a_designer_form(ui, widgets):
    assert ui.tag == "ui" and ui.get("version") == "4.0"
    assert ui.findtext("class") == "ACESegmentation"
    assert widgets["ACESegmentation"] == "qMRMLWidget"
    declared = {c.findtext("class") for c in ui.iter("customwidget")}
    custom = {cls for cls in widgets.values() if not cls.startswith("Q")}
    assert custom <= declared, f"custom widgets not declared in <customwidgets>: {sorted(custom - declared)}"


def test_scene_is_passed_to_every_node_selector(ui, widgets):
    receivers = {c.findtext("receiver") for c in ui.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    selectors = {n for n, cls in widgets.items() if cls == "qMRMLNodeComboBox"}
    assert selectors and selectors == receivers


def _usedNames(source: str) -> set[str]:
    names = set(re.findall(r"\bui\.([A-Za-z_]\w*)", source))
    maxInputs = int(re.search(r"^MAX_INPUTS = (\d+)", (MODULE / "ACESegmentation.py").read_text(), re.M).group(1))
    for template in re.findall(r'getattr\(self\.ui, f"(\w*)\{i\}(\w*)"\)', source):
        names |= {f"{template[0]}{i}{template[1]}" for i in range(1, maxInputs + 1)}
    return names


@pytest.mark.parametrize("source", GUI_SOURCES, ids=lambda p: p.name)
def test_every_widget_the_code_uses_exists(widgets, source):
    used = _usedNames(source.read_text())
    assert used, f"{source.name} uses no widget"
    assert sorted(used - set(widgets)) == []


def _parameterTypes() -> dict[str, str]:
    tree = ast.parse(PARAMETERS.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ACESegmentationParameterNode")
    return {s.target.id: ast.unparse(s.annotation) for s in cls.body if isinstance(s, ast.AnnAssign)}


def test_bound_widgets_name_parameters_of_a_fitting_type(ui, widgets):
    params = _parameterTypes()
    bound = {}
    for w in ui.iter("widget"):
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[w.get("name")] = prop.findtext("string")
    assert bound, "no widget is bound to the parameter node"
    for widget, param in bound.items():
        assert param in params, f"{widget} is bound to unknown parameter {param!r}"
        kinds = CONNECTORS[widgets[widget]]
        assert any(k in params[param] for k in kinds), f"{widget} ({widgets[widget]}) cannot show {params[param]}"


def test_module_file_defines_slicers_four_classes():
    tree = ast.parse((MODULE / "ACESegmentation.py").read_text())
    classes = {n.name: [ast.unparse(b) for b in n.bases] for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes["ACESegmentation"] == ["ScriptedLoadableModule"]
    assert classes["ACESegmentationWidget"][0] == "ScriptedLoadableModuleWidget"
    assert classes["ACESegmentationTest"] == ["ScriptedLoadableModuleTest"]
    imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "ACESegmentationLogic" in imported  # re-exported from ACESegmentationLib.logic


def test_every_module_file_is_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in MODULE.rglob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 400} == {}
