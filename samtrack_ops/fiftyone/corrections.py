"""Corrections of stored tracks that re-propagate only what they change.

Operations on one video's ``frames.<label_field>`` (frame numbers are FiftyOne's, 1-based):

- :func:`resegment_track`: new mask of track ``object_id`` on frame k (a click/box/stroke through SAM, or
  a mask), then re-propagation;
- :func:`add_track`: a missed object on frame k under a new track ID, then re-propagation;
- :func:`delete_track`: removes a track from frame k on (or up to k, ``backward=True``);
- :func:`merge_tracks`: track ``merged_id`` becomes ``kept_id`` from frame k on (ID switch repair);
- :func:`relabel_track`: a new label for a track on every frame;
- :func:`apply_human_edits`: every Detection edited in the App since samtrack wrote it is used as a
  correction of its track (re-propagated from its frame); the edited Detections themselves are kept.

Re-propagation from frame k: the tracker is re-anchored with the stored labels of the frame before k
(after k, backward) as memory and the corrected frame as the reference, and follows the video away from
k. Only the corrected object's pixels change: on each frame its stored pixels are cleared and the
tracker's are painted, over other objects only where the tracker puts it (pixels of human-edited
Detections are never painted over). Propagation stops early once the new mask agrees with the stored
one (IoU >= ``agree_iou``; both empty counts as agreeing) on ``agree_frames`` consecutive frames, and
before a frame where a human edited the same track. Frames k..j (j = the last frame that disagreed) are
rewritten; every other frame, and the Detections of other objects whose pixels did not change, stay
byte-identical in the database.

Writes are all-or-nothing (``staging.VideoWrite``: frames not rewritten are not touched) and each correction is appended
to the video record's ``corrections`` list (``records.video_record``) in the same commit. Provenance of
the rewritten Detections: ``corrected``; App-edited ones are marked ``human``.
"""

import datetime
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from bson import ObjectId

import fiftyone as fo
import fiftyone.core.odm as foo
import fiftyone.core.utils as fou

from samtrack_ops.fiftyone import staging
from samtrack_ops.fiftyone.prompts import frame_size
from samtrack_ops.fiftyone.records import video_record, video_record_id
from samtrack_ops.fiftyone.storage import (
    content_hash,
    detection_document,
    detection_mask,
    frame_signal_attributes,
    segmentation_document,
    visible_objects,
)
from samtrack_ops.prompts import Mask, PromptError
from samtrack_ops.signals import QualityMonitor
from samtrack_ops.video import SpillStore, open_frames

DEFAULT_AGREE_FRAMES = 3
DEFAULT_AGREE_IOU = 0.9
STOPPED_AGREEING = "agrees with the stored labels again"
STOPPED_AT_HUMAN_EDIT = "next frame edited by hand"


class CorrectionResult(NamedTuple):
    """What a correction did: the track, the rewritten frame numbers first..last (inclusive, empty when
    first > last), the frames the tracker ran on, and whether it stopped before the video's end and why
    (``stop_reason``: :data:`STOPPED_AGREEING`, :data:`STOPPED_AT_HUMAN_EDIT`, or "" when it did not)."""

    object_id: int
    first_frame: int
    last_frame: int
    tracked_frames: int
    stopped_early: bool
    stop_reason: str = ""


class StoredVideo:
    """The stored ``frames.<label_field>`` of one video sample, read straight from the database."""

    def __init__(self, sample, label_field):
        self.sample = sample
        self.dataset = sample._dataset
        self.label_field = label_field
        self.frame_size = frame_size(sample)
        frames = foo.get_db_conn()[self.dataset._frame_collection_name]
        self.documents = {doc["frame_number"]: doc.get(label_field) or {"_cls": "Detections", "detections": []}
                          for doc in frames.find({"_sample_id": ObjectId(sample.id)}, {"frame_number": 1, label_field: 1})}
        self.frame_count = max([sample.metadata.total_frame_count or 0, *self.documents])
        self._maps = {}

    def detections(self, number):
        """{track ID: Detection document} on frame ``number`` (Detections without ``index`` are left out)."""
        documents = self.documents.get(number, {}).get("detections", [])
        return {int(doc["index"]): doc for doc in documents if doc.get("index") is not None}

    def label_map(self, number):
        """The stored label map (H, W) uint16 of frame ``number`` (higher IDs painted last)."""
        if number not in self._maps:
            label_map = np.zeros(self.frame_size, np.uint16)
            for track_id, doc in sorted(self.detections(number).items()):
                label_map[detection_mask(_as_detection(doc), self.frame_size)] = track_id
            self._maps[number] = label_map
        return self._maps[number]

    def human_edited(self, number):
        """Track IDs on frame ``number`` whose Detection differs from what samtrack wrote (App edits)."""
        return {track_id for track_id, doc in self.detections(number).items() if _is_human_edit(doc)}

    def label_of(self, object_id):
        """The label of a track (its Detection on the first frame that shows it), or None."""
        for number in sorted(self.documents):
            doc = self.detections(number).get(object_id)
            if doc is not None:
                return doc.get("label")
        return None

    def track_ids(self):
        return sorted({track_id for number in self.documents for track_id in self.detections(number)})


