"""Unusual real-world inputs: rotated and damaged videos, variable frame rates, other tools' masks, more than
255 objects, odd frame sizes, non-finite prompt coordinates and unwritable export folders.

Clips are made with ffmpeg (tiny test patterns, a few frames); the tracker is DeAOT-T's real architecture,
narrowed and randomly initialised (the tests are about plumbing, not tracking quality).
"""

import dataclasses
import errno
import json
import re
import subprocess
import tempfile
import uuid
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import fiftyone as fo

from samtrack_ops.export import ExportError, export_coco, export_davis, import_davis
from samtrack_ops.export import _atomic
from samtrack_ops.fiftyone import track_samples
from samtrack_ops.fiftyone.prompts import FieldPrompts, frame_size, prompts_from_fields
from samtrack_ops.fiftyone.storage import detection_mask, detections_to_label_map, label_map_to_detections
from samtrack_ops.passes import TrackPass
from samtrack_ops.prompts import Box, Click, Mask, PromptError, Stroke
from samtrack_ops.tracker.config import get_config
from samtrack_ops.tracker.network import build_network
from samtrack_ops.tracker.tracker import Tracker
from samtrack_ops.video import VideoError, VideoWarning, open_frames

# --- helpers ---------------------------------------------------------------------------------------


def ffmpeg(*arguments):
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *map(str, arguments)], check=True)


