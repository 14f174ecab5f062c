"""Scenario datasets on disk: task file, dataset contract, label sets, geometry, reproducibility, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ACELib.cli.main import main
from ACELib.data.contract import list_cases, read_dataset_info
from ACELib.labels import load_task
from ACELib.phantoms import SCENARIOS, get_scenario, make_scenario, scenario_subject, scenario_task

TINY_SPACING = 8.0  # the conftest template's, so that every scenario reuses the cached template
COUNTS = (2, 2, 1)
EXPECTED = {  # dataset -> (modalities, label values allowed in its label maps)
    "wmh": {"anatomy": (("T1", "FLAIR"), {0, 1, 2, 3}), "lesion": (("T1", "FLAIR"), {0, 1}),
            "test": (("T1", "FLAIR"), {0, 1, 2, 3, 4})},
    "tumor": {"anatomy": (("T1",), {0, 1, 2, 3}), "lesion": (("T1", "T1c", "T2", "FLAIR"), {0, 1, 2}),
              "test": (("T1", "T1c", "T2", "FLAIR"), {0, 1, 2, 3, 4, 5})},
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory, template):
    assert template.spacing == TINY_SPACING
    out = {}
    for name in SCENARIOS:
        root = tmp_path_factory.mktemp(name)
        calls = []
        task_file = make_scenario(name, root / "out", spacing=TINY_SPACING, counts=COUNTS, seed=5,
                                  progress=lambda d, t, m, calls=calls: calls.append((d, t, m)))
        out[name] = (task_file, calls)
    return out


def _read_all(task_file):
    task = load_task(task_file)
    data = {}
    for ds in task.datasets:
        folder = task.dataset_path(ds)
        data[ds.name] = [(c.name, *c.read()) for c in list_cases(folder)]
    return task, data


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_task_file_and_datasets_follow_the_contract(generated, template, scenario):
    task_file, _ = generated[scenario]
    task, data = _read_all(task_file)
    assert task.name == scenario
    assert [ds.name for ds in task.datasets] == ["anatomy", "lesion", "test"]
    assert [ds.role for ds in task.datasets] == ["train", "train", "test"]
    assert task.input_modalities == (("T1", "FLAIR") if scenario == "wmh" else ("T1",))
    for ds, count in zip(task.datasets, COUNTS):
        modalities, allowed = EXPECTED[scenario][ds.name]
        info = read_dataset_info(task.dataset_path(ds))
        assert info.channel_names == modalities == ds.modalities
        assert set(info.labels.values()) == allowed
        assert len(data[ds.name]) == count
        for name, image, label, geom in data[ds.name]:
            assert image.shape == (len(modalities), *template.shape)
            assert geom.differences(template.geometry) == []
            assert set(np.unique(label)) <= allowed, f"{ds.name}/{name} carries labels of another dataset"
            assert np.all(np.isfinite(image)) and image.min() >= 0


def test_wmh_task_widens_white_matter_of_the_anatomy_dataset(generated):
    task = load_task(generated["wmh"][0])
    assert dict(task.dataset("anatomy").widen) == {"WM": ("WMH",)}
    assert dict(task.dataset("lesion").labels) == {1: "WMH"}
    assert task.label_names == ("background", "CSF", "GM", "WM", "WMH")
    tumor = load_task(generated["tumor"][0])
    assert tumor.label_names == ("background", "CSF", "GM", "WM", "edema", "tumor")
    assert dict(tumor.dataset("anatomy").widen) == {}


def test_anatomy_lesions_are_labelled_as_tissue(generated):
    """The WMH anatomy subjects carry lesions, but their label files hold the tissue they sit in (WM)."""
    task_file, _ = generated["wmh"]
    _, data = _read_all(task_file)
    hidden = 0
    for i, (_, _, label, _) in enumerate(data["anatomy"]):
        subject = scenario_subject("wmh", "anatomy", i, spacing=TINY_SPACING, seed=5)
        np.testing.assert_array_equal(label, subject.tissue)
        assert np.all(label[subject.lesion == 1] == 3)
        hidden += int((subject.lesion == 1).sum())
    assert hidden > 0


def test_scenario_subject_is_the_written_case(generated):
    _, data = _read_all(generated["tumor"][0])
    name, image, label, _ = data["test"][0]
    subject = scenario_subject("tumor", "test", 0, spacing=TINY_SPACING, seed=5)
    np.testing.assert_array_equal(image, subject.stack(("T1", "T1c", "T2", "FLAIR")))
    np.testing.assert_array_equal(label, subject.joint)
    with pytest.raises(ValueError, match=r"dataset must be one of \['anatomy', 'lesion', 'test', 'shifted'\]"):
        scenario_subject("tumor", "train", 0, spacing=TINY_SPACING)
    with pytest.raises(ValueError, match="case must be a non-negative integer"):
        scenario_subject("tumor", "test", -1, spacing=TINY_SPACING)


def test_test_set_has_joint_labels(generated):
    _, data = _read_all(generated["tumor"][0])
    labels = set().union(*(set(np.unique(lab)) for _, _, lab, _ in data["test"]))
    assert {1, 2, 3, 5} <= labels
    _, data = _read_all(generated["wmh"][0])
    assert 4 in set().union(*(set(np.unique(lab)) for _, _, lab, _ in data["test"]))


def test_progress_reports_every_case(generated):
    _, calls = generated["wmh"]
    total = sum(COUNTS)
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert all(c[1] == total for c in calls)
    assert "Dataset001_WMHAnatomy" in calls[0][2]


def test_same_seed_same_files_other_seed_other_files(generated, tmp_path, template):
    counts = (1, 1, 1)
    first = _read_all(make_scenario("wmh", tmp_path / "a", spacing=TINY_SPACING, counts=counts, seed=9))[1]
    again = _read_all(make_scenario("wmh", tmp_path / "b", spacing=TINY_SPACING, counts=counts, seed=9))[1]
    other = _read_all(make_scenario("wmh", tmp_path / "c", spacing=TINY_SPACING, counts=counts, seed=10))[1]
    for ds in ("anatomy", "lesion", "test"):
        (_, img_a, lab_a, _), (_, img_b, lab_b, _), (_, img_c, _, _) = first[ds][0], again[ds][0], other[ds][0]
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_array_equal(lab_a, lab_b)
        assert not np.array_equal(img_a, img_c)


def test_test_set_intensities_are_shifted_from_training(generated):
    """Each dataset has its own scanner (the multi-domain shift)."""
    record = json.loads((generated["wmh"][0].parent / "phantoms.json").read_text())
    scanners = [record["datasets"][d]["scanner"] for d in ("anatomy", "lesion", "test")]
    assert len({s["gain"] for s in scanners}) == 3
    assert scanners[0]["contrast"] != scanners[2]["contrast"]


@pytest.mark.slow  # two spawned processes each load the template
def test_worker_processes_write_the_same_cases(generated, tmp_path):
    parallel = make_scenario("tumor", tmp_path / "p", spacing=TINY_SPACING, counts=COUNTS, seed=5, workers=2)
    serial = _read_all(generated["tumor"][0])[1]
    for ds, cases in _read_all(parallel)[1].items():
        for (name_a, img_a, lab_a, _), (name_b, img_b, lab_b, _) in zip(cases, serial[ds]):
            assert name_a == name_b
            np.testing.assert_array_equal(img_a, img_b)
            np.testing.assert_array_equal(lab_a, lab_b)
    record_a = json.loads((parallel.parent / "phantoms.json").read_text())
    record_b = json.loads((generated["tumor"][0].parent / "phantoms.json").read_text())
    assert record_a == record_b


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"workers": 0}, "workers must be a positive integer"),
    ({"scenario": "wmhh"}, r"scenario must be one of \['tumor', 'wmh'\], got 'wmhh'"),
    ({"counts": (1, 2)}, r"counts must be three integers >= 1 \(anatomy, lesion, test\)"),
    ({"counts": (1, 0, 1)}, "counts must be three integers >= 1"),
    ({"counts": 3}, "counts must be three integers"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": 1.5}, "seed must be a non-negative integer"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, match):
    args = {"scenario": "wmh", "counts": (1, 1, 1), **kwargs}
    with pytest.raises(ValueError, match=match):
        make_scenario(args.pop("scenario"), tmp_path / "out", spacing=TINY_SPACING, **args)
    assert not (tmp_path / "out").exists()


def test_existing_output_is_refused_unless_overwrite(tmp_path, template):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not empty; choose another folder or overwrite"):
        make_scenario("wmh", out, spacing=TINY_SPACING, counts=(1, 1, 1))
    task_file = make_scenario("wmh", out, spacing=TINY_SPACING, counts=(1, 2, 1), overwrite=True)
    task_file = make_scenario("wmh", out, spacing=TINY_SPACING, counts=(1, 1, 1), overwrite=True)
    task = load_task(task_file)
    assert len(list_cases(task.dataset_path(task.dataset("lesion")))) == 1  # old cases are gone
    assert (out / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is not a folder"):
        make_scenario("wmh", tmp_path / "file", spacing=TINY_SPACING, counts=(1, 1, 1), overwrite=True)


def test_scenario_task_without_writing():
    task = scenario_task("tumor")
    assert task.dataset("test").modalities == ("T1", "T1c", "T2", "FLAIR")
    assert get_scenario("wmh").counts == (5, 60, 7) and get_scenario("tumor").counts == (15, 50, 20)


def test_cli_writes_a_scenario(tmp_path, template, capsys):
    out = tmp_path / "cli"
    rc = main(["phantoms", "--scenario", "tumor", "--out", str(out), "--spacing", str(TINY_SPACING),
               "--counts", "1", "1", "1", "--seed", "2"])
    captured = capsys.readouterr()
    assert rc == 0
    assert f"task file: {out / 'task.json'}" in captured.out
    assert "phantoms tumor" in captured.err
    assert load_task(out / "task.json").name == "tumor"
    rc = main(["phantoms", "--scenario", "tumor", "--out", str(out), "--spacing", str(TINY_SPACING)])
    assert rc == 2 and "is not empty" in capsys.readouterr().err
    rc = main(["phantoms", "--scenario", "glioma", "--out", str(tmp_path / "x")])
    assert rc == 2 and "scenario must be one of ['tumor', 'wmh']" in capsys.readouterr().err
