import json

import numpy as np
import pytest

from ACELib.labels import (
    Task,
    TaskError,
    annotated_mask,
    candidate_labels,
    candidate_table,
    joint_index_from_values,
    load_task,
    save_task,
    to_joint,
)


def test_round_trip_json(tmp_path, wmh_task):
    path = tmp_path / "task.json"
    save_task(wmh_task, path)
    again = load_task(path)
    assert again.to_dict() == wmh_task.to_dict()
    assert again.label_names == ("background", "CSF", "GM", "WM", "WMH")
    assert again.labels[4].color == (255, 50, 50)
    assert again.input_modalities == ("T1", "FLAIR")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["datasets"][0]["labels"].update({"4": "Tumour"}), r"maps to unknown joint label 'Tumour'"),
        (lambda d: d["labels"][2].update({"value": 1}), r"duplicate label value 1"),
        (lambda d: d["labels"][2].update({"name": "CSF"}), r"duplicate label name 'CSF'"),
        (lambda d: d["datasets"][1].update({"labels": {}}), r"dataset 'lesion': annotates nothing"),
        (lambda d: d["datasets"][1].update({"modalities": []}), r"dataset 'lesion': the modality list is empty"),
        (lambda d: d["labels"].pop(0), r"labels\[0\] must be \{'name': 'background'"),
        (lambda d: d["datasets"][0].update({"widen": {"WM": ["GM"]}}), r"annotated by the dataset itself"),
        (lambda d: d["datasets"][0].update({"widen": {"WMH": ["CSF"]}}), r"widen names 'WMH', which the dataset"),
        (lambda d: d["datasets"][0].update({"role": "testing"}), r"role must be one of \['train', 'test'\]"),
        (lambda d: d.update({"modalities": ["T2"]}), r"lacks the task modalities \['T2'\]"),
        (lambda d: d["labels"][1].update({"color": "blue"}), r"is not '#rrggbb'"),
        (lambda d: d.update({"extra": 1}), r"unknown keys \['extra'\]"),
        (lambda d: d["datasets"][1].update({"labels": {"0": "WMH"}}), r"label value 0 must be > 0"),
    ],
)
def test_invalid_tasks_name_the_entry(wmh_task_dict, mutate, message):
    mutate(wmh_task_dict)
    with pytest.raises(TaskError, match=message):
        Task.from_dict(wmh_task_dict)


def test_every_problem_reported_at_once(wmh_task_dict):
    wmh_task_dict["labels"][2]["value"] = 1
    wmh_task_dict["datasets"][1]["labels"] = {}
    with pytest.raises(TaskError) as err:
        Task.from_dict(wmh_task_dict)
    assert "duplicate label value 1" in str(err.value) and "annotates nothing" in str(err.value)


def test_load_task_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_task(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TaskError, match="is not valid JSON"):
        load_task(bad)


def test_common_modalities_default(wmh_task_dict):
    wmh_task_dict["datasets"][0]["modalities"] = ["T1", "IR", "FLAIR"]
    wmh_task_dict["datasets"][1]["modalities"] = ["FLAIR", "T1"]
    assert Task.from_dict(wmh_task_dict).input_modalities == ("T1", "FLAIR")


def test_candidate_sets_default(wmh_task):
    anatomy, lesion = wmh_task.datasets
    assert annotated_mask(wmh_task, lesion).tolist() == [True, False, False, False, True]
    # a lesion dataset's background may be any tissue (or background), never a lesion
    assert candidate_labels(wmh_task, lesion, 0) == ("background", "CSF", "GM", "WM")
    assert candidate_labels(wmh_task, lesion, 1) == ("WMH",)
    # an anatomy dataset's background may be background or a label it does not annotate
    assert candidate_labels(wmh_task, anatomy, 0) == ("background", "WMH")
    assert candidate_labels(wmh_task, anatomy, 3) == ("WM",)
    table = candidate_table(wmh_task, lesion)
    assert table.shape == (5, 5) and table[1:4, 1:4].tolist() == np.eye(3, dtype=bool).tolist()
    with pytest.raises(ValueError, match="declares no label value 7"):
        candidate_labels(wmh_task, lesion, 7)


def test_candidate_sets_widened(wmh_task_dict):
    wmh_task_dict["datasets"][0]["widen"] = {"WM": ["WMH"]}
    task = Task.from_dict(wmh_task_dict)
    assert candidate_labels(task, task.datasets[0], 3) == ("WM", "WMH")
    assert candidate_labels(task, task.datasets[0], 2) == ("GM",)


def test_all_annotated_background_is_background_only(wmh_task_dict):
    wmh_task_dict["datasets"][0]["labels"]["4"] = "WMH"
    task = Task.from_dict(wmh_task_dict)
    assert candidate_labels(task, task.datasets[0], 0) == ("background",)


