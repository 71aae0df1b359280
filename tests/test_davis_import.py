"""DAVIS 2016 (binary) and 2017 (indexed) folders imported as FiftyOne video datasets."""

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

import fiftyone as fo

from samtrack_ops.export import ExportError, import_davis
from samtrack_ops.export.davis import DAVIS_PALETTE, read_davis_mask
from samtrack_ops.fiftyone.storage import detections_to_label_map

SIZE = (480, 854)


@pytest.fixture
def cleanup():
    """Collects datasets to delete after the test."""
    datasets = []
    yield datasets
    for dataset in datasets:
        if fo.dataset_exists(dataset.name):
            dataset.delete()


def _davis_2017_folder(davis_dir, root, num_frames=5):
    """A DAVIS-2017-style copy of the first blackswan frames: object 1 = the swan, object 2 = a box
    (frames 2+), a void (255) strip; the last frame has no annotation."""
    images = root / "JPEGImages" / "480p" / "swan"
    annotations = root / "Annotations" / "480p" / "swan"
    images.mkdir(parents=True)
    annotations.mkdir(parents=True)
    expected = []
    for index in range(num_frames):
        name = f"{index:05d}"
        shutil.copy(davis_dir / "JPEGImages" / "480p" / "blackswan" / f"{name}.jpg", images / f"{name}.jpg")
        label_map = (np.array(Image.open(davis_dir / "Annotations" / "480p" / "blackswan" / f"{name}.png")) > 0)
        label_map = label_map.astype(np.uint8)
        if index >= 1:
            label_map[10:50, 10:90] = 2
        expected.append(label_map.copy())
        label_map[470:, :] = 255
        expected[-1][470:, :] = 0
        if index < num_frames - 1:
            png = Image.fromarray(label_map, mode="P")
            png.putpalette(DAVIS_PALETTE)
            png.save(annotations / f"{name}.png")
    return expected[:-1]


def _decoded_frame_count(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_davis_2016_binary_masks(davis_dir, tmp_path, cleanup):
    dataset = import_davis(davis_dir, tmp_path / "videos", sequences=["blackswan", "car-shadow"])
    cleanup.append(dataset)
    assert dataset.media_type == "video"
    assert dataset.values("filepath") == [str(tmp_path / "videos" / f"{s}.mp4") for s in ("blackswan", "car-shadow")]
    sample = dataset.first()
    assert sample.metadata.total_frame_count == 25 and _decoded_frame_count(sample.filepath) == 25
    assert (sample.metadata.frame_height, sample.metadata.frame_width) == SIZE
    for frame_number in (1, 13, 25):
        png = davis_dir / "Annotations" / "480p" / "blackswan" / f"{frame_number - 1:05d}.png"
        expected = (np.array(Image.open(png)) == 255).astype(np.uint8)
        frame = sample.frames[frame_number]
        assert np.array_equal(frame["ground_truth_seg"].mask, expected)
        assert [d.index for d in frame["ground_truth"].detections] == [1]
        assert np.array_equal(detections_to_label_map(frame["ground_truth"], SIZE), expected)


def test_davis_2017_indexed_masks(davis_dir, tmp_path, cleanup):
    expected = _davis_2017_folder(davis_dir, tmp_path / "davis2017")
    dataset = import_davis(tmp_path / "davis2017", tmp_path / "videos", dataset_name="davis17-test")
    cleanup.append(dataset)
    assert dataset.name == "davis17-test" and len(dataset) == 1
    sample = dataset.first()
    assert _decoded_frame_count(sample.filepath) == 5
    for frame_number, label_map in enumerate(expected, 1):
        frame = sample.frames[frame_number]
        assert np.array_equal(frame["ground_truth_seg"].mask, label_map)
        assert [d.index for d in frame["ground_truth"].detections] == ([1] if frame_number == 1 else [1, 2])
    assert sample.frames[5]["ground_truth"] is None


def test_annotation_format_can_be_forced(davis_dir, tmp_path):
    path = davis_dir / "Annotations" / "480p" / "blackswan" / "00000.png"
    as_binary = read_davis_mask(path, "binary")
    as_indexed = read_davis_mask(path, "indexed")  # 255 is void in indexed masks
    assert as_binary.max() == 1 and as_binary.sum() > 1000
    assert as_indexed.max() == 0
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    with pytest.raises(ExportError, match="single-channel"):
        read_davis_mask(rgb)


def test_bad_input_creates_nothing(davis_dir, tmp_path, cleanup):
    videos = tmp_path / "videos"
    with pytest.raises(ExportError, match="JPEGImages/480p"):
        import_davis(tmp_path, videos)
    with pytest.raises(ExportError, match=r"\['nosuch'\]"):
        import_davis(davis_dir, videos, sequences=["nosuch"])
    with pytest.raises(ExportError, match="cannot be used"):
        import_davis(davis_dir, videos, sequences=["../480p"])
    with pytest.raises(ExportError, match="annotation_format"):
        import_davis(davis_dir, videos, annotation_format="2018")
    assert not videos.exists()
    cleanup.append(fo.Dataset("taken-name"))
    with pytest.raises(ExportError, match="already exists"):
        import_davis(davis_dir, videos, dataset_name="taken-name", sequences=["libby"])
    videos.mkdir()
    (videos / "libby.mp4").write_bytes(b"precious")
    with pytest.raises(ExportError, match="libby.mp4"):
        import_davis(davis_dir, videos, sequences=["libby"])
    assert (videos / "libby.mp4").read_bytes() == b"precious"


def test_mismatched_mask_size_is_reported_and_cleaned_up(davis_dir, tmp_path):
    _davis_2017_folder(davis_dir, tmp_path / "davis2017", num_frames=3)
    Image.new("P", (10, 10)).save(tmp_path / "davis2017" / "Annotations" / "480p" / "swan" / "00001.png")
    datasets_before = set(fo.list_datasets())
    with pytest.raises(ExportError, match="00001.png is"):
        import_davis(tmp_path / "davis2017", tmp_path / "videos")
    assert list((tmp_path / "videos").iterdir()) == []
    assert set(fo.list_datasets()) == datasets_before
