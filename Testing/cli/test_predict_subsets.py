"""`ace predict` with a hetero-modal model: a named subset of its modalities, refusals, and old models unchanged."""

import re

import numpy as np
import pytest
from factory import make_tiny_task

from ACELib.cli.main import main
from ACELib.data.contract import list_cases, read_dataset_info
from ACELib.io.image import read_image
from ACELib.labels import load_task
from ACELib.training import TrainConfig, train

CFG = TrainConfig(loss="ace", iterations=2, batch_size=2, patch_size=8, base_channels=2, depth=2,
                  validation_interval=10, checkpoint_interval=10, device="cpu", hetero_modal=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    task = load_task(make_tiny_task(root, n_anatomy=1, n_lesion=1, n_test=1, shape=(12, 12, 12),
                                    anatomy_modalities=("T1",)))
    model = train(task, root / "run", CFG).model_path
    folder = task.dataset_path(task.dataset("test"))
    case = list_cases(folder, read_dataset_info(folder))[0]
    return model, case.image_paths  # (T1 file, FLAIR file)


def test_a_named_subset_is_segmented_and_the_missing_ones_are_reported(setup, tmp_path, capsys):
    model, (t1, flair) = setup
    out = tmp_path / "seg.nii.gz"
    assert main(["predict", "--model", str(model), "--modalities", "T1", "--images", str(t1),
                 "--out", str(out), "--device", "cpu"]) == 0
    assert "lacks the modalities FLAIR" in capsys.readouterr().out
    labels, geom = read_image(out)
    _, ref_geom = read_image(t1)
    assert labels.shape == ref_geom.shape and not geom.differences(ref_geom)


def test_the_order_of_named_inputs_does_not_matter(setup, tmp_path):
    model, (t1, flair) = setup
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert main(["predict", "--model", str(model), "--modalities", "T1", "FLAIR", "--images", str(t1), str(flair),
                 "--out", str(a), "--device", "cpu"]) == 0
    assert main(["predict", "--model", str(model), "--modalities", "FLAIR", "T1", "--images", str(flair), str(t1),
                 "--out", str(b), "--device", "cpu"]) == 0
    assert np.array_equal(read_image(a)[0], read_image(b)[0])


@pytest.mark.parametrize("names, match", [
    (["T2"], r"--modalities: unknown \['T2'\]"),
    (["T1", "T1"], "repeats"),
])
def test_unknown_or_repeated_modalities_are_refused(setup, tmp_path, capsys, names, match):
    model, (t1, _) = setup
    code = main(["predict", "--model", str(model), "--modalities", *names, "--images", *[str(t1)] * len(names),
                 "--out", str(tmp_path / "x.nii.gz"), "--device", "cpu"])
    assert code != 0
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x.nii.gz").exists()


def test_fewer_unnamed_inputs_ask_for_names(setup, tmp_path, capsys):
    model, (t1, _) = setup
    code = main(["predict", "--model", str(model), "--images", str(t1), "--out", str(tmp_path / "x.nii.gz"),
                 "--device", "cpu"])
    assert code != 0 and "name the modality of each input with --modalities" in capsys.readouterr().err


def test_an_empty_modality_list_is_refused_by_the_parser(setup, tmp_path):
    model, (t1, _) = setup
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(model), "--modalities", "--images", str(t1), "--out", str(tmp_path / "x.nii.gz")])
