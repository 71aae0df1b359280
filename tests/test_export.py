"""COCO, DAVIS and YouTube-VIS exports of a tracked field, checked against the label maps that were stored."""

import json
from collections import namedtuple
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

import fiftyone as fo

from samtrack_ops.export import ExportError, export_coco, export_davis, export_ytvis, import_davis
from samtrack_ops.export._atomic import inside, safe_name
from samtrack_ops.fiftyone.storage import label_map_to_detections

SCHEMA = Path(__file__).parent / "data" / "ytvis_schema.json"
Obj = namedtuple("Obj", "id label score")
OBJECTS = [Obj(3, "box", 0.5), Obj(5, "person", 0.9), Obj(9, "car", None)]
NUM_FRAMES = 10
SIZE = (480, 854)


def _tracked_label_maps(gt_masks):
    """Label maps with three tracks: 5 (the DAVIS object, every frame), 9 (frames 1-6), 3 (from frame 3)."""
    maps = []
    for index, gt_mask in enumerate(gt_masks):
        label_map = np.zeros(SIZE, np.uint16)
        if index < 6:
            label_map[300:360, 700:790] = 9
        label_map[gt_mask] = 5
        if index >= 2:
            label_map[20 + 5 * index : 80 + 5 * index, 30:120] = 3
        maps.append(label_map)
    return maps


@pytest.fixture
def tracked(davis_videos, davis_frames):
    """A two-video dataset with frames.tracks; returns (dataset, {sample filepath stem: label maps})."""
    dataset = fo.Dataset()
    maps = {}
    for sequence, path in davis_videos.items():
        sample = fo.Sample(filepath=str(path))
        maps[sequence] = _tracked_label_maps(davis_frames(sequence, NUM_FRAMES).masks)
        for frame_number, label_map in enumerate(maps[sequence], 1):
            sample.frames[frame_number]["tracks"] = label_map_to_detections(label_map, OBJECTS)
        dataset.add_sample(sample)
    yield dataset, maps
    dataset.delete()


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_coco_round_trip_through_pycocotools(tracked, tmp_path):
    dataset, maps = tracked
    labels_path = export_coco(dataset, "tracks", tmp_path / "coco")
    coco = COCO(str(labels_path))
    assert len(coco.imgs) == 2 * NUM_FRAMES
    assert {c["name"] for c in coco.cats.values()} == {"box", "car", "person"}
    expected_count = sum(len(np.unique(m)) - 1 for seq_maps in maps.values() for m in seq_maps)
    assert len(coco.anns) == expected_count
    for annotation in coco.anns.values():
        image = coco.imgs[annotation["image_id"]]
        label_map = maps[image["video"]][image["frame_number"] - 1]
        assert np.array_equal(coco.annToMask(annotation), label_map == annotation["track_id"])
        assert coco.cats[annotation["category_id"]]["name"] == {o.id: o.label for o in OBJECTS}[annotation["track_id"]]
        assert annotation["iscrowd"] == 0
        assert annotation["area"] == np.count_nonzero(label_map == annotation["track_id"])
    first = coco.imgs[1]
    assert first["file_name"] == "car-shadow/00000.jpg" and first["frame_number"] == 1
    stored = cv2.imread(str(labels_path.parent / "data" / first["file_name"]))
    assert stored.shape == (*SIZE, 3) == (first["height"], first["width"], 3)


def test_coco_png_frames_are_the_decoded_frames(tracked, tmp_path):
    dataset, _ = tracked
    labels_path = export_coco(dataset.limit(1), "tracks", tmp_path / "coco", image_format="png")
    capture = cv2.VideoCapture(dataset.first().filepath)
    _, first_frame = capture.read()
    capture.release()
    assert np.array_equal(cv2.imread(str(labels_path.parent / "data" / "car-shadow" / "00000.png")), first_frame)
    with pytest.raises(ExportError, match="image_format"):
        export_coco(dataset, "tracks", tmp_path / "other", image_format="gif")