def pattern_clip(path, frames, size="64x48", rate=10, *extra):
    """An H.264 mp4 of ffmpeg's test pattern (every frame different), ``frames`` long, header first."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}", "-frames:v", frames, "-c:v", "libx264",
           "-g", 1, "-pix_fmt", "yuv420p", "-movflags", "+faststart", *extra, path)
    return path


def video_sample(path):
    """A new dataset holding one video sample with metadata: (dataset, sample)."""
    dataset = fo.Dataset(f"odd-inputs-{uuid.uuid4().hex[:8]}")
    dataset.add_sample(fo.Sample(filepath=str(path)))
    dataset.compute_metadata()
    return dataset, dataset.first()


@pytest.fixture(scope="module")
def tiny_tracker():
    """DeAOT-T (MobileNetV2 encoder, one LSTT layer) narrowed to 32-wide tokens, random weights."""
    torch.manual_seed(0)
    return Tracker(build_network(dataclasses.replace(get_config("deaott"), embed_dim=32)))


@pytest.fixture
def cleanup():
    datasets = []
    yield datasets
    for dataset in datasets:
        dataset.delete()


def _center_mask(frame_size_hw, label_value=True):
    mask = np.zeros(frame_size_hw, bool)
    height, width = frame_size_hw
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = label_value
    return mask


# --- 17. non-finite prompt coordinates -------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make", [
    lambda bad: Click(0, [[10, 10], [bad, 5]], [1, 1]),
    lambda bad: Box(0, [1, 2, bad, 9]),
    lambda bad: Stroke(0, [[3, bad], [8, 9]]),
], ids=["click", "box", "stroke"])
def test_non_finite_coordinates_are_refused(make, bad):
    with pytest.raises(PromptError, match="finite"):
        make(bad)


def test_validate_refuses_a_nan_set_after_construction():
    click = Click(0, [[10, 10]], [1])
    click.points[0, 0] = np.nan
    with pytest.raises(PromptError, match=r"finite.*\[nan, 10.0\]"):
        click.validate((48, 64))


# --- 5. masks stored at another resolution than their box ------------------------------------------

OTHER_TOOL_DETECTIONS = [  # (bounding_box, mask shape): odd sizes, touching / over the border, negative
    ([0.25, 0.25, 0.5, 0.5], (10, 10)),
    ([0.13, 0.31, 0.37, 0.29], (7, 13)),
    ([0.0, 0.0, 1.0, 1.0], (5, 3)),
    ([0.6, 0.7, 0.4, 0.3], (11, 9)),
    ([0.8, 0.8, 0.5, 0.5], (10, 10)),
    ([-0.02, 0.1, 0.5, 0.5], (10, 10)),
    ([-0.3, -0.2, 0.6, 0.7], (9, 17)),
    ([1.2, 0.1, 0.1, 0.1], (4, 4)),
]
FRAME_SIZES = [(40, 40), (37, 53), (101, 99)]


def _other_tool_detection(bounding_box, shape, index=1, seed=0):
    mask = np.random.default_rng(seed).random(shape) < 0.6
    return fo.Detection(label="thing", bounding_box=bounding_box, mask=mask, index=index)


@pytest.mark.parametrize("frame_hw", FRAME_SIZES)
@pytest.mark.parametrize("bounding_box, shape", OTHER_TOOL_DETECTIONS)
def test_detection_mask_is_fiftyones_rendering(frame_hw, bounding_box, shape):
    detection = _other_tool_detection(bounding_box, shape)
    expected = detection.to_segmentation(frame_size=frame_hw[::-1], target=1).mask.astype(bool)
    np.testing.assert_array_equal(detection_mask(detection, frame_hw), expected)
    label_map = detections_to_label_map(fo.Detections(detections=[detection]), frame_hw)
    np.testing.assert_array_equal(label_map == 1, expected)


def test_half_mask_in_a_box_covers_half_the_box():
    """The issue's case: a 10x10 mask, left half set, in a 20x20-pixel box of a 40x40 frame -> 200 pixels
    (the mask is stretched to its box), not the 50 of pasting it at its stored size."""
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    detection = fo.Detection(bounding_box=[0.25, 0.25, 0.5, 0.5], mask=mask, index=3)
    label_map = detections_to_label_map(fo.Detections(detections=[detection]), (40, 40))
    assert (label_map == 3).sum() == 200
    assert (label_map[10:30, 10:20] == 3).all() and not label_map[:, 20:].any()


@pytest.mark.parametrize("frame_hw", [(37, 53), (101, 99), (480, 854)])
def test_own_masks_are_rendered_by_fiftyone_on_exactly_their_pixels(frame_hw):
    """Stored boxes survive FiftyOne's truncation to whole pixels, so FiftyOne's own conversion (and the
    App) put every samtrack mask back on exactly its pixels."""
    rng = np.random.default_rng(1)
    height, width = frame_hw
    for _ in range(10):
        label_map = np.zeros(frame_hw, np.uint16)
        for track_id in range(1, 6):
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            label_map[y0 : rng.integers(y0 + 1, height + 1), x0 : rng.integers(x0 + 1, width + 1)] = track_id
        for detection in label_map_to_detections(label_map).detections:
            rendered = detection.to_segmentation(frame_size=(width, height), target=1).mask.astype(bool)
            np.testing.assert_array_equal(rendered, label_map == detection.index)


def test_field_prompts_and_exports_read_other_tools_masks_like_fiftyone(tmp_path, cleanup):
    dataset, sample = video_sample(pattern_clip(tmp_path / "clip.mp4", 3))
    cleanup.append(dataset)
    detection = _other_tool_detection([-0.02, 0.13, 0.51, 0.47], (9, 14), index=4)
    sample.frames[2]["gt"] = fo.Detections(detections=[detection])
    sample.save()
    expected = detection.to_segmentation(frame_size=(64, 48), target=1).mask.astype(bool)

    (prompt,) = prompts_from_fields(sample, FieldPrompts(detections_field="gt"))
    assert isinstance(prompt, Mask) and prompt.frame == 1
    np.testing.assert_array_equal(prompt.mask, expected)

    export_davis(dataset, "gt", tmp_path / "davis")
    annotation = np.array(Image.open(tmp_path / "davis" / "Annotations" / "480p" / "clip" / "00001.png"))
    np.testing.assert_array_equal(annotation > 0, expected)

    export_coco(dataset, "gt", tmp_path / "coco")
    (annotation,) = json.loads((tmp_path / "coco" / "labels.json").read_text())["annotations"]
    assert annotation["area"] == expected.sum()


# --- 6. more than 255 objects in one tracking pass -------------------------------------------------


def test_a_pass_follows_more_than_255_objects(tiny_tracker):
    """260 objects (track IDs 1001..1260) in one pass: compact IDs go uint16, and the IDs come back."""
    height, width = 32, 48
    label_map = np.zeros((height, width), np.uint16)
    label_map.reshape(-1)[: 260 * 4] = np.repeat(np.arange(1001, 1261), 4)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    track_pass = TrackPass(tiny_tracker, np.uint16)
    track_pass.add_reference(0, frame, label_map)
    tracked, scores = track_pass.track(frame)
    assert tracked.dtype == np.uint16
    found = set(np.unique(tracked).tolist()) - {0}
    assert found and found <= set(range(1001, 1261)) and set(scores) == found


# --- 4. rotated videos -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rotated_clip(tmp_path_factory):
    """A 64x48 stream tagged to display rotated by 90 degrees: it decodes as 48 wide, 64 high."""
    folder = tmp_path_factory.mktemp("rotated")
    plain = pattern_clip(folder / "plain.mp4", 4)
    rotated = folder / "rotated.mp4"
    ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v", "rotate=90", rotated)
    return rotated


def test_rotated_video_uses_the_decoded_frame_size(rotated_clip, cleanup):
    dataset, sample = video_sample(rotated_clip)
    cleanup.append(dataset)
    assert (sample.metadata.frame_width, sample.metadata.frame_height) == (64, 48)  # the stream's, unrotated
    assert next(iter(open_frames(rotated_clip))).shape == (64, 48, 3)
    with pytest.warns(VideoWarning, match="64x48 .* decode as 48x64 .*rotation tag"):
        assert frame_size(sample) == (64, 48)


def test_rotated_video_field_prompts_scale_by_the_decoded_frame(rotated_clip, cleanup):
    dataset, sample = video_sample(rotated_clip)
    cleanup.append(dataset)
    sample.frames[1]["clicks"] = fo.Keypoints(keypoints=[fo.Keypoint(label="cat", points=[(0.5, 0.9)])])
    sample.frames[1]["boxes"] = fo.Detections(detections=[fo.Detection(label="dog", bounding_box=[0.25, 0.5, 0.5, 0.25])])
    sample.save()
    with pytest.warns(VideoWarning):
        click, box = prompts_from_fields(sample, FieldPrompts(keypoints_field="clicks", detections_field="boxes"))
    np.testing.assert_allclose(click.points, [[24.0, 57.6]])  # x of 48, y of 64
    np.testing.assert_allclose(box.box_xyxy, [12, 32, 36, 48])


def test_rotated_video_tracks_a_prompt_drawn_on_the_decoded_frame(rotated_clip, cleanup, tiny_tracker,
                                                                 sam_vit_b_random_ckpt):
    dataset, sample = video_sample(rotated_clip)
    cleanup.append(dataset)
    mask = _center_mask((64, 48))
    with pytest.warns(VideoWarning, match="rotation tag"):
        track_samples(dataset, [Mask(0, mask, label="thing")], "tracks", tracker=tiny_tracker,
                      sam_checkpoint=str(sam_vit_b_random_ckpt), download=False)
    sample.reload()
    assert len(sample.frames) == 4
    first = detections_to_label_map(sample.frames[1]["tracks"], (64, 48))
    np.testing.assert_array_equal(first > 0, mask)


# --- 16 / 7. damaged and variable-frame-rate videos -----------------------------------------------


def _previous_labels(sample, frame_count):
    for number in range(1, frame_count + 1):
        sample.frames[number]["tracks"] = fo.Detections(detections=[
            fo.Detection(label=f"previous-{number}", bounding_box=[0.1, 0.1, 0.2, 0.2], mask=np.ones((4, 4), bool),
                         index=7)])
    sample.save()


def _stored_labels(sample):
    sample.reload()
    return {n: [d.label for d in f["tracks"].detections] if f["tracks"] else None for n, f in sample.frames.items()}


@pytest.fixture
def truncated_clip(tmp_path):
    """A 15-frame mp4 whose header is intact but whose second half is cut off: 7 frames decode."""
    path = pattern_clip(tmp_path / "truncated.mp4", 15)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_video_fails_by_default_and_keeps_every_previous_label(truncated_clip, cleanup, tiny_tracker,
                                                                        sam_vit_b_random_ckpt):
    dataset, sample = video_sample(truncated_clip)
    cleanup.append(dataset)
    assert sample.metadata.total_frame_count == 15
    _previous_labels(sample, 15)
    before = _stored_labels(sample)
    with pytest.raises(VideoError, match=r"decodes to only 7 frames, but its container says 15 and its FiftyOne "
                                         r"metadata .* says 15.*on_missing_frames='warn'"):
        track_samples(dataset, [Mask(0, _center_mask((48, 64)))], "tracks", tracker=tiny_tracker,
                      sam_checkpoint=str(sam_vit_b_random_ckpt), download=False)
    assert _stored_labels(sample) == before


def test_truncated_video_with_warn_labels_decoded_frames_and_keeps_the_others(truncated_clip, cleanup, tiny_tracker,
                                                                             sam_vit_b_random_ckpt):
    dataset, sample = video_sample(truncated_clip)
    cleanup.append(dataset)
    _previous_labels(sample, 15)
    fractions = []
    with pytest.warns(VideoWarning, match="decodes to only 7 frames"):
        track_samples(dataset, [Mask(0, _center_mask((48, 64)), label="new")], "tracks", tracker=tiny_tracker,
                      sam_checkpoint=str(sam_vit_b_random_ckpt), download=False, on_missing_frames="warn",
                      progress=lambda bar: fractions.append(bar.progress))
    stored = _stored_labels(sample)
    assert all(stored[n] in (["new"], []) for n in range(1, 8)) and stored[1] == ["new"]
    assert [stored[n] for n in range(8, 16)] == [[f"previous-{n}"] for n in range(8, 16)]
    assert max(fractions) <= 1.0


def test_bad_missing_frames_option_is_refused(truncated_clip):
    with pytest.raises(ValueError, match="on_missing_frames must be one of"):
        open_frames(truncated_clip, on_missing_frames="ignore")


def test_variable_frame_rate_is_detected_and_frames_stay_in_decoded_order(tmp_path):
    """Frames 0-5 every 100 ms, then a 400 ms gap: a warning, and all 12 frames in decoding order."""
    path = pattern_clip(tmp_path / "vfr.mp4", 12, "64x48", 10, "-vf", "setpts='(N+if(gt(N,5),3,0))*0.1/TB'",
                        "-fps_mode", "vfr")
    with pytest.warns(VideoWarning, match=r"variable frame rate \(frame intervals from 100 to 400 ms\)"):
        frames = list(open_frames(path))
    assert len(frames) == 12


def test_constant_frame_rate_video_decodes_without_warnings(tmp_path):
    path = pattern_clip(tmp_path / "cfr.mp4", 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VideoWarning)
        assert len(list(open_frames(path))) == 12


def test_more_frames_than_promised_are_kept_with_a_warning(tmp_path):
    source = open_frames(pattern_clip(tmp_path / "clip.mp4", 5))
    source.expect(3, "its FiftyOne metadata")
    with pytest.warns(VideoWarning, match="decodes to 5 frames, but its FiftyOne metadata says 3"):
        assert len(list(source)) == 5


# --- 12. odd frame sizes in the mp4 the DAVIS import writes ------------------------------------------


def _probe(path):
    output = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "stream=width,height,pix_fmt", "-of", "json", str(path)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output)["streams"][0]


def test_odd_sized_davis_sequence_imports_as_browser_playable_video(tmp_path, cleanup):
    images = tmp_path / "davis" / "JPEGImages" / "480p" / "odd"
    annotations = tmp_path / "davis" / "Annotations" / "480p" / "odd"
    images.mkdir(parents=True)
    annotations.mkdir(parents=True)
    rng = np.random.default_rng(0)
    masks = []
    for index in range(3):
        cv2.imwrite(str(images / f"{index:05d}.jpg"), rng.integers(0, 256, (45, 63, 3), dtype=np.uint8))
        mask = np.zeros((45, 63), np.uint8)
        mask[10 + index : 30, 20:62] = 255
        masks.append(mask > 0)
        cv2.imwrite(str(annotations / f"{index:05d}.png"), mask)
    dataset = import_davis(tmp_path / "davis", tmp_path / "videos")
    cleanup.append(dataset)
    assert _probe(tmp_path / "videos" / "odd.mp4") == {"width": 64, "height": 46, "pix_fmt": "yuv420p"}
    sample = dataset.first()
    assert (sample.metadata.frame_height, sample.metadata.frame_width) == (46, 64)
    for number, mask in enumerate(masks, 1):
        label_map = detections_to_label_map(sample.frames[number]["ground_truth"], (46, 64))
        np.testing.assert_array_equal(label_map[:45, :63] > 0, mask)
        assert not label_map[45:].any() and not label_map[:, 63:].any()


# --- 19. exports onto paths that cannot be written -------------------------------------------------


@pytest.fixture
def tracked_dataset(tmp_path, cleanup):
    dataset, sample = video_sample(pattern_clip(tmp_path / "clip.mp4", 2))
    cleanup.append(dataset)
    sample.frames[1]["tracks"] = label_map_to_detections(_center_mask((48, 64)).astype(np.uint8))
    sample.save()
    return dataset


@pytest.mark.parametrize("exporter", [export_coco, export_davis])
def test_export_under_a_file_names_the_file(tracked_dataset, tmp_path, exporter):
    blocking = tmp_path / "notes.txt"
    blocking.write_text("a file, not a folder")
    for export_dir in (blocking / "export", blocking / "deeper" / "export"):
        with pytest.raises(ExportError, match=f"{blocking} is a file, not a folder"):
            exporter(tracked_dataset, "tracks", export_dir)
    assert blocking.read_text() == "a file, not a folder"


def test_export_where_no_folder_can_be_made_is_an_export_error(tracked_dataset):
    """/proc refuses new folders even to root."""
    with pytest.raises(ExportError, match=r"cannot export to /proc/samtrack-export: creating the export folder in "
                                          r"/proc failed \(No such file or directory\)") as raised:
        export_coco(tracked_dataset, "tracks", "/proc/samtrack-export")
    assert ".partial-" not in str(raised.value)


def _read_only(*_args, **_kwargs):
    raise OSError(errno.EROFS, "Read-only file system", "/mnt/exports/.export.partial-abc123")


@pytest.mark.parametrize("step, module, name", [
    ("creating the export folder in", tempfile, "mkdtemp"),
    ("writing the export into", cv2, "imwrite"),
    ("writing the export into", _atomic, "_replace"),
])
def test_read_only_file_system_is_an_export_error_at_every_step(tracked_dataset, tmp_path, monkeypatch, step,
                                                                module, name):
    monkeypatch.setattr(module, name, _read_only)
    export_dir = tmp_path / "export"
    expected = re.escape(f"{step} {tmp_path.resolve()} failed (Read-only file system)")
    with pytest.raises(ExportError, match=expected) as raised:
        export_coco(tracked_dataset, "tracks", export_dir)
    assert ".partial-" not in str(raised.value)
    assert not export_dir.exists() and not list(tmp_path.glob(".export.partial-*"))