def test_to_joint(wmh_task):
    lesion = wmh_task.datasets[1]
    joint, ann = to_joint(wmh_task, lesion, np.array([[0, 1], [1, 0]]))
    assert joint.dtype == np.int64 and joint.tolist() == [[0, 4], [4, 0]]
    assert ann.tolist() == [True, False, False, False, True]
    joint, _ = to_joint(wmh_task, wmh_task.datasets[0], np.array([0.0, 1.0, 2.0, 3.0]))
    assert joint.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"seg.nii.gz: values \[2\] are not declared for dataset 'lesion'"):
        to_joint(wmh_task, lesion, np.array([0, 2]), source="seg.nii.gz")
    with pytest.raises(ValueError, match="must be integers"):
        to_joint(wmh_task, lesion, np.array([0.5]))


def test_joint_index_from_values(wmh_task_dict):
    wmh_task_dict["labels"][4]["value"] = 10
    task = Task.from_dict(wmh_task_dict)
    assert joint_index_from_values(task, np.array([0, 10, 3])).tolist() == [0, 4, 3]
    with pytest.raises(ValueError, match=r"values \[4\] are not joint label values"):
        joint_index_from_values(task, np.array([4]))


def test_saved_json_is_readable(tmp_path, wmh_task):
    save_task(wmh_task, tmp_path / "t.json")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["labels"][1] == {"name": "CSF", "value": 1, "color": "#4682b4"}


@pytest.mark.parametrize("text, message", [
    # duplicate keys: json.loads would keep the last one silently
    ('"labels": {"1": "WMH", "1": "WM"}, "modalities": ["T1"]', r"key '1' appears twice in one object \('WMH' and 'WM'\)"),
    ('"labels": {"1": "WM", "01": "WMH"}, "modalities": ["T1"]', r"datasets\[1\] \('lesion'\).*keys '1' and '01' are the same label value 1"),
    ('"labels": {"one": "WMH"}, "modalities": ["T1"]', r"datasets\[1\] \('lesion'\).*key 'one' is not an integer label value"),
    ('"labels": {"1": "WMH"}, "modalities": "T1"', r"datasets\[1\] \('lesion'\).*'modalities' must be a list of strings"),
    ('"labels": {"3": "WM"}, "modalities": ["T1"], "widen": {"WM": "WMH"}', r"datasets\[1\] \('lesion'\).*'widen' entry 'WM' must be a list"),
    ('"labels": {"3": "WM"}, "modalities": ["T1"], "widen": ["WM"]', r"datasets\[1\] \('lesion'\).*'widen' must be an object"),
    ('"labels": {"1": NaN}, "modalities": ["T1"]', r"NaN is not a JSON number"),
])
def test_task_file_ambiguities_are_refused(tmp_path, text, message):
    body = json.dumps(WMH_TASK_TEXT).replace('"labels": {"1": "WMH"}, "modalities": ["T1"]', text)
    assert body != json.dumps(WMH_TASK_TEXT)
    path = tmp_path / "task.json"
    path.write_text(body)
    with pytest.raises(TaskError, match=message):
        load_task(path)


@pytest.mark.parametrize("where, value, message", [
    ("label_value", 2.7, r"labels\[2\] .* value must be an integer, got 2.7"),
    ("label_value", "2", r"labels\[2\] .* value must be an integer, got '2'"),
    ("label_value", True, r"labels\[2\] .* value must be an integer, got True"),
    ("task_modalities", "T1", r"'modalities' must be a list of strings such as \[\"T1\", \"FLAIR\"\], got 'T1'"),
])
def test_task_values_are_not_coerced(wmh_task_dict, where, value, message):
    if where == "label_value":
        wmh_task_dict["labels"][2]["value"] = value
    else:
        wmh_task_dict["modalities"] = value
    with pytest.raises(TaskError, match=message):
        Task.from_dict(wmh_task_dict)


def test_integral_float_value_is_accepted(wmh_task_dict):
    wmh_task_dict["labels"][2]["value"] = 2.0
    assert Task.from_dict(wmh_task_dict).labels[2].value == 2


WMH_TASK_TEXT = {
    "name": "wmh",
    "labels": [{"name": "background", "value": 0}, {"name": "CSF", "value": 1}, {"name": "GM", "value": 2},
               {"name": "WM", "value": 3}, {"name": "WMH", "value": 4}],
    "datasets": [{"name": "anatomy", "path": "a", "modalities": ["T1"], "labels": {"3": "WM"}},
                 {"name": "lesion", "path": "b", "labels": {"1": "WMH"}, "modalities": ["T1"]}],
}