def test_davis_layout_palette_and_first_appearance_ids(tracked, tmp_path):
    dataset, maps = tracked
    root = export_davis(dataset, "tracks", tmp_path / "davis")
    assert (root / "ImageSets" / "2017" / "val.txt").read_text().split() == ["car-shadow", "libby"]
    annotations = sorted((root / "Annotations" / "480p" / "libby").glob("*.png"))
    images = sorted((root / "JPEGImages" / "480p" / "libby").glob("*.jpg"))
    assert [p.stem for p in annotations] == [p.stem for p in images] == [f"{i:05d}" for i in range(NUM_FRAMES)]
    first = Image.open(annotations[0])
    palette = first.getpalette()
    assert first.mode == "P" and len(palette) == 768
    # The PASCAL VOC colours DAVIS uses: 0 black, 1 red, 2 green, 3 olive, 4 navy, 255 the cream void colour.
    expected_colours = {0: [0, 0, 0], 1: [128, 0, 0], 2: [0, 128, 0], 3: [128, 128, 0], 4: [0, 0, 128], 255: [224, 224, 192]}
    assert {i: palette[3 * i : 3 * i + 3] for i in expected_colours} == expected_colours
    # Frame 1 shows tracks 5 and 9 (ascending -> 1, 2); track 3 appears in frame 3 -> 3.
    assert json.loads((root / "samtrack_objects.json").read_text())["libby"] == [
        {"davis_id": 1, "track_id": 5, "label": "person"},
        {"davis_id": 2, "track_id": 9, "label": "car"},
        {"davis_id": 3, "track_id": 3, "label": "box"},
    ]
    davis_ids = {5: 1, 9: 2, 3: 3, 0: 0}
    for path, label_map in zip(annotations, maps["libby"]):
        expected = np.vectorize(davis_ids.get)(label_map)
        assert np.array_equal(np.array(Image.open(path)), expected)


def test_davis_export_then_import_gives_identical_label_maps(tracked, tmp_path):
    dataset, maps = tracked
    root = export_davis(dataset, "tracks", tmp_path / "davis")
    imported = import_davis(root, tmp_path / "videos", sequences=["libby"])
    try:
        sample = imported.first()
        renumber = np.zeros(10, np.uint8)
        renumber[[5, 9, 3]] = [1, 2, 3]
        for frame_number, label_map in enumerate(maps["libby"], 1):
            frame = sample.frames[frame_number]
            assert np.array_equal(frame["ground_truth_seg"].mask, renumber[label_map])
            assert [d.index for d in frame["ground_truth"].detections] == sorted(np.unique(renumber[label_map]))[1:]
    finally:
        imported.delete()


def test_davis_overlap_goes_to_the_higher_track_id(davis_videos, tmp_path):
    dataset = fo.Dataset()
    sample = fo.Sample(filepath=str(davis_videos["libby"]))
    square = np.ones((100, 100), bool)
    sample.frames[1]["tracks"] = fo.Detections(
        detections=[
            fo.Detection(label="a", bounding_box=[0.1, 0.1, 100 / 854, 100 / 480], mask=square, index=7),
            fo.Detection(label="b", bounding_box=[0.1, 0.1, 100 / 854, 100 / 480], mask=square, index=2),
        ]
    )
    dataset.add_sample(sample)
    root = export_davis(dataset, "tracks", tmp_path / "davis")
    first = np.array(Image.open(root / "Annotations" / "480p" / "libby" / "00000.png"))
    # IDs by first appearance: track 2 -> 1, track 7 -> 2; track 7 is painted over track 2.
    assert set(np.unique(first)) == {0, 2}
    assert np.count_nonzero(first == 2) == 100 * 100
    dataset.delete()


