"""The FiftyOne plugin's operators, executed for real through ``fiftyone.operators.execute_operator``.

Datasets are real videos (the conftest ``video_dataset``: blackswan.mp4 + two DAVIS clips); models are the
real architectures with random weights (SAM ViT-B, DeAOT-T), passed as checkpoint files.
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
