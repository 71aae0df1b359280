"""The FiftyOne plugin's operators, executed for real through ``fiftyone.operators.execute_operator``.

Datasets are real videos (the conftest ``video_dataset``: blackswan.mp4 + two DAVIS clips); models are the
real architectures with random weights (SAM ViT-B, R50-DeAOT-L), passed as checkpoint files.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo

from samtrack_ops.fiftyone import FieldPrompts, prompts_from_fields
from samtrack_ops.fiftyone.prompts import prompt_from_json, prompt_to_json
from samtrack_ops.prompts import Box, Click, Mask, PromptError, Stroke, Text

TRACK = "@samtrack/samtrack/track_objects"
MODELS = "@samtrack/samtrack/manage_models"


def test_fiftyone_lists_the_operators():
    listing = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "fiftyone"), "operators", "list"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert TRACK in listing and MODELS in listing


# --- prompts from frame label fields ---------------------------------------------------------------


@pytest.fixture
def prompted_dataset(video_dataset):
    """The video dataset with prompt fields on the blackswan video (854x480): frames 1 and 5."""
    sample = video_dataset.first()
    sample.frames[1]["clicks"] = fo.Keypoints(keypoints=[
        fo.Keypoint(label="swan", points=[[0.5, 0.5], [0.25, 0.5]], index=1),
        fo.Keypoint(label="negative", points=[[0.1, 0.1]], index=1),
        fo.Keypoint(label="rock", points=[[0.2, 0.8], [0.3, 0.8]], positive=[True, False]),
    ])
    mask = np.zeros((48, 85), bool)
    mask[10:20, 5:50] = True
    sample.frames[5]["boxes"] = fo.Detections(detections=[
        fo.Detection(label="swan", bounding_box=[0.25, 0.5, 0.5, 0.25]),
        fo.Detection(label="water", bounding_box=[0.1, 0.1, 85 / 854, 48 / 480], mask=mask),
    ])
    sample.frames[5]["scribbles"] = fo.Polylines(polylines=[
        fo.Polyline(label="swan", points=[[[0.4, 0.4], [0.6, 0.45]], [[0.5, 0.6]]]),
    ])
    sample.save()
    return video_dataset


def test_keypoints_detections_polylines_become_prompts(prompted_dataset):
    sample = prompted_dataset.first()
    prompts = prompts_from_fields(sample, FieldPrompts("frames.clicks", "boxes", "scribbles"))
    clicks = [p for p in prompts if isinstance(p, Click)]
    assert [(c.frame, c.label) for c in clicks] == [(0, "swan"), (0, "rock")]
    assert np.allclose(clicks[0].points, [[427, 240], [213.5, 240], [85.4, 48]])
    assert clicks[0].labels.tolist() == [1, 1, 0]  # the "negative" keypoint with the same index joins it
    assert clicks[1].labels.tolist() == [1, 0]  # per-point 'positive' attribute
    (box,) = [p for p in prompts if isinstance(p, Box)]
    assert box.frame == 4 and np.allclose(box.box_xyxy, [213.5, 240, 640.5, 360])
    (mask,) = [p for p in prompts if isinstance(p, Mask)]
    assert mask.frame == 4 and mask.label == "water" and mask.mask.shape == (480, 854)
    assert mask.mask.sum() == mask_area(mask) == 450 and mask.mask[58, 90] and not mask.mask[57, 90]
    (stroke,) = [p for p in prompts if isinstance(p, Stroke)]
    assert stroke.frame == 4 and np.allclose(stroke.points, [[341.6, 192], [512.4, 216], [427, 288]])


def mask_area(mask_prompt):
    return int(mask_prompt.mask.sum())


def test_bad_prompt_fields_are_named(prompted_dataset):
    with pytest.raises(PromptError, match="frames.nothing does not exist"):
        FieldPrompts(keypoints_field="nothing").validate(prompted_dataset)
    with pytest.raises(PromptError, match="not Keypoints"):
        FieldPrompts(keypoints_field="boxes").validate(prompted_dataset)
    sample = prompted_dataset.first()
    sample.frames[2]["clicks"] = fo.Keypoints(keypoints=[fo.Keypoint(points=[[0.1, 0.1]], positive=[1, 0])])
    sample.save()
    with pytest.raises(PromptError, match="1 points but 2 'positive' flags"):
        prompts_from_fields(sample, FieldPrompts(keypoints_field="clicks"))


def test_prompts_round_trip_through_json():
    mask = np.zeros((30, 40), bool)
    mask[3:9, 5:31] = True
    prompts = [
        Click(frame=2, points=[[1, 2], [3, 4]], labels=[1, 0], label="a", object_id=3),
        Box(frame=0, box_xyxy=[1, 2, 30, 20], label="b"),
        Stroke(frame=1, points=[[1, 1], [5, 9]], use_points=True),
        Mask(frame=4, mask=mask, label="m"),
        Text(frame=0, text="person. car", box_threshold=0.3),
    ]
    for prompt in prompts:
        again = prompt_from_json(prompt_to_json(prompt))
        assert type(again) is type(prompt)
        for key, value in vars(prompt).items():
            assert np.array_equal(np.asarray(getattr(again, key)), np.asarray(value)), key
    with pytest.raises(PromptError, match="unknown prompt type"):
        prompt_from_json({"type": "lasso", "frame": 0})


# --- operator input checks (no model runs) ---------------------------------------------------------


def test_track_objects_refuses_images_with_a_clear_message(tmp_path):
    import cv2

    image = tmp_path / "image.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    dataset = fo.Dataset()
    dataset.add_sample(fo.Sample(filepath=str(image)))
    try:
        with pytest.raises(Exception, match="works on videos"):
            foo.execute_operator(TRACK, ctx={"dataset": dataset, "params": {"target": "DATASET", "text": "swan"}})
    finally:
        dataset.delete()


def test_track_objects_checks_prompts_before_running(video_dataset):
    no_prompts = {"target": "DATASET", "mode": "interactive"}
    with pytest.raises(Exception, match="interactive mode needs prompts"):
        foo.execute_operator(TRACK, ctx={"dataset": video_dataset, "params": no_prompts})
    outside = {"target": "CURRENT_SAMPLE", "clicks": [{"x": 900, "y": 10}]}
    sample_id = video_dataset.first().id
    with pytest.raises(Exception, match="outside the 854x480 frame"):
        foo.execute_operator(TRACK, ctx={"dataset": video_dataset, "current_sample": sample_id, "params": outside})
    bad_field = {"target": "DATASET", "label_field": "my-field", "text": "swan"}
    with pytest.raises(Exception, match="plain field name"):
        foo.execute_operator(TRACK, ctx={"dataset": video_dataset, "params": bad_field})


def test_manage_models_lists_checkpoints_and_says_where_they_go(tmp_path, monkeypatch, video_dataset):
    monkeypatch.setenv("SAMTRACK_CACHE_DIR", str(tmp_path))
    from samtrack_ops import models

    (tmp_path / models.CHECKPOINTS["deaott"].file_name).write_bytes(b"present")
    result = foo.execute_operator(MODELS, ctx={"dataset": video_dataset, "params": {}})
    table = result.result["table"]
    assert "| deaott | deaot | yes |" in table and "| sam_vit_h | sam | no |" in table
    assert f"`{tmp_path / models.CHECKPOINTS['sam_vit_h'].file_name}`" in table
    assert result.result["downloaded"] == {} and result.result["failed"] == {}


# --- end to end: real operators, real pipeline, random weights --------------------------------------


@pytest.fixture(scope="module")
def model_files(sam_vit_b_random_ckpt, r50_deaotl_ckpt):
    """Operator params naming the random-weight checkpoint files (operators load models themselves)."""
    return {
        "sam_model": "vit_b",
        "sam_checkpoint": str(sam_vit_b_random_ckpt),
        "tracker_model": "r50_deaotl",
        "tracker_checkpoint": str(r50_deaotl_ckpt),
        "device": "cpu",
    }


@pytest.fixture
def small_dataset(small_videos):
    """Three 4-frame 428x240 videos with metadata."""
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=str(path)) for path in small_videos.values()])
    dataset.compute_metadata()
    yield dataset
    dataset.delete()


def pipeline_results(sample, prompts, model_files):
    """What ``segment_and_track`` itself gives for the sample (the reference for stored labels)."""
    from samtrack_ops.pipeline import segment_and_track

    options = {k: v for k, v in model_files.items()}
    return list(segment_and_track(sample.filepath, prompts, "interactive", **options))


def assert_stored_like_pipeline(sample, field, reference, with_seg):
    """Every frame stored, masks = the pipeline's label maps pixel for pixel, track IDs stable."""
    from samtrack_ops.fiftyone.storage import detections_to_label_map

    sample.reload()
    shape = (sample.metadata.frame_height, sample.metadata.frame_width)
    assert len(reference) == sample.metadata.total_frame_count
    assert sum(frame[field] is not None for frame in sample.frames.values()) == len(reference)
    label_of_track = {}
    for result in reference:
        frame = sample.frames[result.frame_index + 1]
        detections = frame[field].detections
        assert np.array_equal(detections_to_label_map(frame[field], shape), result.label_map)
        if with_seg:
            assert np.array_equal(frame[f"{field}_seg"].mask, result.label_map)
        assert [d.index for d in detections] == [o.id for o in result.objects]
        for detection, obj in zip(detections, result.objects):
            assert detection.label == obj.label and detection.confidence == pytest.approx(obj.score)
            assert label_of_track.setdefault(detection.index, detection.label) == detection.label
    return label_of_track