def _as_detection(doc):
    return fo.Detection(bounding_box=doc["bounding_box"], mask=fou.deserialize_numpy_array(doc["mask"]))


def _is_human_edit(doc):
    """True for a Detection edited in the App: marked ``human`` or changed since samtrack wrote it."""
    return doc.get("provenance") == "human" or _is_new_edit(doc)


def _is_new_edit(doc):
    """True for a Detection whose content no longer matches the ``samtrack_hash`` written with it."""
    if doc.get("mask") is None:
        return True
    return doc.get("samtrack_hash") != _hash_of(doc)


def _hash_of(doc):
    return content_hash(doc["index"], doc.get("label"), doc["bounding_box"], fou.deserialize_numpy_array(doc["mask"]))


def human_edits(sample, label_field):
    """``{frame_number: {track IDs}}`` of the Detections edited in the App and not yet used as corrections."""
    video = StoredVideo(sample, label_field)
    edits = {number: {track_id for track_id, doc in video.detections(number).items() if _is_new_edit(doc)}
             for number in sorted(video.documents)}
    return {number: ids for number, ids in edits.items() if ids}


# --- the operations ----------------------------------------------------------------------------------


def resegment_track(sample, label_field, frame_number, object_id, prompt, backward=False, **options):
    """Re-segments track ``object_id`` on frame ``frame_number`` with a Click/Box/Stroke/Mask prompt (its
    ``frame`` is ignored) and re-propagates it. Options: see :func:`_correct`. Returns CorrectionResult."""
    video = StoredVideo(sample, label_field)
    if object_id not in video.track_ids():
        raise PromptError(f"track {object_id} is not in frames.{label_field} of {sample.filepath}; "
                          f"existing tracks: {video.track_ids()} (use add_track for a new object)")
    return _correct(video, frame_number, object_id, prompt, None, backward, **options)


def add_track(sample, label_field, frame_number, prompt, label="object", backward=False, **options):
    """Adds a missed object on frame ``frame_number`` (a prompt as in :func:`resegment_track`) under a new
    track ID (highest stored + 1) and propagates it. Returns CorrectionResult."""
    video = StoredVideo(sample, label_field)
    object_id = max(video.track_ids(), default=0) + 1
    return _correct(video, frame_number, object_id, prompt, label, backward, **options)


def delete_track(sample, label_field, object_id, frame_number=1, backward=False):
    """Removes track ``object_id`` from frame ``frame_number`` on (``backward``: up to it)."""
    video = StoredVideo(sample, label_field)
    numbers = _frames_of(video, object_id, frame_number, backward)
    maps = {n: np.where(video.label_map(n) == object_id, 0, video.label_map(n)).astype(np.uint16) for n in numbers}
    return _commit(video, maps, object_id, {}, "delete", {"frame_number": frame_number, "backward": backward})


def merge_tracks(sample, label_field, kept_id, merged_id, frame_number=1):
    """Track ``merged_id`` becomes ``kept_id`` from frame ``frame_number`` on (ID switch repair)."""
    video = StoredVideo(sample, label_field)
    numbers = _frames_of(video, merged_id, frame_number, False)
    maps = {n: np.where(video.label_map(n) == merged_id, kept_id, video.label_map(n)).astype(np.uint16)
            for n in numbers}
    labels = {kept_id: video.label_of(kept_id)}
    return _commit(video, maps, kept_id, labels, "merge",
                   {"kept_id": kept_id, "merged_id": merged_id, "frame_number": frame_number})


def relabel_track(sample, label_field, object_id, label):
    """Gives track ``object_id`` the label ``label`` on every frame."""
    video = StoredVideo(sample, label_field)
    maps = {n: video.label_map(n) for n in _frames_of(video, object_id, 1, False)}
    return _commit(video, maps, object_id, {object_id: label}, "relabel", {"label": label})


def apply_human_edits(sample, label_field, **options):
    """Re-propagates every track from each frame where it was edited in the App (forward, in frame
    order); the edited Detections are kept as they are. Returns the CorrectionResults."""
    results = []
    for number, ids in human_edits(sample, label_field).items():
        for object_id in sorted(ids):
            video = StoredVideo(sample, label_field)
            mask = video.label_map(number) == object_id
            results.append(_correct(video, number, object_id, Mask(frame=number - 1, mask=mask), None, False,
                                    **options))
    return results


