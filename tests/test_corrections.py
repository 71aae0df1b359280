"""Corrections (samtrack_ops.fiftyone.corrections) on a real DAVIS clip with the random-weight DeAOT.

Random weights track garbage, so the stored labels after the corrected frame are built from the
tracker's own output of the very re-propagation the correction runs: then agreement, and early stop,
are possible, and the frames where it must disagree are known (the drifted ones).
"""

import cv2
import numpy as np
import pytest
from bson import ObjectId

import fiftyone as fo
import fiftyone.core.odm as foo
from fiftyone.operators import execute_operator

from samtrack_ops.fiftyone import corrections, staging
from samtrack_ops.fiftyone.records import video_record
from samtrack_ops.fiftyone.runs import write_results
from samtrack_ops.passes import TrackPass
from samtrack_ops.pipeline import FrameResult
from samtrack_ops.prompts import Mask
from samtrack_ops.tracker import load_tracker
from samtrack_ops.video import open_frames
from conftest import write_mp4

FRAMES = 10
K = 4  # corrected frame (1-based)
DRIFTED = 2  # frames K+1..K+DRIFTED hold a drifted object 1
AGREE = 2
CORRECT = "@samtrack/samtrack/correct_track"


@pytest.fixture(scope="module")
def tracker(r50_deaotl_ckpt):
    return load_tracker("r50_deaotl", checkpoint=r50_deaotl_ckpt, device="cpu")


@pytest.fixture(scope="module")
def clip(davis_frames, tmp_path_factory):
    """bmx-trees, 10 frames at 240x428: (mp4 path, ground truth split into objects 1 and 2 per frame)."""
    source = davis_frames("bmx-trees", FRAMES)
    frames = np.stack([cv2.resize(f, (428, 240), interpolation=cv2.INTER_AREA) for f in source.frames])
    masks = [cv2.resize(m.astype(np.uint8), (428, 240), interpolation=cv2.INTER_NEAREST) > 0 for m in source.masks]
    maps = []
    for mask in masks:
        label_map = np.zeros(mask.shape, np.uint16)
        split = int(np.median(np.nonzero(mask)[1]))
        label_map[:, :split][mask[:, :split]] = 1
        label_map[:, split:][mask[:, split:]] = 2
        maps.append(label_map)
    return write_mp4(frames, tmp_path_factory.mktemp("corrections") / "bmx.mp4"), maps


def _tracker_output(tracker, path, maps):
    """Label maps (1-based dict) of the re-propagation a correction of object 1 on frame K to its ground
    truth runs: references = stored frame K-1 and the corrected frame K, then frames K+1.. tracked."""
    frames = list(open_frames(str(path)))
    track_pass = TrackPass(tracker, np.uint16)
    track_pass.add_reference(K - 1, frames[K - 2], maps[K - 2])
    track_pass.add_reference(K, frames[K - 1], maps[K - 1])
    return {number: track_pass.track(frames[number - 1])[0] for number in range(K + 1, FRAMES + 1)}


def _stored_maps(maps, tracked):
    """Ground truth up to K-1; object 1 cut in half on K (the error to correct) and on K+1..K+DRIFTED
    (drift); from K+DRIFTED+1 on object 1 is where the tracker will put it (so the correction agrees)."""
    stored = [m.copy() for m in maps]
    for number in range(K, K + DRIFTED + 1):
        label_map = stored[number - 1]
        rows = np.nonzero(label_map == 1)[0]
        label_map[(label_map == 1) & (np.arange(label_map.shape[0])[:, None] > np.median(rows))] = 0
    for number in range(K + DRIFTED + 1, FRAMES + 1):
        label_map = stored[number - 1]
        label_map[label_map == 1] = 0
        label_map[tracked[number] == 1] = 1
    return stored


def _frame_documents(dataset, sample_id):
    frames = foo.get_db_conn()[dataset._frame_collection_name]
    return {doc["frame_number"]: doc for doc in frames.find({"_sample_id": ObjectId(sample_id)})}


@pytest.fixture(scope="module")
def stored(clip, tracker):
    """The label maps stored before each correction (see _stored_maps), computed once."""
    path, maps = clip
    return _stored_maps(maps, _tracker_output(tracker, path, maps))


@pytest.fixture
def corrected_video(clip, stored):
    """(dataset, sample, stored label maps, ground truth maps) with the stored maps written as track_samples does."""
    path, maps = clip
    dataset = fo.Dataset()
    sample = fo.Sample(filepath=str(path))
    dataset.add_sample(sample)
    dataset.compute_metadata()
    write_results(dataset, sample.id, (FrameResult(i, m, []) for i, m in enumerate(stored)),
                  {"tracks": "Detections"}, "tracks")
    yield dataset, sample, stored, maps
    dataset.delete()