def test_track_objects_with_form_prompts(small_dataset, model_files, sam_vit_b_random_ckpt):
    from samtrack_ops import models

    sample = small_dataset.first()
    params = {
        "target": "CURRENT_SAMPLE",
        "mode": "interactive",
        "prompt_frame": 1,
        "clicks": [{"x": 210, "y": 120, "positive": True, "object": 1}, {"x": 30, "y": 20, "positive": False, "object": 1}],
        "boxes": [{"x0": 10, "y0": 150, "x1": 120, "y1": 230, "label": "rock"}],
        "label_field": "tracks",
        "store_seg": True,
        **model_files,
    }
    ctx = {"dataset": small_dataset, "current_sample": sample.id, "params": params}
    result = foo.execute_operator(TRACK, ctx=ctx)
    assert result.result == {"label_field": "tracks", "done": 1, "skipped": 0}

    prompts = [Click(frame=0, points=[[210, 120], [30, 20]], labels=[1, 0], label="object 1"),
               Box(frame=0, box_xyxy=[10, 150, 120, 230], label="rock")]
    tracks = assert_stored_like_pipeline(sample, "tracks", pipeline_results(sample, prompts, model_files), True)
    assert set(tracks.values()) <= {"object 1", "rock"}
    assert small_dataset.count("frames.tracks") == 4  # only the current sample was processed

    info = small_dataset.get_run_info("samtrack_tracks")
    assert info.config.mode == "interactive" and info.config.label_field == "tracks"
    assert info.config.models["sam"] == {"name": "sam_vit_b", "checkpoint": str(sam_vit_b_random_ckpt),
                                         "sha256": models.sha256_of(sam_vit_b_random_ckpt)}
    assert info.config.models["tracker"]["name"] == "r50_deaotl"
    assert [p["type"] for p in info.config.prompts["all_videos"]] == ["click", "box"]
    videos = small_dataset.load_run_results("samtrack_tracks").videos
    assert videos[sample.id]["status"] == "done" and videos[sample.id]["frames"] == 4

    again = foo.execute_operator(TRACK, ctx={**ctx, "params": {**params, "skip_existing": True}})
    assert again.result == {"label_field": "tracks", "done": 0, "skipped": 1}