def _frames_of(video, object_id, frame_number, backward):
    numbers = [n for n in sorted(video.documents) if object_id in video.detections(n)]
    numbers = [n for n in numbers if (n <= frame_number if backward else n >= frame_number)]
    if not numbers:
        raise PromptError(f"track {object_id} is on no frame {'up to' if backward else 'from'} {frame_number} "
                          f"of frames.{video.label_field}; existing tracks: {video.track_ids()}")
    return numbers


# --- re-propagation ----------------------------------------------------------------------------------


def _correct(video, frame_number, object_id, prompt, label, backward, early_stop=True,
             agree_frames=DEFAULT_AGREE_FRAMES, agree_iou=DEFAULT_AGREE_IOU, **model_options):
    """Sets the object's mask on frame_number from the prompt, re-propagates it and commits the frames.

    Options: ``early_stop`` (stop once agreeing again), ``agree_frames``, ``agree_iou``; model options as
    ``segment_and_track`` (``tracker=``, ``segmentor=``, ``tracker_checkpoint``, ``sam_checkpoint``, ...).
    """
    from samtrack_ops.pipeline import Models, PipelineOptions

    if not 1 <= frame_number <= video.frame_count:
        raise PromptError(f"frame {frame_number} is not in the video (frames 1..{video.frame_count})")
    models = Models(PipelineOptions.parse(model_options))
    step = -1 if backward else 1
    with SpillStore() as store:
        frames = _frames_away_from(video, frame_number, step, store)
        memory, (_, frame) = next(frames), next(frames)
        mask = _prompt_mask(models, frame, prompt, video.frame_size)
        corrected = _painted(video, frame_number, object_id, mask)
        track_pass = _anchored(models.tracker, video, memory, frame_number, frame, corrected)
        maps, tracked, stop_reason = _repropagate(video, frames, track_pass, object_id, early_stop, agree_frames,
                                              agree_iou)
    maps[frame_number] = corrected
    labels = {object_id: label or video.label_of(object_id) or "object"}
    details = {"frame_number": frame_number, "backward": backward, "early_stop": early_stop,
               "agree_frames": agree_frames, "agree_iou": agree_iou}
    result = _commit(video, maps, object_id, labels, "add" if label else "resegment", details)
    return result._replace(tracked_frames=tracked, stopped_early=bool(stop_reason), stop_reason=stop_reason)


def _frames_away_from(video, start, step, store):
    """Yields (number, frame (H, W, 3)) for the memory frame start - step (frame None when outside the
    video), then start, start + step, ... to the video's end (step 1: decoded as read; step -1: frames
    1..start + 1 decoded into ``store`` first, then read back in reverse)."""
    if step > 0:
        previous = None
        for number, frame in enumerate(open_frames(video.sample.filepath), start=1):
            if number == start:
                yield start - 1, previous
            if number >= start:
                yield number, frame
            previous = frame
        return
    for index, frame in enumerate(open_frames(video.sample.filepath)):
        if index + 1 > start + 1:
            break
        store.put(f"frame-{index + 1}", frame)
    yield start + 1, store.get(f"frame-{start + 1}")
    for number in range(start, 0, -1):
        yield number, store.get(f"frame-{number}")


def _prompt_mask(models, frame, prompt, size):
    """(H, W) bool mask of a Click/Box/Stroke/Mask prompt on frame (Mask prompts as given w/o segmentor)."""
    if isinstance(prompt, Mask) and models.mask_prompt_as_given:
        mask = np.asarray(prompt.mask, bool)
    else:
        prompt.validate(size)
        segmentor = models.segmentor
        segmentor.set_frame(frame)
        mask = np.asarray(segmentor.predict(prompt)[0], bool)
    if mask.shape != tuple(size) or not mask.any():
        raise PromptError(f"the correction's mask is empty or not {tuple(size)} (H, W); try other points or a box")
    return mask


def _painted(video, number, object_id, mask):
    """The stored map of frame ``number`` with object_id's pixels replaced by ``mask`` (human-edited
    pixels of other objects stay)."""
    label_map = video.label_map(number).copy()
    label_map[label_map == object_id] = 0
    protected = np.isin(label_map, list(video.human_edited(number) - {object_id}))
    label_map[mask & ~protected] = object_id
    return label_map


