"""`ace models`: the bundled models: name, modalities, labels, size, SHA-256 and measured Dice."""

from __future__ import annotations

from ACELib.inference.model_schema import ANY_CONTRAST, ANY_SUBSET
from ACELib.models import BundledModel, bundled_models

NAME = "models"
HELP = "list the bundled models (use one with `ace predict --model NAME`)"
DESCRIPTION = ("List the models shipped with ACELib: the name to give `ace predict --model`, the inputs "
               "(modalities, in order), the labels, the file size and SHA-256 (verified whenever a bundled "
               "model is loaded) and the Dice measured on the phantom test set of its scenario.")


TEST_SET_NAMES = {"test": "joint test set", "shifted": "shifted-scanner test set"}
"""How `ace models` names the phantom test sets of a catalogue entry's ``contrast_test_dice``."""


def add_arguments(p) -> None:
    p.add_argument("--verify", action="store_true", help="also compute each file's SHA-256 and compare it")


def _subset_note(rule, modalities=()) -> str:
    """How many of its modalities a model needs, from its catalogue entry's ``modality_subsets``."""
    if list(modalities) == [ANY_CONTRAST]:
        return "  (one image of any contrast: T1, T1c, T2, FLAIR...)"
    if rule == ANY_SUBSET:
        return "  (any non-empty subset: `ace predict --modalities`)"
    if isinstance(rule, list) and rule:
        return "  (or one of the subsets " + ", ".join("+".join(s) for s in rule) + ")"
    return ""


def describe(model: BundledModel, verify: bool = False) -> list[str]:
    """The lines `ace models` prints for one model."""
    size = model.size_bytes
    dice = ", ".join(f"{k} {float(v):.3f}" for k, v in model.dice.items()) or "not measured"
    lines = [
        f"{model.id}  {model.name}",
        f"  modalities  {', '.join(model.modalities) or '?'}" + _subset_note(model.info.get("modality_subsets"), model.modalities),
        f"  labels      {', '.join(model.labels) or '?'}",
        f"  size        {'missing file ' + str(model.path) if size is None else f'{size / 1024:.0f} kB'}",
        f"  SHA-256     {model.sha256}",
        f"  Dice        {dice}" + (" (phantom test set)" if model.dice else ""),
    ]
    shifted = model.info.get("shifted_test_dice")
    if shifted:
        lines.append("  Dice        " + ", ".join(f"{k} {float(v):.3f}" for k, v in shifted.items())
                     + " (shifted-scanner, skull-on, thick-slice test set)")
    for test, by_contrast in (model.info.get("contrast_test_dice") or {}).items():
        for contrast, values in by_contrast.items():
            lines.append(f"  Dice        {contrast} image alone: " + ", ".join(f"{k} {float(v):.3f}" for k, v in values.items())
                         + f" ({TEST_SET_NAMES.get(test, test + ' test set')})")
    if verify and size is not None:
        from ACELib.inference.model_file import sha256_of

        ok = sha256_of(model.path) == model.sha256
        lines.append(f"  verified    {'ok' if ok else 'MISMATCH: the file is not the published one'}")
    return lines


def run(args) -> int:
    models = bundled_models()
    if not models:
        print("no bundled models")
        return 0
    bad = 0
    for i, model in enumerate(models):
        lines = describe(model, args.verify)
        bad += any("MISMATCH" in line or "missing file" in line for line in lines)
        print(("\n" if i else "") + "\n".join(lines))
    return 1 if bad else 0
