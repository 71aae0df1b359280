"""Comparing Mask Results (CMR): which SAM segments are objects the tracker does not follow yet.

Segment-and-Track-Anything report, Eq. 1-2: with T the tracker's label map and S the segmenter's map of
segment IDs on the same key frame, the untracked part of the segments is

    N = (T == 0) * S

and a segment x counts as a new object when area_N(x) / area_S(x) >= ``min_new_obj_iou`` and
area_N(x) >= ``min_area``. Kept segments, in ascending order of their segment ID, get consecutive fresh
track IDs ``next_id, next_id + 1, ...`` while the ID stays <= ``max_obj_num``; the rest are dropped and a
:class:`ObjectLimitWarning` reports how many.
"""

import warnings

import numpy as np


class ObjectLimitWarning(UserWarning):
    """Objects were dropped because their track ID would exceed ``max_obj_num``."""


def label_map_dtype(highest_id):
    """uint8 when every ID fits (<= 255), else uint16."""
    return np.uint8 if highest_id <= 255 else np.uint16


def _check_maps(track_mask, seg_mask):
    for name, array in (("track_mask", track_mask), ("seg_mask", seg_mask)):
        if not isinstance(array, np.ndarray) or array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must be an HxW integer numpy array, got "
                             f"{type(array).__name__} {getattr(array, 'shape', '')}")
        if array.size and array.min() < 0:
            raise ValueError(f"{name} holds negative IDs; use 0 for background and positive IDs for objects")
    if track_mask.shape != seg_mask.shape:
        raise ValueError(f"track_mask {track_mask.shape} and seg_mask {seg_mask.shape} must have the same (H, W)")


def _new_segment_ids(untracked, seg_mask, min_area, min_new_obj_iou):
    """Segment IDs (ascending) that pass both CMR tests: (K,)."""
    untracked_ids, untracked_areas = np.unique(untracked[untracked != 0], return_counts=True)
    segment_areas = np.bincount(seg_mask.ravel(), minlength=int(seg_mask.max()) + 1)[untracked_ids]
    keep = (untracked_areas / segment_areas >= min_new_obj_iou) & (untracked_areas >= min_area)
    return untracked_ids[keep]


def find_new_objects(track_mask, seg_mask, next_id, min_area=200, min_new_obj_iou=0.8, max_obj_num=255):
    """New objects of ``seg_mask`` that the tracker misses, under fresh IDs from ``next_id``.

    track_mask: (H, W) tracker label map, 0 = background. seg_mask: (H, W) segment IDs, 0 = none.
    next_id: the first fresh track ID (highest ID tracked so far + 1).
    Returns new_obj_mask (H, W), uint8 (uint16 when an ID exceeds 255): each new object's fresh ID on the
    part of its segment that lies in the tracker's background, 0 elsewhere.
    """
    _check_maps(track_mask, seg_mask)
    if next_id < 1:
        raise ValueError(f"next_id must be >= 1 (0 is background), got {next_id}")
    untracked = np.where(track_mask == 0, seg_mask, 0)
    segment_ids = _new_segment_ids(untracked, seg_mask, min_area, min_new_obj_iou)
    room = max(0, max_obj_num - next_id + 1)
    if len(segment_ids) > room:
        warnings.warn(f"{len(segment_ids) - room} new object(s) dropped: track IDs may not exceed "
                      f"max_obj_num={max_obj_num} (raise max_obj_num to keep them)", ObjectLimitWarning,
                      stacklevel=2)
        segment_ids = segment_ids[:room]
    fresh_ids = np.arange(next_id, next_id + len(segment_ids))
    dtype = label_map_dtype(fresh_ids[-1] if len(fresh_ids) else 0)
    fresh_id_of_segment = np.zeros(int(seg_mask.max()) + 1, dtype=dtype)
    fresh_id_of_segment[segment_ids] = fresh_ids
    return fresh_id_of_segment[untracked]
