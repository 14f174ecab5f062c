"""benchmarks/any_contrast.py: one image of each contrast per test case, for any-contrast and other models."""

import pytest
from factory import load_benchmark, make_tiny_task

from ACELib.inference import load_model
from ACELib.inference.predict import cases_in_folder
from ACELib.labels import load_task
from ACELib.metrics import read_evaluation
from ACELib.training import TrainConfig, train

CFG = TrainConfig(loss="ace", iterations=2, batch_size=2, patch_size=8, base_channels=2, depth=2,
                  validation_interval=5, checkpoint_interval=5, device="cpu", validation_fraction=0.0)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("any_contrast")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("acb")
    task_path = make_tiny_task(root, n_anatomy=2, n_lesion=2, n_test=2, shape=(12, 12, 12),
                               anatomy_modalities=("T1",))
    task = load_task(task_path)
    anyc = train(task, root / "any", CFG.with_changes(any_contrast=True)).model_path
    t1 = train(task, root / "t1", CFG).model_path
    return task_path, task, anyc, t1


def test_each_model_gets_the_contrast_under_the_name_it_takes(bench, setup):
    _, task, anyc, t1 = setup
    from ACELib.benchmark.testset import test_folders

    cases = cases_in_folder(test_folders(task)[0])
    assert bench.model_input(cases, "FLAIR", load_model(anyc, device="cpu"))[0].modalities == ("FLAIR",)
    renamed = bench.model_input(cases, "FLAIR", load_model(t1, device="cpu"))
    assert renamed[0].modalities == ("T1",) and renamed[0].image_paths[0].name.endswith("_0001.nii.gz")


def test_writes_a_table_per_contrast_and_keeps_it_on_rerun(bench, setup, tmp_path, capsys):
    task_path, task, anyc, t1 = setup
    out = tmp_path / "res"
    argv = ["--task", str(task_path), "--out", str(out), "--model", f"any={anyc}", "--model", f"t1={t1}"]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    for name in ("any", "t1"):
        for contrast in ("T1", "FLAIR"):
            csv = out / "evaluation" / "test" / f"{name}@{contrast}_seed0.csv"
            rows = read_evaluation(csv)
            assert len(rows) == 2 * 4  # two test cases, four foreground labels
            assert f"| {name} | {contrast} | 0 |" in printed
    stamp = (out / "evaluation" / "test" / "any@T1_seed0.csv").stat().st_mtime_ns
    assert bench.main(argv) == 0
    assert (out / "evaluation" / "test" / "any@T1_seed0.csv").stat().st_mtime_ns == stamp


def test_a_bad_model_argument_is_named(bench, setup, tmp_path):
    task_path = setup[0]
    with pytest.raises(ValueError, match="NAME=PATH"):
        bench.main(["--task", str(task_path), "--out", str(tmp_path), "--model", "nopath"])
