"""Brain phantoms on the MNI ICBM152 2009 template (shipped with nilearn): the paper's two scenarios.

Pipeline, one module per stage: :mod:`~ACELib.phantoms.template` (template on a grid),
:mod:`~ACELib.phantoms.anatomy` (subject deformation, ventricles, mass effect),
:mod:`~ACELib.phantoms.lesions` (WMH, tumour core and edema), :mod:`~ACELib.phantoms.mri`
(contrast, scanner, artefacts), :mod:`~ACELib.phantoms.subject` (one subject) and
:mod:`~ACELib.phantoms.scenarios` (datasets and task file). nilearn is imported only when a
template is first loaded.
"""

from ACELib.phantoms.mri import BASE_CONTRAST, CLASSES, MODALITIES, Scanner, draw_scanner, synthesize
from ACELib.phantoms.scenarios import (
    PROFILES,
    SCENARIOS,
    get_scenario,
    make_scenario,
    scenario_scanner,
    scenario_subject,
    scenario_task,
)
from ACELib.phantoms.subject import LESION_KINDS, LESION_VALUES, Subject, make_subject
from ACELib.phantoms.template import TISSUES, Template, load_template, nifti_to_itk

__all__ = [
    "BASE_CONTRAST",
    "CLASSES",
    "LESION_KINDS",
    "LESION_VALUES",
    "MODALITIES",
    "PROFILES",
    "SCENARIOS",
    "TISSUES",
    "Scanner",
    "Subject",
    "Template",
    "draw_scanner",
    "get_scenario",
    "load_template",
    "make_scenario",
    "make_subject",
    "nifti_to_itk",
    "scenario_scanner",
    "scenario_subject",
    "scenario_task",
    "synthesize",
]
