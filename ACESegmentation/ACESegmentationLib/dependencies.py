"""Python packages ACELib needs inside Slicer, installed on first Apply (never at import).

* torch comes from the PyTorch extension (``PyTorchUtilsLogic().installTorch``), which picks the
  CUDA build that fits the driver, after asking the user;
* nibabel comes from PyPI through Slicer's pip helpers, after asking;
* numpy and SimpleITK ship with Slicer and are never installed or replaced here.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

TORCH_REQUIREMENT = ">=2.1"
#: package import name -> pip requirement, for what Slicer does not ship (torch is handled apart).
PIP_REQUIREMENTS = {"nibabel": "nibabel>=4.0"}
#: packages that belong to Slicer itself: checked, never installed.
SLICER_PROVIDED = ("numpy", "SimpleITK")


class DependencyError(RuntimeError):
    """A package ACELib needs is missing and could not (or may not) be installed."""


def isInstalled(name: str) -> bool:
    """True if ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None


def missingPackages() -> list[str]:
    """Import names of the packages that are missing, torch included."""
    names = ["torch", *PIP_REQUIREMENTS, *SLICER_PROVIDED]
    return [name for name in names if not isInstalled(name)]


def ensureTorch(pytorchUtils=None) -> None:
    """Install torch through the PyTorch extension if it is missing (the extension asks the user).

    Args:
        pytorchUtils: the ``PyTorchUtils`` module (imported when None).

    Raises:
        DependencyError: the PyTorch extension is not installed, or the user declined.
    """
    if isInstalled("torch"):
        return
    if pytorchUtils is None:
        try:
            pytorchUtils = importlib.import_module("PyTorchUtils")
        except ModuleNotFoundError:
            raise DependencyError(
                "PyTorch is needed: install the 'PyTorch' extension from the Extensions Manager, restart "
                "Slicer and click Apply again"
            ) from None
    torch = pytorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True,
                                                         torchVersionRequirement=TORCH_REQUIREMENT)
    if torch is None:
        raise DependencyError("PyTorch was not installed (cancelled); it is needed to run a model")


def _slicerPipEnsure():
    """``slicer.packaging.pip_ensure`` (Slicer >= 5.12: asks, installs, offers a restart) or None.

    ``slicer.packaging`` is a submodule that ``import slicer`` does not load: it is imported explicitly.
    """
    try:
        packaging = importlib.import_module("slicer.packaging")
    except ImportError:
        return None
    return getattr(packaging, "pip_ensure", None)


def ensurePipPackages(confirm: Callable[[str], bool], install: Callable[[list[str]], None] | None = None) -> None:
    """Install the missing PyPI packages of :data:`PIP_REQUIREMENTS`, asking first.

    Args:
        confirm: ``confirm(message) -> bool``, asked before downloading (unless Slicer's
            ``pip_ensure`` asks itself).
        install: ``install(requirements)``; default: Slicer's ``pip_ensure`` or ``slicer.util.pip_install``.

    Raises:
        DependencyError: the user declined, installing failed, or a package of Slicer itself is missing.
    """
    broken = [name for name in SLICER_PROVIDED if not isInstalled(name)]
    if broken:
        raise DependencyError(f"{broken} should ship with Slicer but cannot be imported; reinstall Slicer")
    missing = [req for name, req in PIP_REQUIREMENTS.items() if not isInstalled(name)]
    if not missing:
        return
    pipEnsure = _slicerPipEnsure() if install is None else None
    if pipEnsure is not None:
        pipEnsure(missing, requester="ACE Segmentation")
    else:
        if not confirm(f"ACE Segmentation needs these Python packages: {', '.join(missing)}.\n"
                       "Download and install them now (a few MB)?"):
            raise DependencyError(f"{missing} were not installed (cancelled); they are needed to run a model")
        if install is None:
            import slicer.util

            install = slicer.util.pip_install
        install(missing)
    importlib.invalidate_caches()
    still = [name for name in PIP_REQUIREMENTS if not isInstalled(name)]
    if still:
        raise DependencyError(f"{still} could not be installed; see the Python console for pip's messages")


def ensureDependencies(confirm: Callable[[str], bool], pytorchUtils=None,
                       install: Callable[[list[str]], None] | None = None) -> None:
    """Make torch and ACELib's other packages importable, asking before any download."""
    ensureTorch(pytorchUtils)
    ensurePipPackages(confirm, install)
    logger.info("ACE Segmentation dependencies are available")
