"""The joint label space of a task: joint labels, input modalities and partially labelled datasets.

A *task* is what one joint model is trained for. It is saved as JSON (the "task file")::

    {
      "name": "wmh",
      "labels": [
        {"name": "background", "value": 0, "color": "#000000"},
        {"name": "CSF", "value": 1, "color": "#4682b4"},
        {"name": "GM",  "value": 2, "color": "#dcb48c"},
        {"name": "WM",  "value": 3, "color": "#f5f5f5"},
        {"name": "WMH", "value": 4, "color": "#ff3232"}
      ],
      "modalities": ["T1", "FLAIR"],
      "datasets": [
        {"name": "anatomy", "path": "Dataset001_anatomy", "modalities": ["T1", "FLAIR"],
         "labels": {"1": "CSF", "2": "GM", "3": "WM"}, "widen": {"WM": ["WMH"]}},
        {"name": "lesion", "path": "Dataset002_wmh", "modalities": ["T1", "FLAIR"],
         "labels": {"1": "WMH"}},
        {"name": "test", "path": "Dataset003_joint", "modalities": ["T1", "FLAIR"],
         "labels": {"1": "CSF", "2": "GM", "3": "WM", "4": "WMH"}, "role": "test"}
      ]
    }

Joint labels are addressed by their *index* (position in ``labels``; index 0 is background, the
network's output channel order) and written to label maps with their *value*. A dataset maps its own
label values to joint label names; value 0 of every dataset is background. ``modalities`` (optional)
are the inputs of the single joint model; by default the modalities common to every training dataset,
in the order of the first. ``role`` is ``"train"`` (default) or ``"test"``: test datasets are never
trained on.

A dataset may map one value to the reserved name ``"ignore"`` (nnU-Net's ignore label,
``{"5": "ignore"}``): its voxels may be any joint label, so losses, sampling and validation leave them
out (:data:`ACELib.labels.candidates.IGNORE_INDEX`). No joint label may be called ``"ignore"``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ACELib.io.strict_json import loads_strict

BACKGROUND = "background"
IGNORE = "ignore"
"""Reserved dataset label name (nnU-Net's ignore label): voxels that may be any joint label."""
ROLES = ("train", "test")
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class TaskError(ValueError):
    """A task description is invalid; the message lists every problem found."""


@dataclass(frozen=True)
class JointLabel:
    """One label of the joint space.

    Attributes:
        name: unique name, e.g. ``"WM"``.
        value: integer written to output label maps (background must be 0).
        color: RGB in 0..255.
    """

    name: str
    value: int
    color: tuple[int, int, int]

    @property
    def hex_color(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.color)

    def to_dict(self) -> dict:
        """``{"name", "value", "color": "#rrggbb"}``: how task, model and dataset files write a label."""
        return {"name": self.name, "value": self.value, "color": self.hex_color}

    @classmethod
    def from_dict(cls, entry: Mapping) -> JointLabel:
        """The label of a ``{"name", "value", "color"}`` entry (colour ``"#rrggbb"`` or ``[r, g, b]``,
        grey when absent).

        Raises:
            KeyError: no name or value. TypeError, ValueError: a value that is not an integer, or a
                colour that is neither form.
        """
        return cls(str(entry["name"]), _integer(entry["value"], "value"), parse_color(entry.get("color", "#808080")))


@dataclass(frozen=True)
class DatasetSpec:
    """One partially labelled dataset of a task.

    Attributes:
        name: unique name within the task.
        path: dataset folder (nnU-Net raw layout); relative paths are relative to the task file.
        modalities: the dataset's channel names, in channel order (``_0000``, ``_0001``, ...).
        labels: dataset label value (> 0) -> joint label name. Value 0 is background.
        widen: joint label name -> further joint labels that a voxel with that label may truly have
            (e.g. ``{"WM": ("WMH",)}``: the anatomy dataset labels lesions as the tissue they sit in).
        role: ``"train"`` or ``"test"``.
    """

    name: str
    path: str
    modalities: tuple[str, ...]
    labels: Mapping[int, str]
    widen: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    role: str = "train"

    @property
    def annotated_names(self) -> frozenset[str]:
        """Joint label names this dataset annotates (background included)."""
        return frozenset({BACKGROUND, *self.labels.values()} - {IGNORE})

    @property
    def ignore_values(self) -> tuple[int, ...]:
        """Dataset label values mapped to :data:`IGNORE` (voxels that may be any joint label)."""
        return tuple(sorted(v for v, name in self.labels.items() if name == IGNORE))


@dataclass(frozen=True)
class Task:
    """A joint segmentation task: labels, single-model modalities and datasets.

    Build with :meth:`from_dict` / :func:`load_task` (validated) or directly and call :meth:`validate`.
    """

    name: str
    labels: tuple[JointLabel, ...]
    datasets: tuple[DatasetSpec, ...]
    modalities: tuple[str, ...] = ()
    root: str = "."

    # ----------------------------------------------------------------- lookups
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(lab.name for lab in self.labels)

    def label_index(self, name: str) -> int:
        """Index (output channel) of a joint label, by name."""
        for i, lab in enumerate(self.labels):
            if lab.name == name:
                return i
        raise KeyError(f"unknown joint label {name!r}; the task's labels are {list(self.label_names)}")

    def dataset(self, name: str) -> DatasetSpec:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        raise KeyError(f"unknown dataset {name!r}; the task's datasets are {[d.name for d in self.datasets]}")

    @property
    def train_datasets(self) -> tuple[DatasetSpec, ...]:
        return tuple(ds for ds in self.datasets if ds.role == "train")

    @property
    def test_datasets(self) -> tuple[DatasetSpec, ...]:
        return tuple(ds for ds in self.datasets if ds.role == "test")

    @property
    def input_modalities(self) -> tuple[str, ...]:
        """Modalities of the single joint model: declared, or those common to all training datasets."""
        if self.modalities:
            return self.modalities
        train = self.train_datasets or self.datasets
        common = [m for m in train[0].modalities if all(m in ds.modalities for ds in train)]
        return tuple(common)

    def dataset_path(self, ds: DatasetSpec) -> Path:
        p = Path(ds.path)
        return p if p.is_absolute() else Path(self.root) / p

    # ----------------------------------------------------------------- validation
    def problems(self) -> list[str]:
        """Every problem of the description, as sentences naming the offending entry."""
        out: list[str] = []
        if not self.name:
            out.append("task 'name' is empty")
        if len(self.labels) < 2:
            out.append(f"'labels' needs background and at least one more label, got {len(self.labels)}")
        if len(self.labels) > 255:
            out.append(f"'labels' holds at most 255 joint labels (index 255 marks {IGNORE!r} voxels), "
                       f"got {len(self.labels)}")
        names: set[str] = set()
        values: set[int] = set()
        for i, lab in enumerate(self.labels):
            where = f"labels[{i}] ({lab.name!r})"
            if not lab.name:
                out.append(f"{where}: empty name")
            if lab.name == IGNORE:
                out.append(f"{where}: {IGNORE!r} is reserved for nnU-Net's ignore label (voxels that may be "
                           "any joint label); rename the joint label")
            if lab.name in names:
                out.append(f"{where}: duplicate label name {lab.name!r}")
            if lab.value in values:
                out.append(f"{where}: duplicate label value {lab.value}")
            if lab.value < 0 or lab.value > 255:
                out.append(f"{where}: value must be in 0..255, got {lab.value}")
            if any(c < 0 or c > 255 for c in lab.color) or len(lab.color) != 3:
                out.append(f"{where}: color must be three integers in 0..255, got {lab.color}")
            names.add(lab.name)
            values.add(lab.value)
        if self.labels and (self.labels[0].name != BACKGROUND or self.labels[0].value != 0):
            out.append(
                f"labels[0] must be {{'name': 'background', 'value': 0}}, "
                f"got name {self.labels[0].name!r} value {self.labels[0].value}"
            )
        if not self.datasets:
            out.append("'datasets' is empty: a task needs at least one dataset")
        ds_names: set[str] = set()
        for ds in self.datasets:
            out.extend(self._dataset_problems(ds, names, ds_names))
            ds_names.add(ds.name)
        if self.datasets and not self.train_datasets:
            out.append("no dataset has role 'train'")
        if self.modalities:
            for ds in self.datasets:
                missing = [m for m in self.modalities if m not in ds.modalities]
                if missing:
                    out.append(
                        f"dataset {ds.name!r}: lacks the task modalities {missing} "
                        f"(it has {list(ds.modalities)})"
                    )
        elif self.train_datasets and not self.input_modalities:
            out.append(
                "the training datasets share no modality: "
                + ", ".join(f"{d.name}={list(d.modalities)}" for d in self.train_datasets)
            )
        return out

    def _dataset_problems(self, ds: DatasetSpec, label_names: set[str], seen: set[str]) -> list[str]:
        where = f"dataset {ds.name!r}"
        out = []
        if not ds.name:
            out.append("a dataset has an empty name")
        if ds.name in seen:
            out.append(f"{where}: duplicate dataset name")
        if not ds.path:
            out.append(f"{where}: 'path' is empty")
        if not ds.modalities:
            out.append(f"{where}: the modality list is empty")
        if len(set(ds.modalities)) != len(ds.modalities):
            out.append(f"{where}: duplicate modality in {list(ds.modalities)}")
        if ds.role not in ROLES:
            out.append(f"{where}: role must be one of {list(ROLES)}, got {ds.role!r}")
        if not any(name != IGNORE for name in ds.labels.values()):
            out.append(f"{where}: annotates nothing (its 'labels' map no value to a joint label)")
        targets: set[str] = set()
        for value, name in ds.labels.items():
            if value <= 0:
                out.append(f"{where}: label value {value} must be > 0 (0 is always background)")
            if name == IGNORE:
                if name in targets:
                    out.append(f"{where}: two label values map to {IGNORE!r}")
                targets.add(name)
                continue
            if name not in label_names or name == BACKGROUND:
                out.append(
                    f"{where}: label value {value} maps to unknown joint label {name!r} "
                    f"(known: {sorted(label_names - {BACKGROUND})}, or {IGNORE!r})"
                )
            if name in targets:
                out.append(f"{where}: two label values map to joint label {name!r}")
            targets.add(name)
        for name, extra in ds.widen.items():
            if name == IGNORE:
                out.append(f"{where}: widen names {IGNORE!r}, whose voxels may already be any joint label")
                continue
            if name not in targets:
                out.append(f"{where}: widen names {name!r}, which the dataset does not annotate")
            for e in extra:
                if e not in label_names:
                    out.append(f"{where}: widen {name!r} -> unknown joint label {e!r}")
                elif e in targets or e == BACKGROUND:
                    out.append(
                        f"{where}: widen {name!r} -> {e!r} is annotated by the dataset itself; "
                        "only labels the dataset does not annotate can hide inside another"
                    )
        return out

    def validate(self) -> Task:
        """Raise :class:`TaskError` listing every problem; return ``self`` when valid."""
        problems = self.problems()
        if problems:
            raise TaskError(f"invalid task {self.name!r}:\n  - " + "\n  - ".join(problems))
        return self

    # ----------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        d: dict = {
            "name": self.name,
            "labels": [lab.to_dict() for lab in self.labels],
        }
        if self.modalities:
            d["modalities"] = list(self.modalities)
        d["datasets"] = []
        for ds in self.datasets:
            e: dict = {
                "name": ds.name,
                "path": ds.path,
                "modalities": list(ds.modalities),
                "labels": {str(k): v for k, v in sorted(ds.labels.items())},
            }
            if ds.widen:
                e["widen"] = {k: list(v) for k, v in ds.widen.items()}
            if ds.role != "train":
                e["role"] = ds.role
            d["datasets"].append(e)
        return d

    @classmethod
    def from_dict(cls, data: Mapping, root: str | os.PathLike = ".", source: str = "task") -> Task:
        """Parse and validate a task description; errors name ``source`` and the entry."""
        if not isinstance(data, Mapping):
            raise TaskError(f"{source}: expected a JSON object, got {type(data).__name__}")
        problems: list[str] = []
        for key in ("name", "labels", "datasets"):
            if key not in data:
                problems.append(f"missing key {key!r}")
        unknown = set(data) - {"name", "labels", "datasets", "modalities", "description"}
        if unknown:
            problems.append(f"unknown keys {sorted(unknown)}")
        if problems:
            raise TaskError(f"{source}: " + "; ".join(problems))
        labels = []
        for i, e in enumerate(_as_list(data["labels"], f"{source}: 'labels'")):
            try:
                labels.append(JointLabel.from_dict(e))
            except (KeyError, TypeError, ValueError) as exc:
                raise TaskError(f"{source}: labels[{i}] = {e!r} is not {{name, value, color}}: {exc}") from None
        datasets = []
        for i, e in enumerate(_as_list(data["datasets"], f"{source}: 'datasets'")):
            try:
                datasets.append(_parse_dataset(e))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                name = e.get("name", "?") if isinstance(e, Mapping) else "?"
                raise TaskError(f"{source}: datasets[{i}] ({name!r}) is malformed: {exc}") from None
        try:
            modalities = _strings(data.get("modalities", []), "'modalities'")
        except TypeError as exc:
            raise TaskError(f"{source}: {exc}") from None
        task = cls(
            name=str(data["name"]),
            labels=tuple(labels),
            datasets=tuple(datasets),
            modalities=modalities,
            root=str(root),
        )
        problems = task.problems()
        if problems:
            raise TaskError(f"{source}: invalid task:\n  - " + "\n  - ".join(problems))
        return task


