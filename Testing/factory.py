"""Tiny synthetic partially labelled datasets for tests (no download, a few kB each).

Each subject is an ellipsoidal "brain": WM core, GM shell, CSF rim, with one WMH blob inside WM.
The anatomy dataset labels tissue only (its lesion is labelled WM), the lesion dataset WMH only,
and the test dataset has joint labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ACELib.data.contract import write_case, write_dataset_info
from ACELib.io.image import Geometry
from ACELib.labels import JointLabel

T1 = {0: 0.0, 1: 0.2, 2: 0.5, 3: 0.8, 4: 0.45}
FLAIR = {0: 0.0, 1: 0.1, 2: 0.6, 3: 0.5, 4: 1.0}


def oblique_direction(degrees=(20.0, -10.0, 15.0)) -> tuple[float, ...]:
    """A proper rotation (orthonormal, det +1) as a row-major 3x3 ITK direction."""
    ax, ay, az = np.radians(degrees)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return tuple(float(v) for v in (rz @ ry @ rx).ravel())


def subject(shape=(20, 24, 22), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A joint label map (0 bg, 1 CSF, 2 GM, 3 WM, 4 WMH) and its (2, D, H, W) T1/FLAIR image."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    center = rng.uniform(-0.08, 0.08, size=3)[:, None, None, None]
    radii = rng.uniform(0.8, 0.95, size=3)[:, None, None, None]
    r = np.sqrt((((grid - center) / radii) ** 2).sum(0))
    label = np.zeros(shape, np.int64)
    label[r < 0.95] = 1
    label[r < 0.8] = 2
    label[r < 0.5] = 3
    wm = np.argwhere(r < 0.35)
    c = wm[rng.integers(len(wm))]
    d = np.sqrt(((np.indices(shape) - c[:, None, None, None]) ** 2).sum(0))
    label[(d < 2.2) & (label == 3)] = 4
    image = np.stack([np.vectorize(t.get)(label) for t in (T1, FLAIR)]).astype(np.float32)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return label, image


def make_tiny_task(root, n_anatomy=3, n_lesion=3, n_test=2, shape=(20, 24, 22), seed=0,
                   direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), anatomy_modalities=("T1", "FLAIR")) -> Path:
    """Write anatomy/lesion/test datasets and ``task.json`` under ``root``; return the task path.

    ``anatomy_modalities=("T1",)`` makes a hetero-modal task: the anatomy dataset has T1 only, the
    lesion and test datasets T1 and FLAIR (and the task declares no modalities).
    """
    root = Path(root)
    geom = Geometry(tuple(reversed(shape)), (1.5, 1.2, 2.0), (10.0, -20.0, 5.0), tuple(float(v) for v in direction))
    specs = {"anatomy": ({"background": 0, "CSF": 1, "GM": 2, "WM": 3}, n_anatomy),
             "lesion": ({"background": 0, "WMH": 1}, n_lesion),
             "test": ({"background": 0, "CSF": 1, "GM": 2, "WM": 3, "WMH": 4}, n_test)}
    k = seed * 1000
    mods = {"anatomy": list(anatomy_modalities), "lesion": ["T1", "FLAIR"], "test": ["T1", "FLAIR"]}
    for name, (labels, n) in specs.items():
        folder = root / name
        write_dataset_info(folder, mods[name], labels, n)
        for i in range(n):
            joint, image = subject(shape, seed=k)
            k += 1
            if name == "anatomy":
                lab = np.where(joint == 4, 3, joint)
            elif name == "lesion":
                lab = (joint == 4).astype(np.int64)
            else:
                lab = joint
            image = image[[("T1", "FLAIR").index(m) for m in mods[name]]]
            write_case(folder, f"{name}_{i:03d}", image, geom, lab)
    task = {
        "name": "tiny",
        "labels": [{"name": "background", "value": 0, "color": "#000000"},
                   {"name": "CSF", "value": 1, "color": "#4682b4"},
                   {"name": "GM", "value": 2, "color": "#dcb48c"},
                   {"name": "WM", "value": 3, "color": "#f5f5f5"},
                   {"name": "WMH", "value": 4, "color": "#ff3232"}],
        "datasets": [
            {"name": "anatomy", "path": "anatomy", "modalities": mods["anatomy"],
             "labels": {"1": "CSF", "2": "GM", "3": "WM"}, "widen": {"WM": ["WMH"]}},
            {"name": "lesion", "path": "lesion", "modalities": ["T1", "FLAIR"], "labels": {"1": "WMH"}},
            {"name": "test", "path": "test", "modalities": ["T1", "FLAIR"],
             "labels": {"1": "CSF", "2": "GM", "3": "WM", "4": "WMH"}, "role": "test"},
        ],
    }
    path = root / "task.json"
    path.write_text(json.dumps(task, indent=2))
    return path


WMH_LABELS = (
    JointLabel("background", 0, (0, 0, 0)),
    JointLabel("CSF", 1, (70, 130, 180)),
    JointLabel("GM", 2, (220, 180, 140)),
    JointLabel("WM", 3, (245, 245, 245)),
    JointLabel("WMH", 4, (255, 50, 50)),
)
"""The joint labels of the tissue + WMH task, as the tests use them."""


def add_synth_maps(task) -> dict[str, np.ndarray]:
    """Write a generator label map (``synthTr``) beside every training case's label file, on its grid,
    with no symmetry that could hide a flip. Returns case name -> the stored ``(D, H, W)`` int16 map."""
    from ACELib.data.contract import SYNTH_FOLDER
    from ACELib.io.image import read_image, write_image

    stored = {}
    for ds in task.train_datasets:
        labels = task.dataset_path(ds) / "labelsTr"
        (labels.parent / SYNTH_FOLDER).mkdir(exist_ok=True)
        for path in sorted(labels.glob("*.nii.gz")):
            label, geom = read_image(path)
            synth = (np.arange(label.size, dtype=np.int16).reshape(label.shape) % 7).astype(np.int16)
            write_image(labels.parent / SYNTH_FOLDER / path.name, synth, geom)
            stored[path.name.removesuffix(".nii.gz")] = synth
    return stored


def load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stop_and_resume(task, run_dir, config, stop_after: int = 3):
    """Train ``config`` in ``run_dir``, stopped after ``stop_after`` steps, then resumed to the end;
    returns the resumed run's last weights (a state dict)."""
    from ACELib.inference import read_model_file
    from ACELib.training import train

    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > stop_after

    assert train(task, run_dir, config, should_stop=stop).status == "stopped"
    resumed = train(task, run_dir, config, resume=True)
    return read_model_file(resumed.last_model_path)[1][0].state_dict()