def test_ytvis_json_matches_the_published_schema_and_the_masks(tracked, tmp_path):
    dataset, maps = tracked
    path = export_ytvis(dataset, "tracks", tmp_path / "ytvis")
    content = json.loads(path.read_text())
    jsonschema.validate(content, json.loads(SCHEMA.read_text()))
    videos = {v["id"]: v for v in content["videos"]}
    assert [v["length"] for v in videos.values()] == [NUM_FRAMES, NUM_FRAMES]
    assert videos[1]["file_names"][0] == "car-shadow/00000.jpg"
    assert (path.parent / "JPEGImages" / "car-shadow" / "00009.jpg").is_file()
    assert len(content["annotations"]) == 6
    for annotation in content["annotations"]:
        video = videos[annotation["video_id"]]
        assert len(annotation["segmentations"]) == len(annotation["areas"]) == len(annotation["bboxes"]) == NUM_FRAMES
        for label_map, rle in zip(maps[video["name"]], annotation["segmentations"]):
            expected = label_map == annotation["track_id"]
            if not expected.any():
                assert rle is None
            else:
                assert np.array_equal(mask_utils.decode(rle).astype(bool), expected)
    track9 = next(a for a in content["annotations"] if a["track_id"] == 9)
    assert track9["segmentations"][6:] == [None] * 4 and track9["bboxes"][5] == [700.0, 300.0, 90.0, 60.0]


def test_schema_rejects_a_malformed_file():
    schema = json.loads(SCHEMA.read_text())
    bad = {"videos": [{"id": 1, "width": 4, "height": 4, "length": 1}], "annotations": [], "categories": []}
    with pytest.raises(jsonschema.ValidationError, match="file_names"):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize("export", [export_coco, export_davis, export_ytvis])
def test_exports_refuse_to_overwrite_unless_asked(export, tracked, tmp_path):
    dataset, _ = tracked
    view = dataset.limit(1)
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(ExportError, match="already exists"):
        export(view, "tracks", target)
    assert (target / "keep.txt").read_text() == "user data"
    export(view, "tracks", target, overwrite=True)
    assert not (target / "keep.txt").exists() and any(target.iterdir())
    assert _leftovers(tmp_path) == []


def test_failed_export_leaves_no_folder(tracked, tmp_path):
    dataset, _ = tracked
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    sample = fo.Sample(filepath=str(broken))
    sample.frames[1]["tracks"] = dataset.first().frames[1]["tracks"]
    dataset.add_sample(sample)
    with pytest.raises(ExportError, match="broken.mp4"):
        export_davis(dataset, "tracks", tmp_path / "davis")
    assert not (tmp_path / "davis").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc", "a\\b", "nul\0"])
def test_unsafe_names_are_rejected(name):
    with pytest.raises(ExportError, match="cannot be used as a file or folder name"):
        safe_name(name)


def test_paths_must_stay_inside_the_export_folder(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert inside(root, "a", "b.png") == root / "a" / "b.png"
    (root / "link").symlink_to(tmp_path)
    for parts in [("..", "x"), ("/etc/passwd",), ("a", "../../x"), ("link", "x")]:
        with pytest.raises(ExportError, match="outside"):
            inside(root, *parts)


def test_export_options_that_would_escape_are_rejected(tracked, tmp_path):
    dataset, _ = tracked
    with pytest.raises(ExportError, match="'../x'"):
        export_davis(dataset, "tracks", tmp_path / "davis", subset="../x")
    with pytest.raises(ExportError, match="'/tmp'"):
        export_davis(dataset, "tracks", tmp_path / "davis", resolution="/tmp")
    assert list(tmp_path.iterdir()) == []


def test_bad_fields_are_rejected(tracked, tmp_path):
    dataset, _ = tracked
    with pytest.raises(ExportError, match="no frame field 'nope'.*tracks"):
        export_coco(dataset, "nope", tmp_path / "a")
    first = dataset.first()
    first.frames[1]["note"] = fo.Classification(label="x")
    first.save()
    with pytest.raises(ExportError, match="must hold fo.Detections"):
        export_coco(dataset, "note", tmp_path / "a")
    empty_view = dataset.filter_labels("frames.tracks", fo.ViewField("label") == "nobody")
    with pytest.raises(ExportError, match="no labels in this view"):
        export_ytvis(empty_view, "tracks", tmp_path / "a")
    assert not (tmp_path / "a").exists()