def _integer(value, what: str) -> int:
    """An integer from JSON: an int, or a float without fraction; 2.7, True or "2" are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _strings(value, what: str) -> tuple[str, ...]:
    """A list of strings from JSON (a bare string such as "T1" is refused, not split into letters)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of strings such as [\"T1\", \"FLAIR\"], got {value!r}")
    return tuple(value)


def _label_keys(raw) -> dict[int, str]:
    """Dataset label value (a JSON key such as "1") -> joint label name; "01" next to "1" is refused."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"'labels' must be an object {{\"1\": \"WM\"}}, got {raw!r}")
    out: dict[int, str] = {}
    keys: dict[int, str] = {}
    for key, name in raw.items():
        text = str(key).strip()
        if not text.lstrip("-").isdigit():
            raise ValueError(f"'labels' key {key!r} is not an integer label value")
        value = int(text)
        if value in keys:
            raise ValueError(f"'labels' keys {keys[value]!r} and {key!r} are the same label value {value}")
        if not isinstance(name, str):
            raise TypeError(f"'labels' value of {key!r} must be a joint label name, got {name!r}")
        keys[value], out[value] = key, name
    return out


def _parse_dataset(e) -> DatasetSpec:
    if not isinstance(e, Mapping):
        raise TypeError(f"expected an object, got {e!r}")
    widen = e.get("widen", {})
    if not isinstance(widen, Mapping):
        raise TypeError(f"'widen' must be an object {{\"WM\": [\"WMH\"]}}, got {widen!r}")
    return DatasetSpec(
        name=str(e["name"]),
        path=str(e.get("path", e["name"])),
        modalities=_strings(e.get("modalities", []), "'modalities'"),
        labels=_label_keys(e.get("labels", {})),
        widen={str(k): _strings(v, f"'widen' entry {k!r}") for k, v in widen.items()},
        role=str(e.get("role", "train")),
    )


def _as_list(value, what: str) -> Sequence:
    if not isinstance(value, list):
        raise TaskError(f"{what} must be a list, got {type(value).__name__}")
    return value


def parse_color(value) -> tuple[int, int, int]:
    """RGB in 0..255 of a colour written ``"#rrggbb"`` or ``[r, g, b]``.

    Raises:
        ValueError: neither form.
    """
    if isinstance(value, str):
        if not _HEX_COLOR.match(value):
            raise ValueError(f"color {value!r} is not '#rrggbb'")
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(int(c) for c in value)  # type: ignore[return-value]
    raise ValueError(f"color {value!r} is neither '#rrggbb' nor [r, g, b]")


def load_task(path: str | os.PathLike) -> Task:
    """Read and validate a task file. Dataset paths are resolved relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file {str(path)!r} does not exist")
    try:
        data = loads_strict(path.read_text(encoding="utf-8"), f"task file {str(path)!r}")
    except ValueError as exc:
        raise TaskError(str(exc)) from None
    return Task.from_dict(data, root=path.parent, source=f"task file {str(path)!r}")


def save_task(task: Task, path: str | os.PathLike) -> None:
    """Write a task file atomically (temporary file, then rename)."""
    from ACELib.io.atomic import atomic_write_text

    task.validate()
    atomic_write_text(path, json.dumps(task.to_dict(), indent=2) + "\n")
