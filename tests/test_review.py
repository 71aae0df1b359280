"""Review queue (samtrack_ops.fiftyone.review) on a real DAVIS clip: drift and ID swaps come first."""

import numpy as np
import pytest

import fiftyone as fo
from fiftyone.operators import execute_operator

from samtrack_ops.fiftyone.review import build_review_queue, mark_reviewed, review_view_name
from samtrack_ops.fiftyone.runs import write_results
from samtrack_ops.pipeline import FrameResult, ObjectInfo
from conftest import write_mp4

FRAMES = 16
DRIFT = 5  # frames 5..10 (0-based) of object 1 drift
SWAP = 13  # IDs 1 and 2 exchanged from frame 13 (0-based) on


def _two_objects(mask):
    """A DAVIS foreground mask (H, W) bool split at its median column into objects 1 (left) and 2 (right)."""
    label_map = np.zeros(mask.shape, np.uint8)
    split = int(np.median(np.nonzero(mask)[1]))
    label_map[:, :split][mask[:, :split]] = 1
    label_map[:, split:][mask[:, split:]] = 2
    return label_map


def _drifted(label_map):
    """Object 1 slid 60 px down-left onto the background and cut to its upper half (a tracker drifting)."""
    drifted = label_map.copy()
    drifted[drifted == 1] = 0
    rows, cols = np.nonzero(label_map == 1)
    keep = rows < np.median(rows)
    rows, cols = np.clip(rows[keep] + 60, 0, label_map.shape[0] - 1), np.clip(cols[keep] - 60, 0, None)
    free = drifted[rows, cols] == 0
    drifted[rows[free], cols[free]] = 1
    return drifted


def _swapped(label_map):
    return np.choose(label_map, [0, 2, 1]).astype(label_map.dtype)


@pytest.fixture
def reviewed_dataset(davis_frames, tmp_path):
    """A dataset with bmx-trees (16 frames) whose frames.tracks hold the ground truth split into two
    objects, object 1 drifting on frames DRIFT..DRIFT+5 and the IDs swapped from frame SWAP on."""
    clip = davis_frames("bmx-trees", FRAMES)
    dataset = fo.Dataset()
    sample = fo.Sample(filepath=str(write_mp4(clip.frames, tmp_path / "bmx.mp4")))
    dataset.add_sample(sample)
    dataset.compute_metadata()
    maps = [_two_objects(mask) for mask in clip.masks]
    maps[DRIFT:DRIFT + 6] = [_drifted(m) for m in maps[DRIFT:DRIFT + 6]]
    maps[SWAP:] = [_swapped(m) for m in maps[SWAP:]]
    results = (FrameResult(index, label_map, [ObjectInfo(1, "rider", 0.9), ObjectInfo(2, "bike", 0.9)])
               for index, label_map in enumerate(maps))
    write_results(dataset, sample.id, results, {"tracks": "Detections"}, "tracks")
    yield dataset
    dataset.delete()


def test_drift_and_swap_lead_the_queue_and_reviewed_frames_drop_out(reviewed_dataset):
    queue = build_review_queue(reviewed_dataset, "tracks")
    clips = list(zip(queue.values("support"), queue.values("tracks_review.label"), queue.values("tracks_review.confidence")))
    print("review queue (support, reason, suspicion):", clips)
    top = {tuple(support) for support, _, _ in clips[:3]}
    # frame numbers are 1-based: the drift starts on DRIFT + 1 and ends (labels jump back) on DRIFT + 7
    assert {(DRIFT + 1, DRIFT + 1), (DRIFT + 7, DRIFT + 7), (SWAP + 1, SWAP + 1)} == top
    assert [label for support, label, _ in clips if support == [SWAP + 1, SWAP + 1]] == ["swap"]
    assert all(confidence < 0.5 for support, _, confidence in clips[3:])
    assert reviewed_dataset.load_saved_view(review_view_name("tracks")).count() == len(clips)
    sample = reviewed_dataset.first()
    assert sample["tracks_flagged"] == 3 and sample["tracks_suspicion"] == 1.0

    mark_reviewed(sample, "tracks", [SWAP + 1])
    frame = sample.frames[DRIFT + 1]
    frame["tracks"].detections[0].tags.append("reviewed")  # tagged in the App
    sample.save()
    remaining = build_review_queue(reviewed_dataset, "tracks")
    assert [tuple(s) for s in remaining.values("support")] == [(DRIFT + 7, DRIFT + 7)]


def test_review_queue_operator_saves_the_view(reviewed_dataset):
    result = execute_operator("@samtrack/samtrack/build_review_queue", dataset=reviewed_dataset,
                              params={"label_field": "tracks"})
    assert result.result["clips"] == 3
    assert review_view_name("tracks") in reviewed_dataset.list_saved_views()
