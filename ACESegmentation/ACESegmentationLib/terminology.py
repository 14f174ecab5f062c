"""SNOMED CT terminology of the joint labels (pure Python: no Slicer import).

Codes are those of Slicer's own terminology lists (General Anatomy list and DICOM master list), so that
segments read the same as those made with Slicer's terminology selector; they are also shipped in
``Resources/Terminology/ACESegmentation.term.json`` so that Slicer can show and pick them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TERMINOLOGY_CONTEXT = "Segmentation category and type - ACE Segmentation"
TERMINOLOGY_FILE = "ACESegmentation.term.json"


@dataclass(frozen=True)
class Code:
    """One coded concept (DICOM triplet)."""

    scheme: str
    value: str
    meaning: str

    def serialize(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


ANATOMICAL_STRUCTURE = Code("SCT", "123037004", "Anatomical Structure")
ALTERED_STRUCTURE = Code("SCT", "49755003", "Morphologically Altered Structure")

#: label kind -> (category, type); the codes appear in Slicer's General Anatomy and DICOM master lists.
SEGMENT_CODES: dict[str, tuple[Code, Code]] = {
    "csf": (ANATOMICAL_STRUCTURE, Code("SCT", "280371009", "Brain cerebrospinal fluid pathway")),
    "gm": (ANATOMICAL_STRUCTURE, Code("SCT", "389081007", "Gray Matter")),
    "wm": (ANATOMICAL_STRUCTURE, Code("SCT", "389080008", "White Matter")),
    "wmh": (ALTERED_STRUCTURE, Code("SCT", "52988006", "Lesion")),
    "edema": (ALTERED_STRUCTURE, Code("SCT", "79654002", "Edema")),
    "tumor": (ALTERED_STRUCTURE, Code("SCT", "108369006", "Neoplasm")),
}

#: lower-case joint label names recognised for each label kind.
LABEL_ALIASES: dict[str, str] = {
    "csf": "csf", "cerebrospinal fluid": "csf",
    "gm": "gm", "grey matter": "gm", "gray matter": "gm",
    "wm": "wm", "white matter": "wm",
    "wmh": "wmh", "white matter hyperintensity": "wmh", "white matter hyperintensities": "wmh", "lesion": "wmh",
    "edema": "edema", "oedema": "edema", "ed": "edema",
    "tumor": "tumor", "tumour": "tumor", "tumor core": "tumor", "tumour core": "tumor", "tc": "tumor",
    "neoplasm": "tumor",
}


def labelKind(name: str) -> str | None:
    """The label kind (key of :data:`SEGMENT_CODES`) of a joint label name, or None if unknown."""
    return LABEL_ALIASES.get(name.strip().lower())


def terminologyForLabel(name: str) -> str | None:
    """Slicer's serialised terminology entry for a joint label name, or None for unknown labels.

    The format is Slicer's: ``context~category~type~typeModifier~regionContext~region~regionModifier``.
    """
    kind = labelKind(name)
    if kind is None:
        return None
    category, segmentType = SEGMENT_CODES[kind]
    return f"{TERMINOLOGY_CONTEXT}~{category.serialize()}~{segmentType.serialize()}~^^~~^^~^^"


def terminologyFilePath() -> Path:
    """The terminology file, in a built extension (module Resources) or a source checkout.

    Raises:
        FileNotFoundError: in neither place.
    """
    moduleDir = Path(__file__).resolve().parent.parent
    candidates = [moduleDir / "Resources" / "Terminology" / TERMINOLOGY_FILE,
                  moduleDir.parent / "Resources" / "Terminology" / TERMINOLOGY_FILE]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"terminology file not found; looked in {[str(p) for p in candidates]}")