def _anchored(tracker, video, memory, start, frame, corrected):
    """A TrackPass with the stored labels of the memory frame (number, frame or None) and the corrected
    label map of frame ``start`` as references."""
    from samtrack_ops.passes import TrackPass

    track_pass = TrackPass(tracker, np.uint16)
    memory_number, memory_frame = memory
    if memory_frame is not None and video.label_map(memory_number).any():
        track_pass.add_reference(memory_number, memory_frame, video.label_map(memory_number))
    track_pass.add_reference(start, frame, corrected)
    return track_pass


def _repropagate(video, frames, track_pass, object_id, early_stop, agree_frames, agree_iou):
    """({frame_number: new label map}, frames tracked, stop reason or "") over ``frames`` ((number, frame)
    pairs moving away from the corrected frame)."""
    maps, pending, tracked, streak = {}, {}, 0, 0
    for number, frame in frames:
        if object_id in video.human_edited(number):
            return maps, tracked, STOPPED_AT_HUMAN_EDIT
        tracked_map, _ = track_pass.track(frame)
        tracked += 1
        pending[number] = _painted(video, number, object_id, tracked_map == object_id)
        streak = streak + 1 if _agrees(pending[number], video.label_map(number), object_id, agree_iou) else 0
        if streak == 0 or not early_stop:
            maps.update(pending)
            pending = {}
        elif streak >= agree_frames:
            return maps, tracked, STOPPED_AGREEING
    return maps, tracked, ""


def _agrees(new_map, stored_map, object_id, agree_iou):
    new, old = new_map == object_id, stored_map == object_id
    union = np.count_nonzero(new | old)
    return union == 0 or np.count_nonzero(new & old) / union >= agree_iou


# --- writing -----------------------------------------------------------------------------------------


def _commit(video, maps, object_id, labels, action, details):
    """Writes the frames of ``maps`` ({frame_number: label map}); object_id (and objects whose pixels
    changed) get fresh Detections, the others keep theirs. Returns CorrectionResult (tracked_frames 0)."""
    dataset, field = video.dataset, video.label_field
    field_types = {field: "Detections"}
    seg_field = f"{field}_seg"
    if seg_field in dataset.get_frame_field_schema():
        field_types[seg_field] = "Segmentation"
    numbers = sorted(maps)
    entry = {"action": action, "object_id": int(object_id), "frames": [numbers[0], numbers[-1]] if numbers else [],
             "at": datetime.datetime.utcnow(), **details}
    record = video_record(dataset, video.sample.id, field) or {
        "_id": video_record_id(dataset, video.sample.id, field), "dataset_id": str(dataset._doc.id),
        "sample_id": video.sample.id, "label_field": field, "fingerprint": None}
    record["corrections"] = record.get("corrections", []) + [entry]
    with staging.VideoWrite(dataset, video.sample.id, field_types, record=record) as write:
        for number, signals in zip(numbers, _signals(video, maps, numbers)):
            documents = {field: _frame_document(video, number, maps[number], object_id, labels, signals)}
            if seg_field in field_types:
                documents[seg_field] = segmentation_document(maps[number])
            write.add(number, documents)
        write.commit()
    return CorrectionResult(int(object_id), numbers[0] if numbers else 0, numbers[-1] if numbers else -1, 0, False)


def _signals(video, maps, numbers):
    """FrameSignals of the rewritten frames, the monitor primed with the stored frame before each run."""
    monitor, previous = QualityMonitor(), None
    for number in numbers:
        if previous != number - 1 and number - 1 in video.documents:
            monitor = QualityMonitor()
            monitor.update(video.label_map(number - 1), _scores(video, number - 1))
        yield monitor.update(maps[number], _scores(video, number))
        previous = number


def _scores(video, number):
    return {track_id: doc["confidence"] for track_id, doc in video.detections(number).items()
            if doc.get("confidence") is not None}


def _frame_document(video, number, label_map, object_id, labels, signals):
    """The Detections document of a rewritten frame."""
    stored_map, stored = video.label_map(number), video.detections(number)
    human = video.human_edited(number)
    detections = []
    for obj in visible_objects(label_map):
        track_id, old = obj.track_id, stored.get(obj.track_id)
        unchanged = old is not None and np.array_equal(stored_map == track_id, label_map == track_id)
        if track_id in human and unchanged:  # kept as edited; its hash now marks the edit as applied
            detections.append({**old, "provenance": "human", "samtrack_hash": _hash_of(old)})
        elif unchanged and track_id != object_id:
            detections.append(old)
        else:
            info = SimpleNamespace(label=labels.get(track_id) or (old or {}).get("label"),
                                   score=(old or {}).get("confidence"), provenance="corrected")
            detections.append(detection_document(obj, info, signals.objects.get(track_id)))
    return {**video.documents.get(number, {}), "_cls": "Detections", "detections": detections,
            **frame_signal_attributes(signals)}