def test_track_objects_with_prompts_from_label_fields(small_dataset, model_files):
    sample = small_dataset[small_dataset.values("id")[1]]  # car-shadow, 428x240
    frame = sample.frames[1]
    frame["clicks"] = fo.Keypoints(keypoints=[
        fo.Keypoint(label="car", points=[[0.45, 0.5], [0.5, 0.55]], index=1),
        fo.Keypoint(label="negative", points=[[0.05, 0.05]], index=1),
    ])
    mask = np.zeros((30, 40), bool)
    mask[5:25, 10:35] = True
    frame["boxes"] = fo.Detections(detections=[
        fo.Detection(label="tree", bounding_box=[0.7, 0.1, 0.2, 0.4]),
        fo.Detection(label="shadow", bounding_box=[0.1, 0.7, 40 / 428, 30 / 240], mask=mask),
    ])
    frame["scribbles"] = fo.Polylines(polylines=[fo.Polyline(label="road", points=[[[0.1, 0.9], [0.9, 0.95]]])])
    sample.save()

    params = {
        "target": "SELECTED_SAMPLES",
        "prompt_source": "fields",
        "keypoints_field": "clicks",
        "detections_field": "boxes",
        "polylines_field": "scribbles",
        "label_field": "from_fields",
        **model_files,
    }
    result = foo.execute_operator(TRACK, ctx={"dataset": small_dataset, "selected": [sample.id], "params": params})
    assert result.result["done"] == 1

    prompts = prompts_from_fields(sample, FieldPrompts("clicks", "boxes", "scribbles"))
    assert sorted(type(p).__name__ for p in prompts) == ["Box", "Click", "Mask", "Stroke"]
    tracks = assert_stored_like_pipeline(sample, "from_fields", pipeline_results(sample, prompts, model_files), False)
    assert set(tracks.values()) <= {"car", "tree", "shadow", "road"}
    assert "from_fields_seg" not in small_dataset.get_frame_field_schema()
    assert small_dataset.get_run_info("samtrack_from_fields").config.prompts == {
        "fields": {"keypoints_field": "clicks", "detections_field": "boxes", "polylines_field": "scribbles"}
    }
