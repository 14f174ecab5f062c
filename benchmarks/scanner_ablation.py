"""Which acquisition setting of a test scanner a model does not cope with.

The phantom cases of one dataset (by default the shifted-scanner test set) are acquired again with
ONE setting of their scanner replaced by a reference scanner's (by default the anatomy dataset's,
where the tissue labels come from); everything else, anatomy, lesions, head and labels included,
stays the same. A setting whose replacement raises a class's Dice is one the model depends on:

* ``contrast:<modality>``: that modality's class intensities; ``contrast``: all of them;
* ``noise``, ``bias`` (strength and smoothness), ``slices`` (slice thickness), ``gain+gamma``,
  ``blur``, ``jitter`` (per-subject intensity variation).

Writes ``OUT/ablation.csv`` (variant, case, label, Dice) and ``OUT/ablation.md`` (mean Dice over
cases per variant, and the change against the scanner as it is); prints the table.

    python benchmarks/scanner_ablation.py --scenario wmh --model wmh-t1-flair --head 0.5 --cases 7 \\
        --out RESULTS/ablation/wmh
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ACELib.inference import load_model
from ACELib.io.atomic import atomic_write_text
from ACELib.metrics import dice
from ACELib.models import resolve_model
from ACELib.phantoms import PROFILES, Scanner, get_scenario, scenario_scanner, scenario_subject
from ACELib.phantoms.scenarios import dataset_plans

_FIELDS = {"noise": ("noise",), "bias": ("bias_std", "bias_scale_mm"), "slices": ("slice_thickness_mm",),
           "gain+gamma": ("gain", "gamma"), "blur": ("blur_voxels",), "jitter": ("jitter",)}


def variants(scanner: Scanner, reference: Scanner, modalities: Sequence[str]) -> dict[str, Scanner]:
    """``{name: scanner}``: the scanner as it is (``as acquired``), then one setting at a time from
    ``reference`` (see the module docstring)."""
    out = {"as acquired": scanner}
    for m in modalities:
        out[f"contrast:{m}"] = dataclasses.replace(scanner, contrast={**scanner.contrast, m: reference.contrast[m]})
    if len(modalities) > 1:
        out["contrast"] = dataclasses.replace(scanner, contrast={**scanner.contrast, **{
            m: reference.contrast[m] for m in modalities}})
    for name, fields in _FIELDS.items():
        out[name] = dataclasses.replace(scanner, **{f: getattr(reference, f) for f in fields})
    return out


def ablate(model, scenario: str, dataset: str, reference: str, cases: int, spacing: float, seed: int,
           head: float) -> list[dict]:
    """Rows ``{variant, case, label, dice}`` for every variant of ``dataset``'s scanner and case."""
    plan = {p.name: p for p in dataset_plans(get_scenario(scenario), True)}.get(dataset)
    if plan is None or plan.labels != "joint":
        raise ValueError(f"--dataset must be a joint test set of {scenario!r} (test or shifted), got {dataset!r}")
    given = tuple(plan.modalities)
    if not model.metadata.accepts(given):  # e.g. a plain model of fewer modalities: give it its own
        given = tuple(model.modalities)
        missing = [m for m in given if m not in plan.modalities]
        if missing:
            raise ValueError(f"the model needs {missing}, which dataset {dataset!r} does not have {list(plan.modalities)}")
    scanners = variants(scenario_scanner(scenario, dataset, seed), scenario_scanner(scenario, reference, seed),
                        plan.modalities)
    labels = {lab.name: lab.value for lab in model.labels if lab.value != 0}
    rows = []
    for case in range(cases):
        for name, scanner in scanners.items():
            subject = scenario_subject(scenario, dataset, case, spacing=spacing, seed=seed, head=head, scanner=scanner)
            pred = model.predict(subject.stack(given), geometry=subject.geometry, modalities=given).labels
            for lab, value in labels.items():
                rows.append({"variant": name, "case": case, "label": lab,
                             "dice": dice(pred == value, subject.joint == value)})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: mean Dice over cases per variant and label, with the change against ``as acquired``."""
    labels = list(dict.fromkeys(r["label"] for r in rows))
    names = list(dict.fromkeys(r["variant"] for r in rows))
    mean = {(v, lab): float(np.nanmean([r["dice"] for r in rows if r["variant"] == v and r["label"] == lab]))
            for v in names for lab in labels}
    lines = ["| setting from the reference scanner | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for v in names:
        cells = [f"{mean[v, lab]:.3f}" + ("" if v == "as acquired" else f" ({mean[v, lab] - mean['as acquired', lab]:+.3f})")
                 for lab in labels]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write(rows: list[dict], out: Path) -> str:
    """Write ``ablation.csv`` and ``ablation.md`` into ``out`` (each replaced whole); return the table."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["variant,case,label,dice"] + [f"{r['variant']},{r['case']},{r['label']},{r['dice']:.6f}" for r in rows]
    atomic_write_text(out / "ablation.csv", "\n".join(lines) + "\n")
    md = table(rows)
    atomic_write_text(out / "ablation.md", md + "\n")
    return md


def read_rows(path: Path) -> list[dict]:
    """Rows of an ``ablation.csv``."""
    with open(path, newline="") as f:
        return [{**r, "case": int(r["case"]), "dice": float(r["dice"])} for r in csv.DictReader(f)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", required=True, choices=["wmh", "tumor"])
    p.add_argument("--model", required=True, help="model file, or the name of a bundled model")
    p.add_argument("--out", required=True, type=Path, help="folder for ablation.csv and ablation.md")
    p.add_argument("--dataset", default="shifted", help="joint test set whose scanner is ablated (default shifted)")
    p.add_argument("--reference", default="anatomy", help="dataset whose scanner gives the settings (default anatomy)")
    p.add_argument("--cases", type=int, default=7, help="cases of the dataset (default 7)")
    p.add_argument("--spacing", type=float, default=PROFILES["quick"], help="voxel size in mm (default 3, the cpu profile)")
    p.add_argument("--seed", type=int, default=0, help="the phantoms' seed (as given to ace phantoms)")
    p.add_argument("--head", type=float, default=0.0, help="as given to ace phantoms (the shifted set is skull-on when > 0)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.cases < 1:
        p.error(f"--cases must be at least 1, got {args.cases}")
    path, sha256 = resolve_model(args.model)
    model = load_model(path, device=args.device, expected_sha256=sha256)
    rows = ablate(model, args.scenario, args.dataset, args.reference, args.cases, args.spacing, args.seed, args.head)
    print(write(rows, args.out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