def test_correction_rewrites_only_k_to_j_and_stops_once_agreeing(corrected_video, tracker):
    dataset, sample, stored, maps = corrected_video
    before = _frame_documents(dataset, sample.id)
    mask = Mask(frame=K - 1, mask=maps[K - 1] == 1)
    result = corrections.resegment_track(sample, "tracks", K, 1, mask, tracker=tracker, agree_frames=AGREE)
    print(f"correction on frame {K}: rewrote {result.first_frame}..{result.last_frame}, "
          f"tracked {result.tracked_frames} frames, early stop: {result.stopped_early}")
    j = K + DRIFTED
    assert (result.first_frame, result.last_frame, result.stopped_early) == (K, j, True)
    assert result.stop_reason == corrections.STOPPED_AGREEING
    assert result.tracked_frames == DRIFTED + AGREE

    after = _frame_documents(dataset, sample.id)
    assert {n: d for n, d in after.items() if not K <= n <= j} == {n: d for n, d in before.items() if not K <= n <= j}
    video = corrections.StoredVideo(dataset[sample.id], "tracks")
    assert np.array_equal(video.label_map(K), maps[K - 1])  # the corrected frame holds the correction
    for number in range(K, j + 1):
        old = {d["index"]: d for d in before[number]["tracks"]["detections"]}
        new = {d["index"]: d for d in after[number]["tracks"]["detections"]}
        assert new[1]["provenance"] == "corrected"
        covered = (video.label_map(number) == 1) & (stored[number - 1] == 2)
        if not covered.any():  # object 2 keeps its stored Detection unless object 1 now covers it
            assert new[2] == old[2]
        else:
            assert np.array_equal(video.label_map(number) == 2, (stored[number - 1] == 2) & ~covered)
    history = video_record(dataset, sample.id, "tracks")["corrections"]
    assert [(c["action"], c["object_id"], c["frames"]) for c in history] == [("resegment", 1, [K, j])]


def test_without_early_stop_the_correction_runs_to_the_end(corrected_video, tracker):
    dataset, sample, _, maps = corrected_video
    mask = Mask(frame=K - 1, mask=maps[K - 1] == 1)
    result = corrections.resegment_track(sample, "tracks", K, 1, mask, tracker=tracker, early_stop=False)
    print(f"without early stop: rewrote {result.first_frame}..{result.last_frame}, tracked {result.tracked_frames}")
    assert (result.first_frame, result.last_frame, result.tracked_frames) == (K, FRAMES, FRAMES - K)
    assert (result.stopped_early, result.stop_reason) == (False, "")


def test_a_failing_correction_changes_nothing(corrected_video, tracker, monkeypatch):
    dataset, sample, _, maps = corrected_video
    before = _frame_documents(dataset, sample.id)
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("injected fault while building frame documents")
        return original(*args)

    original = corrections._frame_document
    monkeypatch.setattr(corrections, "_frame_document", failing)
    with pytest.raises(RuntimeError, match="injected"):
        corrections.resegment_track(sample, "tracks", K, 1, Mask(frame=K - 1, mask=maps[K - 1] == 1), tracker=tracker)
    assert _frame_documents(dataset, sample.id) == before
    assert (video_record(dataset, sample.id, "tracks") or {}).get("corrections") is None
    assert not staging.interrupted_writes(dataset, stale_after=0)


def test_delete_merge_and_relabel(corrected_video):
    dataset, sample, stored, _ = corrected_video
    before = _frame_documents(dataset, sample.id)
    result = corrections.merge_tracks(sample, "tracks", 2, 1, frame_number=8)
    assert (result.first_frame, result.last_frame) == (8, FRAMES)
    video = corrections.StoredVideo(dataset[sample.id], "tracks")
    assert np.array_equal(video.label_map(9), np.where(stored[8] == 1, 2, stored[8]))
    assert _frame_documents(dataset, sample.id)[7] == before[7]
    corrections.delete_track(sample, "tracks", 2, frame_number=9)
    video = corrections.StoredVideo(dataset[sample.id], "tracks")
    assert not video.label_map(9).any() and video.label_map(8).any()
    corrections.relabel_track(sample, "tracks", 1, "rider")
    assert set(dataset.distinct("frames.tracks.detections.label")) == {"rider", "object"}
    assert not corrections.human_edits(dataset[sample.id], "tracks")  # our own rewrites are not human edits


def test_app_edits_are_detected_kept_and_propagated(corrected_video, tracker):
    dataset, sample, _, maps = corrected_video
    sample = dataset[sample.id]
    edited = sample.frames[K]["tracks"].detections[0]  # object 1, edited in the App: a full mask of its box
    edited.mask = np.ones_like(edited.mask)
    sample.save()
    assert corrections.human_edits(sample, "tracks") == {K: {1}}
    kept = _frame_documents(dataset, sample.id)[K]["tracks"]["detections"][0]
    # a correction upstream stops before the human-edited frame and leaves it as it is
    result = corrections.resegment_track(sample, "tracks", 2, 1, Mask(frame=1, mask=maps[1] == 1), tracker=tracker,
                                         early_stop=False)
    assert result.last_frame == K - 1 and result.stop_reason == corrections.STOPPED_AT_HUMAN_EDIT
    assert _frame_documents(dataset, sample.id)[K]["tracks"]["detections"][0]["mask"] == kept["mask"]
    results = corrections.apply_human_edits(dataset[sample.id], "tracks", tracker=tracker, agree_frames=AGREE)
    assert [r.first_frame for r in results] == [K]
    after = _frame_documents(dataset, sample.id)[K]["tracks"]["detections"][0]
    assert after["mask"] == kept["mask"] and after["provenance"] == "human"
    assert not corrections.human_edits(dataset[sample.id], "tracks")  # applied once, kept protected


def test_correct_track_operator(corrected_video, r50_deaotl_ckpt):
    dataset, sample, _, _ = corrected_video
    result = execute_operator(CORRECT, dataset=dataset, params={
        "action": "relabel", "label_field": "tracks", "object_id": 2, "label": "bike", "sample_id": sample.id})
    assert result.result["corrections"][0]["object_id"] == 2
    assert "bike" in dataset.distinct("frames.tracks.detections.label")
    with pytest.raises(Exception, match="track 9 is not in"):
        execute_operator(CORRECT, dataset=dataset, params={
            "action": "resegment", "label_field": "tracks", "object_id": 9, "frame_number": 2, "sample_id": sample.id,
            "clicks": [{"x": 5, "y": 5}], "tracker_checkpoint": str(r50_deaotl_ckpt)})
