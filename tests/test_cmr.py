"""CMR (report Eq. 1-2) on hand-built masks: every branch of the keep/drop decision and the numbering."""

import numpy as np
import pytest

from samtrack_ops.cmr import ObjectLimitWarning, find_new_objects


def _square(seg, seg_id, top, left, side):
    seg[top:top + side, left:left + side] = seg_id


def _segment_of_area(shape, seg_id, area):
    """A map with one segment of exactly ``area`` pixels (filled row by row from the top-left)."""
    seg = np.zeros(shape, dtype=np.uint16)
    seg.ravel()[:area] = seg_id
    return seg


def test_untracked_segment_gets_next_id_and_only_background_pixels_count():
    track = np.zeros((40, 40), np.uint8)
    seg = np.zeros((40, 40), np.uint16)
    _square(seg, 7, 0, 0, 20)  # 400 px, 40 of them (2 columns) under tracked object 3
    track[0:20, 18:20] = 3
    new = find_new_objects(track, seg, next_id=4, min_area=100, min_new_obj_iou=0.8)
    assert new.dtype == np.uint8
    assert set(np.unique(new)) == {0, 4}
    assert (new == 4).sum() == 360  # ratio 0.9 kept, only the part in the tracker's background
    assert not (new[track != 0]).any()


@pytest.mark.parametrize("covered, kept", [(39, True), (40, True), (41, False)])
def test_ratio_threshold_inclusive(covered, kept):
    """400 px segment; 0.9 threshold means at most 40 px may be covered by tracked objects."""
    seg = _segment_of_area((20, 40), 5, 400)
    track = np.zeros_like(seg, dtype=np.uint8)
    track.ravel()[:covered] = 1
    new = find_new_objects(track, seg, next_id=2, min_area=1, min_new_obj_iou=0.9)
    assert ((new == 2).sum() == 400 - covered) == kept
    assert new.any() == kept


@pytest.mark.parametrize("area, kept", [(199, False), (200, True), (201, True)])
def test_min_area_inclusive(area, kept):
    seg = _segment_of_area((20, 20), 9, area)
    new = find_new_objects(np.zeros((20, 20), np.uint8), seg, next_id=1, min_area=200)
    assert new.any() == kept
    if kept:
        assert (new == 1).sum() == area


def test_min_area_counts_untracked_part_not_whole_segment():
    seg = _segment_of_area((20, 20), 1, 220)
    track = np.zeros((20, 20), np.uint8)
    track.ravel()[:21] = 2  # ratio 199/220 = 0.905 passes 0.8, but the new area 199 < 200
    assert not find_new_objects(track, seg, next_id=3, min_area=200).any()
    track.ravel()[20] = 0  # now 200 untracked
    assert (find_new_objects(track, seg, next_id=3, min_area=200) == 3).sum() == 200


def test_fresh_ids_follow_ascending_segment_ids_without_merging():
    """The seed's in-place relabelling merges these: fresh ID 2 equals unprocessed segment 2, and so on."""
    track = np.zeros((30, 90), np.uint8)
    track[:, 80:] = 1  # one tracked object, so next_id = 2
    seg = np.zeros((30, 90), np.uint16)
    _square(seg, 3, 0, 0, 15)
    _square(seg, 1, 0, 20, 15)
    _square(seg, 2, 0, 40, 15)
    new = find_new_objects(track, seg, next_id=2, min_area=10)
    assert new[0, 20] == 2 and new[0, 40] == 3 and new[0, 0] == 4  # segments 1, 2, 3 in order
    for fresh in (2, 3, 4):
        assert (new == fresh).sum() == 225


def test_numbering_starts_after_highest_tracked_id():
    track = np.zeros((20, 40), np.uint8)
    track[:, :10] = 1
    track[:, 10:20] = 2
    seg = np.zeros((20, 40), np.uint16)
    seg[:, 20:] = 1
    new = find_new_objects(track, seg, next_id=3, min_area=10)
    assert set(np.unique(new)) == {0, 3}
    assert not np.isin(new[track > 0], [1, 2]).any()


def test_max_obj_num_caps_and_warns():
    seg = np.zeros((10, 50), np.uint16)
    for k in range(5):
        seg[:, k * 10:(k + 1) * 10] = k + 1
    track = np.zeros((10, 50), np.uint8)
    with pytest.warns(ObjectLimitWarning, match="2 new object"):
        new = find_new_objects(track, seg, next_id=4, min_area=10, max_obj_num=6)
    assert set(np.unique(new)) == {0, 4, 5, 6}  # the last ID allowed is max_obj_num itself
    assert (new[:, 30:] == 0).all()  # the two highest segments were dropped


def test_no_room_left_drops_everything():
    seg = np.ones((10, 10), np.uint16)
    with pytest.warns(ObjectLimitWarning):
        new = find_new_objects(np.zeros((10, 10), np.uint8), seg, next_id=256, min_area=1)
    assert not new.any()


def test_ids_above_255_give_uint16():
    seg = np.ones((10, 10), np.uint16)
    new = find_new_objects(np.zeros((10, 10), np.uint8), seg, next_id=300, min_area=1, max_obj_num=1000)
    assert new.dtype == np.uint16 and (new == 300).all()


def test_fully_tracked_frame_has_no_new_objects():
    seg = np.arange(100, dtype=np.uint16).reshape(10, 10) // 10 + 1
    assert not find_new_objects(np.ones((10, 10), np.uint8), seg, next_id=2, min_area=1).any()


@pytest.mark.parametrize("track, seg, next_id, message", [
    (np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint16), 1, "same"),
    (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint16), 1, "integer"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint16), 0, "next_id"),
    (np.zeros((4, 4), np.int32), -np.ones((4, 4), np.int32), 1, "negative"),
])
def test_bad_input_is_named(track, seg, next_id, message):
    with pytest.raises(ValueError, match=message):
        find_new_objects(track, seg, next_id)
