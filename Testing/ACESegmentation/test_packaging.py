"""The Slicer extension's CMake files: metadata, and every Python file of ACELib and of the module listed.

Slicer copies only the files listed in CMake; a file missing there works from a source checkout and
breaks the built extension. These tests name the exact lines to add.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "ACESegmentation"


def cmakeList(text: str, name: str) -> list[str]:
    """Entries of ``set(name ...)`` in a CMake file (comments dropped, ``${MODULE_NAME}`` expanded)."""
    module = re.search(r"set\(MODULE_NAME\s+(\S+)\)", text)
    match = re.search(rf"set\({name}\s+(.*?)\)", re.sub(r"#[^\n]*", "", text), re.DOTALL)
    if match is None:
        raise AssertionError(f"no set({name} ...) in the CMake file")
    entries = match.group(1).split()
    return [e.replace("${MODULE_NAME}", module.group(1) if module else "${MODULE_NAME}") for e in entries]


def pythonFiles(folder: Path, relativeTo: Path) -> set[str]:
    return {p.relative_to(relativeTo).as_posix() for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def moduleCMake() -> str:
    return (MODULE / "CMakeLists.txt").read_text()


@pytest.fixture(scope="module")
def topCMake() -> str:
    return (REPO / "CMakeLists.txt").read_text()


@pytest.mark.parametrize(("listName", "folder", "root"), [
    ("ACELIB_PYTHON_SCRIPTS", REPO / "ACELib", REPO),
    ("MODULE_PYTHON_SCRIPTS", MODULE, MODULE),
], ids=["ACELib", "module"])
def test_every_python_file_is_listed(moduleCMake, listName, folder, root):
    listed = set(cmakeList(moduleCMake, listName))
    onDisk = pythonFiles(folder, root)
    missing = sorted(onDisk - listed)
    stale = sorted(listed - onDisk)
    assert not missing, (f"add to set({listName} ...) in ACESegmentation/CMakeLists.txt:\n  "
                         + "\n  ".join(missing))
    assert not stale, f"remove from set({listName} ...) (no such file):\n  " + "\n  ".join(stale)


@pytest.mark.parametrize(("listName", "root"), [("MODULE_PYTHON_RESOURCES", MODULE), ("ACE_SHARED_RESOURCES", REPO)])
def test_resources_exist(moduleCMake, listName, root):
    entries = cmakeList(moduleCMake, listName)
    assert entries
    assert [e for e in entries if not (root / e).is_file()] == []


def test_module_build_and_tests(moduleCMake):
    assert re.search(r"slicerMacroBuildScriptedModule\(.*WITH_GENERIC_TESTS.*?\)", moduleCMake, re.DOTALL)
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in moduleCMake


METADATA = ["EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
            "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"]


def test_extension_metadata(topCMake):
    values = {k: v.strip().strip('"') for k, v in re.findall(r"set\((EXTENSION_\w+)\s+(.*?)\)\n", topCMake)}
    assert [k for k in METADATA if not values.get(k)] == []
    assert values["EXTENSION_CATEGORY"] == "Segmentation"
    assert values["EXTENSION_DEPENDS"] == "PyTorch"
    for key in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):  # served from the repository: must exist
        path = values[key].split("/raw/main/", 1)[1]
        assert (REPO / path).is_file(), f"{key} points to {path}, which is not in the repository"
    for line in ("add_subdirectory(ACESegmentation)", "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
                 "include(${Slicer_EXTENSION_CPACK})", "find_package(Slicer REQUIRED)"):
        assert line in topCMake


def test_extensions_index_entry_matches_the_cmake_metadata(topCMake):
    import json

    entry = json.loads((REPO / "ACESegmentation.json").read_text())
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
                                       "slicer-extension-catalog-entry-schema-v1.0.1.json")
    assert entry["build_dependencies"] == ["PyTorch"] and entry["build_subdirectory"] == "."
    assert entry["category"] == "Segmentation"
    url = re.search(r'set\(ACE_REPOSITORY_URL "([^"]+)"\)', topCMake).group(1)
    assert entry["scm_url"].removesuffix(".git") == url  # one repository, set in both before submitting
    assert "SET BEFORE SUBMITTING" in topCMake


def test_minimum_slicer_version_is_declared_and_enforced(topCMake):
    from ACESegmentationLib.compat import MINIMUM_SLICER

    assert f'set(ACE_MINIMUM_SLICER_VERSION "{MINIMUM_SLICER}")' in topCMake
    assert "if(Slicer_VERSION VERSION_LESS ACE_MINIMUM_SLICER_VERSION)" in topCMake
    assert f"Slicer {MINIMUM_SLICER} or later" in (REPO / "docs" / "slicer.md").read_text()


def test_bundled_models_are_packaged(moduleCMake):
    """The models are ACELib package data: globbed by CMake (any file dropped in is installed) and listed in
    pyproject's package data, and every catalogue entry's file is there."""
    glob = re.search(r"file\(GLOB ACE_MODEL_FILES (.*?)\)", moduleCMake, re.DOTALL)
    assert glob, "no file(GLOB ACE_MODEL_FILES ...) in ACESegmentation/CMakeLists.txt"
    for pattern in ("ACELib/models/catalogue.json", "ACELib/models/*.safetensors"):
        assert pattern in glob.group(1)
    assert re.search(r"foreach\(file IN LISTS [^)]*ACE_MODEL_FILES", moduleCMake)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"ACELib.models" = \[[^]]*"catalogue.json"[^]]*"\*.safetensors"', pyproject)
    catalogue = json.loads((REPO / "ACELib" / "models" / "catalogue.json").read_text())["models"]
    assert catalogue and all((REPO / "ACELib" / "models" / m["file"]).is_file() for m in catalogue)
