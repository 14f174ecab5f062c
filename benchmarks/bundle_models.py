"""Copy the ACE models of `ace benchmark --quick` runs into ACELib/models (package data) with a catalogue.

The bundled models are networks of the benchmark trained with seed 0 and the default loss (ACE +
marginal Dice): tissue + WMH from T1 and FLAIR, tissue + edema/tumour from T1, and (when the tumour
run has the hetero-modal method) tissue + edema/tumour from any of T1, T1c, T2, FLAIR. The catalogue records, per
model, its SHA-256 (verified before loading), the command that trained it, and its Dice (mean over
test cases, from the benchmark's evaluation) on (a) the phantom joint test set of its scenario and
(b) the shifted-scanner test set (skull-on when the benchmark ran with --head, thick slices, a
contrast spread three times the training scanners').

    python benchmarks/bundle_models.py --wmh RESULTS/wmh --tumor RESULTS/tumor [--method ace+dice]
        [--hetero ace-hetero] [--any-contrast METHOD --any-eval EVAL --any-command "..."]
        [--only ENTRY ...] [--out ACELib/models]

``--only tumor-contrast`` rebuilds that entry and keeps the others of the catalogue as they are. An
any-contrast model (``ace train --any-contrast``, placed in RESULTS/tumor/runs/METHOD/seed0) is
measured by ``benchmarks/any_contrast.py`` with one image of each contrast; its entry holds those
figures as ``contrast_test_dice`` (test set -> contrast -> label -> Dice).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from ACELib.inference import read_model_file, sha256_of
from ACELib.io.atomic import atomic_write_text
from ACELib.metrics import read_evaluation

ENTRIES = {  # entry -> (id for `ace predict --model`, file, title)
    "wmh": ("wmh-t1-flair", "ace_wmh_t1_flair.safetensors", "Tissue + WMH (T1, FLAIR) - trained on phantoms"),
    "tumor": ("tumor-t1", "ace_tumor_t1.safetensors", "Tissue + tumour/edema (T1) - trained on phantoms"),
    "tumor-hetero": ("tumor-any", "ace_tumor_any.safetensors",
                     "Tissue + tumour/edema (any of T1, T1c, T2, FLAIR) - trained on phantoms"),
    "tumor-contrast": ("tumor-any-contrast", "ace_tumor_any_contrast.safetensors",
                       "Tissue + tumour/edema (one image of any contrast) - trained on phantoms"),
}


def bundle(entry: str, results: Path, out: Path, method: str = "ace+dice", seed: int = 0,
           command: str | None = None) -> dict:
    """Copy ``results/runs/<method>/seed<seed>/model.safetensors`` into ``out`` as ``entry``; its catalogue row."""
    model = results / "runs" / method / f"seed{seed}" / "model.safetensors"
    meta, _ = read_model_file(model)  # refuse anything that is not a valid model file
    dice = _mean_dice(results / "evaluation" / f"{method}_seed{seed}.csv")
    shifted_csv = results / "evaluation" / "shifted" / f"{method}_seed{seed}.csv"
    shifted = _mean_dice(shifted_csv) if shifted_csv.exists() else None
    readme = (results / "README.md").read_text().splitlines() if (results / "README.md").exists() else []
    command = command or next((line.strip() for line in readme if line.strip().startswith("ace benchmark")),
                   f"ace benchmark --scenario {entry.split('-')[0]} --profile cpu --head 0.5")
    model_id, name, title = ENTRIES[entry]
    shutil.copyfile(model, out / name)
    return {"id": model_id, "name": title, "file": name, "sha256": sha256_of(out / name),
            "scenario": entry.split("-")[0], "modality_subsets": meta.modality_subsets,
            "modalities": list(meta.modalities), "labels": [lab.name for lab in meta.labels],
            "trained_by": f"{command}  (model: runs/{method}/seed{seed}/model.safetensors)",
            "phantom_test_dice": dice, **({"shifted_test_dice": shifted} if shifted else {}),
            "training": meta.training, "simulated_training_data": True}


def bundle_any_contrast(results: Path, evaluation: Path, out: Path, method: str, command: str,
                        seed: int = 0) -> dict:
    """The catalogue row of an any-contrast model (``results/runs/<method>/seed<seed>``), with its Dice
    per test set and contrast from ``benchmarks/any_contrast.py --out evaluation`` (its ``evaluation/<test>/<method>@<contrast>_seed<k>.csv``);
    its phantom and shifted Dice are those of a T1 image."""
    model = results / "runs" / method / f"seed{seed}" / "model.safetensors"
    meta, _ = read_model_file(model)
    if meta.training.get("any_contrast") is not True:
        raise ValueError(f"{str(model)!r} was not trained with --any-contrast")
    by_contrast: dict[str, dict[str, dict[str, float]]] = {}
    for csv in sorted((evaluation / "evaluation").glob(f"*/{method}@*_seed{seed}.csv")):
        contrast = csv.name[len(method) + 1: -len(f"_seed{seed}.csv")]
        by_contrast.setdefault(csv.parent.name, {})[contrast] = _mean_dice(csv)
    for test in ("test", "shifted"):
        if "T1" not in by_contrast.get(test, {}):
            raise ValueError(f"{str(evaluation)!r} has no {test}/{method}@T1_seed{seed}.csv: run benchmarks/any_contrast.py")
    model_id, name, title = ENTRIES["tumor-contrast"]
    shutil.copyfile(model, out / name)
    return {"id": model_id, "name": title, "file": name, "sha256": sha256_of(out / name), "scenario": "tumor",
            "modality_subsets": meta.modality_subsets, "modalities": list(meta.modalities),
            "labels": [lab.name for lab in meta.labels], "trained_by": command,
            "phantom_test_dice": by_contrast["test"]["T1"], "shifted_test_dice": by_contrast["shifted"]["T1"],
            "contrast_test_dice": by_contrast, "training": meta.training, "simulated_training_data": True}


def _mean_dice(csv_path: Path) -> dict[str, float]:
    per_label: dict[str, list[float]] = {}
    for r in read_evaluation(csv_path):
        per_label.setdefault(r["label"], []).append(float(r["dice"]))
    return {k: round(float(np.mean(v)), 3) for k, v in per_label.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wmh", type=Path, help="results folder of ace benchmark --scenario wmh --quick")
    ap.add_argument("--tumor", type=Path, required=True, help="results folder of ace benchmark --scenario tumor --quick")
    ap.add_argument("--method", default="ace+dice", help="benchmark method of the single-input models")
    ap.add_argument("--wmh-method", default=None, help="folder under RESULTS/wmh/runs of the WMH model "
                    "(default: --method), e.g. a longer run placed there")
    ap.add_argument("--wmh-command", default=None, help="the command that trained it (default: the benchmark's)")
    ap.add_argument("--hetero", default=None, help="benchmark method of the hetero-modal tumour model "
                    "(e.g. ace-hetero; default: none bundled)")
    ap.add_argument("--hetero-command", default=None, help="the command that trained it (default: the benchmark's)")
    ap.add_argument("--any-contrast", metavar="METHOD", default=None,
                    help="folder under RESULTS/tumor/runs of the any-contrast tumour model (default: none bundled)")
    ap.add_argument("--any-eval", type=Path, help="with --any-contrast: the --out folder of benchmarks/any_contrast.py")
    ap.add_argument("--any-command", default="", help="with --any-contrast: the command that trained it")
    ap.add_argument("--only", nargs="+", choices=sorted(ENTRIES),
                    help="rebuild only these entries and keep the catalogue's others as they are")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "ACELib" / "models")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only or ENTRIES)
    if "wmh" in wanted and args.wmh is None:
        ap.error("--wmh is needed unless --only leaves the wmh entry out")
    if "tumor-contrast" in wanted and args.any_contrast and args.any_eval is None:
        ap.error("--any-contrast needs --any-eval (the folder of benchmarks/any_contrast.py)")
    rows = []
    if "wmh" in wanted:
        rows.append(bundle("wmh", args.wmh, args.out, args.wmh_method or args.method, command=args.wmh_command))
    if "tumor" in wanted:
        rows.append(bundle("tumor", args.tumor, args.out, args.method))
    if "tumor-hetero" in wanted and args.hetero:
        rows.append(bundle("tumor-hetero", args.tumor, args.out, args.hetero, command=args.hetero_command))
    if "tumor-contrast" in wanted and args.any_contrast:
        rows.append(bundle_any_contrast(args.tumor, args.any_eval, args.out, args.any_contrast, args.any_command))
    built = {row["id"]: row for row in rows}
    catalogue = args.out / "catalogue.json"
    kept = json.loads(catalogue.read_text())["models"] if args.only and catalogue.exists() else []
    models = [built.pop(m["id"], m) for m in kept] + list(built.values())
    atomic_write_text(args.out / "catalogue.json", json.dumps({"models": models}, indent=2) + "\n")
    for m in models:
        print(f"{m['file']}: sha256 {m['sha256']}, phantom test Dice {m.get('phantom_test_dice')}, "
              f"shifted test Dice {m.get('shifted_test_dice')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
