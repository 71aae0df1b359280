"""Tracking passes and how their label maps merge.

A :class:`TrackPass` is one run of the tracker over consecutive frames, forward from frame 0 or backward
from a key frame. Each pass gives the tracker compact IDs 1..n (in the order objects join it) and maps them
back to the video's track IDs, so gaps in the track IDs cost the tracker nothing. Compact IDs are uint8
while a pass follows at most 255 objects and uint16 beyond (up to 65535, the largest ``max_obj_num``).

Score of an object on a tracked frame: the mean, over the tracker's stride-4 grid cells whose most likely
channel is the object, of the softmax probability of that channel (the logits ``Tracker.track`` returns);
when the object wins no cell there, the highest probability of its channel anywhere.

Merge rule (:func:`merge_passes`): on a frame covered by several passes, every pass paints its objects and
the pass anchored nearer in time paints last, so it wins where objects overlap; at equal distance the pass
anchored on the later key frame wins. An object's score comes from the winning pass that shows it.
"""

from typing import NamedTuple

import numpy as np
import torch

from samtrack_ops.cmr import label_map_dtype

MAX_OBJECTS_PER_PASS = 65535


class PassResult(NamedTuple):
    """One pass on one frame: label_map (H, W) track IDs, scores {track ID: float}, anchor key frame index."""

    label_map: np.ndarray
    scores: dict
    anchor: int


class TrackPass:
    """One tracker run; ``reset()``s the tracker when created. ``dtype`` is the dtype of label maps it returns."""

    def __init__(self, tracker, dtype):
        tracker.reset()
        self.tracker = tracker
        self.dtype = dtype
        self.anchor = None
        self._track_ids = [0]
        self._compact_of = {0: 0}

    @property
    def active(self):
        """True once the pass has a reference to track from."""
        return self.anchor is not None

    def add_reference(self, frame_index, frame, label_map):
        """Adds label_map (H, W track IDs) on frame (H, W, 3) as a reference; frame_index becomes the anchor."""
        for track_id in np.unique(label_map):
            if int(track_id) not in self._compact_of:
                self._compact_of[int(track_id)] = len(self._track_ids)
                self._track_ids.append(int(track_id))
        if len(self._track_ids) - 1 > MAX_OBJECTS_PER_PASS:
            raise ValueError(f"one tracking pass can follow at most {MAX_OBJECTS_PER_PASS} objects; lower "
                             f"max_obj_num or split the video")
        lookup = np.zeros(max(self._compact_of) + 1, dtype=label_map_dtype(len(self._track_ids) - 1))
        lookup[list(self._compact_of)] = list(self._compact_of.values())
        self.tracker.add_reference(frame, lookup[label_map])
        self.anchor = frame_index

    def track(self, frame, update_memory=True):
        """(label_map (H, W) track IDs, {track ID: score}) of the objects on frame (H, W, 3)."""
        compact_map, logits = self.tracker.track(frame, update_memory=update_memory, return_logits=True)
        track_ids = np.asarray(self._track_ids, dtype=self.dtype)
        scores = object_scores(compact_map, logits)
        return track_ids[compact_map], {int(track_ids[compact]): score for compact, score in scores.items()}


def object_scores(label_map, logits):
    """{ID: score} for the IDs in label_map (H, W) from the tracker's logits (C, h, w), as the module says."""
    probabilities = torch.softmax(logits.float(), dim=0)
    best_probability, best_channel = probabilities.max(dim=0)
    channels = probabilities.shape[0]
    sums = torch.bincount(best_channel.flatten(), weights=best_probability.flatten(), minlength=channels)
    counts = torch.bincount(best_channel.flatten(), minlength=channels)
    scores = {}
    for object_id in np.unique(label_map):
        object_id = int(object_id)
        if object_id == 0 or object_id >= channels:
            continue
        if counts[object_id] > 0:
            scores[object_id] = float(sums[object_id] / counts[object_id])
        else:
            scores[object_id] = float(probabilities[object_id].max())
    return scores


def merge_passes(frame_index, results, frame_size, dtype):
    """One label map (H, W) and {ID: score} from the PassResults of several passes on frame frame_index."""
    label_map = np.zeros(frame_size, dtype=dtype)
    scores = {}
    farthest_first = sorted(results, key=lambda result: (abs(frame_index - result.anchor), -result.anchor),
                            reverse=True)
    for result in farthest_first:
        painted = result.label_map != 0
        label_map[painted] = result.label_map[painted]
        scores.update(result.scores)
    return label_map, {object_id: scores[object_id] for object_id in np.unique(label_map).tolist()
                       if object_id != 0}
