"""ACESegmentationLogic on a real MRML scene with a tiny untrained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel is needed for MRML tests")

from ACESegmentationLib import mrml_io  # noqa: E402
from ACESegmentationLib import segmentation as seg  # noqa: E402
from ACESegmentationLib.background import BackgroundJob  # noqa: E402
from ACESegmentationLib.logic import ACESegmentationLogic, isOutOfMemory  # noqa: E402
from ACESegmentationLib.mrml_io import GeometryMismatchError, localIJKToRAS, volumeGeometry  # noqa: E402
from factory import WMH_LABELS  # noqa: E402
from mrml_helpers import addVolume, obliqueTransform, rotation  # noqa: E402

from ACELib.data.contract import read_dataset_info  # noqa: E402
from ACELib.data.task_builder import SIDECAR  # noqa: E402
from ACELib.inference import Cancelled, create_model  # noqa: E402
from ACELib.labels import load_task  # noqa: E402

LABELS = WMH_LABELS
MODALITIES = ("T1", "FLAIR")
SHAPE = (11, 13, 12)  # (D, H, W)
OBLIQUE = dict(spacing=(0.9, 1.1, 2.5), origin=(-40.0, 12.5, 3.0), directions=rotation("y", 23.0),
               transform=obliqueTransform())


@pytest.fixture(scope="module")
def tinyModel():
    return create_model(LABELS, MODALITIES, base_channels=4, depth=2, seed=0)


@pytest.fixture
def logic(slicerContext):
    return ACESegmentationLogic(slicerContext.scene, slicerContext.segmentationsLogic,
                                slicerContext.terminologiesLogic)


def _volumes(ctx, grid=OBLIQUE, flairGrid=None):
    rng = np.random.default_rng(0)
    t1 = addVolume(ctx.scene, rng.normal(100, 30, SHAPE).astype(np.float32), "sub01_T1w", **grid)
    flair = addVolume(ctx.scene, rng.normal(80, 20, SHAPE).astype(np.int16), "sub01_FLAIR", **(flairGrid or grid))
    return [t1, flair]


def _labels(node, volume, ctx):
    return seg.labelArrayFromSegmentation(ctx.scene, node, volume, LABELS)


def test_segment_end_to_end_matches_the_model_and_the_input_grid(slicerContext, logic, tinyModel):
    volumes = _volumes(slicerContext)
    reports = []
    node = logic.segment(volumes, tinyModel, progress=lambda d, t, m: reports.append((d, t)))
    image = np.stack([slicer.util.arrayFromVolume(v).astype(np.float32) for v in volumes])
    expected = tinyModel.predict(image, geometry=volumeGeometry(volumes[0])).labels  # the model reorients
    np.testing.assert_array_equal(_labels(node, volumes[0], slicerContext), expected)
    assert [node.GetSegmentation().GetNthSegment(i).GetName() for i in range(4)] == ["CSF", "GM", "WM", "WMH"]
    assert node.GetTransformNodeID() == volumes[0].GetTransformNodeID()
    assert node.GetName() == "sub01_T1w ACE segmentation"
    assert reports and reports[-1][0] == reports[-1][1]


def test_segment_refuses_mismatched_modalities(slicerContext, logic, tinyModel):
    flairGrid = dict(OBLIQUE, spacing=(1.0, 1.0, 1.0))
    volumes = _volumes(slicerContext, flairGrid=flairGrid)
    with pytest.raises(GeometryMismatchError, match="'sub01_FLAIR' does not share the voxel grid of 'sub01_T1w'"):
        logic.segment(volumes, tinyModel)
    assert slicerContext.scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    node = logic.segment(volumes, tinyModel, resample=True)
    assert node.GetSegmentation().GetNumberOfSegments() == 4


def test_segment_needs_one_volume_per_modality(slicerContext, logic, tinyModel):
    with pytest.raises(ValueError, match=r"the model needs 2 volumes \['T1', 'FLAIR'\], got 1"):
        logic.segment(_volumes(slicerContext)[:1], tinyModel)


def test_replacing_segments_needs_confirmation(slicerContext, logic, tinyModel):
    volumes = _volumes(slicerContext)
    node = logic.segment(volumes, tinyModel)
    labelMap = np.full(SHAPE, 2, np.uint8)
    with pytest.raises(ValueError, match="already has 4 segments; confirm replacing them"):
        logic.writeSegmentation(labelMap, LABELS, volumes[0], node)
    same = logic.writeSegmentation(labelMap, LABELS, volumes[0], node, replace=True)
    assert same is node
    np.testing.assert_array_equal(_labels(node, volumes[0], slicerContext), labelMap)


def test_show_in_3d_builds_closed_surfaces(slicerContext, logic):
    volumes = _volumes(slicerContext)
    labelMap = np.zeros(SHAPE, np.uint8)
    labelMap[3:8, 4:9, 4:9] = 3
    node = logic.writeSegmentation(labelMap, LABELS, volumes[0], showIn3D=True)
    assert node.GetSegmentation().ContainsRepresentation(
        slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName())


class _OomModel:
    """A model whose first prediction on the GPU runs out of memory (no MRML involved)."""

    class _Device:
        type = "cuda"

    def __init__(self, labels):
        self.device, self.labels, self.calls = self._Device(), labels, []

    def to(self, device):
        self.calls.append(f"to {device}")
        self.device = type("D", (), {"type": device})()
        return self

    def predict(self, image, spacing=None, geometry=None, progress=None, cancel=None):
        self.calls.append(f"predict on {self.device.type}")
        if self.device.type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return type("P", (), {"labels": np.ones(image.shape[1:], np.uint8)})()


def test_gpu_out_of_memory_retries_on_cpu_with_a_notice(slicerContext):
    model, notices = _OomModel(LABELS), []
    image = np.zeros((2, *SHAPE), np.float32)
    geometry = volumeGeometry(_volumes(slicerContext)[0])
    out = ACESegmentationLogic.predictLabels(model, image, geometry, notify=notices.append)
    assert model.calls == ["predict on cuda", "to cpu", "predict on cpu"]
    assert notices == ["The GPU ran out of memory: running on the CPU instead (slower)."]
    assert out.shape == SHAPE
    assert not isOutOfMemory(ValueError("bad spacing"))


def test_prediction_in_background_job_can_be_cancelled(slicerContext, logic, tinyModel):
    volumes = _volumes(slicerContext)
    image, geometry = logic.readInputs(volumes)
    job = BackgroundJob(lambda progress, cancel, notify: logic.predictLabels(
        tinyModel, image, geometry, progress, lambda: True, notify)).start()
    status = job.wait(30)
    assert status.state == "cancelled" and isinstance(status.error, Cancelled)
    job = BackgroundJob(lambda progress, cancel, notify: logic.predictLabels(
        tinyModel, image, geometry, progress, cancel, notify)).start()
    status = job.wait(30)
    assert status.state == "finished" and status.result.shape == SHAPE


NAMES = [
    (["sub01_T1w", "sub01_FLAIR"], {"T1": "sub01_T1w", "FLAIR": "sub01_FLAIR"}),
    (["flair_axial", "MPRAGE"], {"T1": "MPRAGE", "FLAIR": "flair_axial"}),
    (["t1ce", "t1", "FLAIR"], {"T1": "t1", "FLAIR": "FLAIR"}),
    (["scan1", "scan2"], {"T1": None, "FLAIR": None}),
]


@pytest.mark.parametrize(("names", "expected"), NAMES)
def test_match_volumes_by_name(slicerContext, names, expected):
    nodes = [slicerContext.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", n) for n in names]
    got = ACESegmentationLogic.matchVolumes(MODALITIES, nodes)
    assert {m: (n.GetName() if n is not None else None) for m, n in got.items()} == expected


def test_an_any_contrast_model_takes_the_first_volume(slicerContext):
    nodes = [slicerContext.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", n) for n in ("t2_axial", "t1")]
    assert ACESegmentationLogic.matchVolumes(["any"], nodes) == {"any": nodes[0]}
    assert ACESegmentationLogic.matchVolumes(["any"], []) == {"any": None}


@pytest.mark.parametrize("mode", ["all", "tissue", "lesion"])
def test_export_import_roundtrip_is_bit_exact(slicerContext, logic, tmp_path, mode):
    volumes = _volumes(slicerContext)
    labelMap = np.random.default_rng(1).integers(0, 5, SHAPE).astype(np.uint8)
    node = logic.writeSegmentation(labelMap, LABELS, volumes[0])
    folder = tmp_path / f"Dataset_{mode}"
    logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "sub 01", mode)
    annotated = {"all": [1, 2, 3, 4], "tissue": [1, 2, 3], "lesion": [4]}[mode]
    info = read_dataset_info(folder)
    assert info.channel_names == MODALITIES
    assert info.labels == {"background": 0, **{LABELS[v].name: v for v in annotated}}
    assert json.loads((folder / SIDECAR).read_text())["annotated"] == [LABELS[v].name for v in annotated]

    back, backNode = logic.importCase(folder, "sub_01", LABELS)
    for original, loaded in zip(volumes, back):
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(loaded),
                                      slicer.util.arrayFromVolume(original).astype(np.float32))
        assert volumeGeometry(loaded).differences(volumeGeometry(original), tol=1e-5) == []
    expected = np.where(np.isin(labelMap, annotated), labelMap, 0)
    np.testing.assert_array_equal(_labels(backNode, back[0], slicerContext), expected)
    # the imported segmentation lines up with the original volume in world space
    assert back[0].GetParentTransformNode() is None
    worldOfOriginal = mrml_io.parentToWorld(volumes[0]) @ localIJKToRAS(volumes[0])
    np.testing.assert_allclose(localIJKToRAS(back[0]), worldOfOriginal, atol=1e-4)


def test_adding_never_overwrites(slicerContext, logic, tmp_path):
    volumes = _volumes(slicerContext)
    node = logic.writeSegmentation(np.ones(SHAPE, np.uint8), LABELS, volumes[0])
    folder = tmp_path / "Dataset_slicer"
    logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "case", "all")
    before = {p: p.read_bytes() for p in (folder / "imagesTr").iterdir()}
    with pytest.raises(FileExistsError, match="case 'case' already exists"):
        logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "case", "all")
    assert {p: p.read_bytes() for p in (folder / "imagesTr").iterdir()} == before
    with pytest.raises(ValueError, match="annotates .*'WMH'.*this case annotates \\['WMH'\\]"):
        logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "case2", "lesion")
    logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "case2", "all")
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 2


def test_add_to_training_set_needs_a_segmentation(slicerContext, logic, tmp_path):
    with pytest.raises(ValueError, match="no segmentation selected"):
        logic.addToTrainingSet(tmp_path / "d", _volumes(slicerContext), None, LABELS, MODALITIES, "c")


def test_prepare_training_from_exported_folders(slicerContext, logic, tmp_path):
    volumes = _volumes(slicerContext)
    node = logic.writeSegmentation(np.ones(SHAPE, np.uint8), LABELS, volumes[0])
    logic.addToTrainingSet(tmp_path / "tissue", volumes, node, LABELS, MODALITIES, "a", "tissue")
    logic.addToTrainingSet(tmp_path / "lesion", volumes, node, LABELS, MODALITIES, "b", "lesion")
    plan = logic.prepareTraining([tmp_path / "tissue", tmp_path / "lesion"], LABELS, tmp_path / "run",
                                 iterations=5, python="/usr/bin/python3")
    task = load_task(plan.taskPath)
    assert [(d.name, dict(d.labels)) for d in task.datasets] == [("tissue", {1: "CSF", 2: "GM", 3: "WM"}),
                                                                  ("lesion", {4: "WMH"})]
    assert plan.command[:5] == ["/usr/bin/python3", "-u", "-m", "ACELib.cli.main", "train"]
    assert plan.command[plan.command.index("--iterations") + 1] == "5"
    assert "--resume" not in plan.command
    with pytest.raises(ValueError, match="holds no checkpoint to resume from"):
        logic.prepareTraining([tmp_path / "tissue"], LABELS, tmp_path / "run", resume=True)


@pytest.mark.parametrize("shift, outcome", [(1000.0, "refused"), (6.0, "warned"), (0.0, "silent")])
def test_add_to_training_set_checks_the_segmentation_overlaps_the_volumes(slicerContext, logic, tmp_path,
                                                                          shift, outcome):
    grid = dict(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    volumes = _volumes(slicerContext, grid=grid)
    other = addVolume(slicerContext.scene, np.zeros(SHAPE, np.float32), "sub02_T1w", spacing=(1.0, 1.0, 1.0),
                      origin=(shift, 0.0, 0.0))
    labelMap = np.zeros(SHAPE, np.uint8)
    labelMap[2:9, 3:10, 1:11] = 2  # GM across the whole width (W = x)
    node = logic.writeSegmentation(labelMap, LABELS, other)  # drawn on another subject's grid
    notices = []
    folder = tmp_path / "Dataset_overlap"
    if outcome == "refused":
        with pytest.raises(ValueError, match=r"segmentation .* does not overlap volume 'sub01_T1w': none of its "
                                             r"490 mm\^3 of labels"):
            logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "c", notify=notices.append)
        assert not (folder / "imagesTr").exists()
        return
    logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "c", notify=notices.append)
    if outcome == "warned":
        assert len(notices) == 1 and "keeps 245 of its 490 mm^3 of labels (50%)" in notices[0]
    else:
        assert notices == []


def test_import_refuses_fractional_label_values(slicerContext, logic, tmp_path):
    volumes = _volumes(slicerContext)
    node = logic.writeSegmentation(np.ones(SHAPE, np.uint8), LABELS, volumes[0])
    folder = tmp_path / "Dataset_float"
    logic.addToTrainingSet(folder, volumes, node, LABELS, MODALITIES, "case", "all")
    from ACELib.io.image import read_image, write_image

    path = folder / "labelsTr" / "case.nii.gz"
    arr, geom = read_image(path)
    arr[0, 0, 0] = 0.5
    write_image(path, arr.astype(np.float32), geom)
    with pytest.raises(ValueError, match=r"case.nii.gz': a label map must hold integer values, found 1 voxels "
                                         r"with non-integer values such as \[0.5\]"):
        logic.importCase(folder, "case", LABELS)


@pytest.mark.parametrize("dims", [(0, 0, 0), (4, 0, 3), None])
def test_empty_volume_is_a_clear_error(slicerContext, logic, dims):
    import vtk

    node = slicerContext.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    if dims is not None:
        image = vtk.vtkImageData()
        image.SetDimensions(*dims)
        node.SetAndObserveImageData(image)
    with pytest.raises(ValueError, match="volume 'empty' has no voxels"):
        logic.readInputs([node])


def test_volume_table_equals_label_counts_times_voxel_volume(slicerContext, logic, tinyModel):
    volumes = _volumes(slicerContext)
    node = logic.segment(volumes, tinyModel)
    labels = _labels(node, volumes[0], slicerContext)
    voxelMl = float(np.prod(volumeGeometry(volumes[0]).spacing)) / 1000
    table = logic.volumeTable(node, volumes[0], LABELS)
    assert table.IsA("vtkMRMLTableNode") and table.GetName() == "sub01_T1w ACE segmentation volumes"
    assert [table.GetColumnName(c) for c in range(4)] == ["Label", "Value", "Voxels", "Volume (mL)"]
    assert table.GetNumberOfRows() == 4
    for r, lab in enumerate(LABELS[1:]):
        n = int((labels == lab.value).sum())
        assert table.GetCellText(r, 0) == lab.name and int(table.GetCellText(r, 2)) == n
        assert table.GetTable().GetColumnByName("Volume (mL)").GetValue(r) == pytest.approx(n * voxelMl)
    again = logic.volumeTable(node, volumes[0], LABELS, tableNode=table)  # refilled, not duplicated
    assert again is table and table.GetNumberOfColumns() == 4 and table.GetNumberOfRows() == 4


@pytest.fixture(scope="module")
def heteroModel():
    return create_model(LABELS, MODALITIES, base_channels=4, depth=2, seed=0, hetero=True)


def test_a_hetero_modal_model_segments_with_an_empty_input_slot(slicerContext, logic, heteroModel):
    t1, flair = _volumes(slicerContext)
    node = logic.segment([t1, None], heteroModel)
    image = slicer.util.arrayFromVolume(t1).astype(np.float32)[None]
    expected = heteroModel.predict(image, geometry=volumeGeometry(t1), modalities=("T1",)).labels
    np.testing.assert_array_equal(_labels(node, t1, slicerContext), expected)
    names, nodes = logic.inputSubset(heteroModel, [None, flair])
    assert names == ("FLAIR",) and nodes == [flair]


@pytest.mark.parametrize("hetero, match", [(True, "names no modality"), (False, r"missing \['FLAIR'\]")])
def test_empty_slots_are_refused_where_the_model_needs_them(slicerContext, logic, tinyModel, heteroModel,
                                                            hetero, match):
    t1, _ = _volumes(slicerContext)
    slots = [None, None] if hetero else [t1, None]
    with pytest.raises(ValueError, match=match):
        logic.segment(slots, heteroModel if hetero else tinyModel)
