"""An installed copy, no checkout around: the wheel carries the bundled models and their catalogue,
`ace models` lists them and `ace predict --model NAME` segments a phantom with one of them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ACELib.models import bundled_models, find_model

REPO = Path(__file__).resolve().parents[2]


def _run(args, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """``(site folder, environment)``: the wheel built from a copy of the sources, installed with --target."""
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ACELib", src / "ACELib", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "whl"), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "whl").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    expected = {"ACELib/models/catalogue.json", "ACELib/models/__init__.py",
                *(f"ACELib/models/{m.path.name}" for m in bundled_models())}
    assert expected <= names, f"the wheel lacks {sorted(expected - names)}"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(tmp / "site"), OMP_NUM_THREADS="1")
    where = _run(["-c", "import ACELib; print(ACELib.__file__)"], tmp, env)
    assert where.stdout.strip().startswith(str(tmp / "site")), where.stdout + where.stderr
    return tmp, env


@pytest.mark.slow
def test_installed_copy_lists_the_models(installed):
    tmp, env = installed
    out = _run(["-m", "ACELib.cli.main", "models", "--verify"], tmp, env)
    assert out.returncode == 0, out.stderr
    for m in bundled_models():
        assert f"{m.id}  {m.name}" in out.stdout and m.sha256 in out.stdout
    assert out.stdout.count("verified    ok") == len(bundled_models())
    assert "Dice        CSF" in out.stdout and "modalities  T1" in out.stdout


@pytest.mark.slow
def test_installed_copy_segments_a_phantom_by_model_name(installed):
    pytest.importorskip("nilearn")
    from ACELib.inference import read_model_file
    from ACELib.io.image import read_image, write_image
    from ACELib.metrics import dice
    from ACELib.phantoms.scenarios import scenario_subject

    tmp, env = installed
    subject = scenario_subject("tumor", "test", 0, spacing=6.0, seed=11)
    write_image(tmp / "t1.nii.gz", subject.stack(("T1",))[0], subject.geometry)
    out = _run(["-m", "ACELib.cli.main", "predict", "--model", "tumor-t1", "--images", "t1.nii.gz",
                "--out", "seg.nii.gz", "--device", "cpu"], tmp, env)
    assert out.returncode == 0, out.stderr
    labels, geom = read_image(tmp / "seg.nii.gz", dtype="int64")
    assert geom.differences(subject.geometry) == []
    meta, _ = read_model_file(find_model("tumor-t1").path)
    wm = [lab.name for lab in meta.labels].index("WM")
    assert dice(labels == meta.labels[wm].value, subject.joint == wm) > 0.5
