"""What the exporters read from a video collection: videos, their decoded frames and tracked labels.

Every frame of each video is exported (decoded in order; frame number ``n`` is written as
``<video>/<n - 1:05d>.<ext>``); frames without labels in the view export as frames without objects.
Videos are named by their file stem; samples sharing a stem are named ``<stem>-<sample id>``.
"""

import collections
import pathlib
from typing import NamedTuple

import cv2
import numpy as np

import fiftyone as fo

from samtrack_ops.export._atomic import ExportError, safe_name
from samtrack_ops.fiftyone.storage import detection_mask


class ExportVideo(NamedTuple):
    """One video to export: its export ``name``, sample ``id``, ``filepath`` and ``labels``
    (``{frame_number: fo.Detections}``, 1-based frame numbers, frames with labels only)."""

    name: str
    id: str
    filepath: str
    labels: dict


def check_tracked_field(sample_collection, label_field):
    """Raises :class:`ExportError` unless ``frames.<label_field>`` is a non-empty ``Detections`` field
    of a video collection."""
    if sample_collection.media_type != "video":
        raise ExportError(
            f"exports read video collections; this one holds {sample_collection.media_type!r} samples"
        )
    field = sample_collection.get_field(f"frames.{label_field}")
    if field is None:
        frame_fields = sorted(sample_collection.get_frame_field_schema())
        raise ExportError(f"no frame field {label_field!r}; the frame fields are {frame_fields}")
    if getattr(field, "document_type", None) is not fo.Detections:
        raise ExportError(f"frames.{label_field} must hold fo.Detections (a tracked field), not {field}")
    if not sample_collection.count(f"frames.{label_field}.detections"):
        raise ExportError(f"frames.{label_field} has no labels in this view: nothing to export")


def _video_names(ids, filepaths):
    stems = [pathlib.PurePath(p).stem for p in filepaths]
    counts = collections.Counter(stems)
    names = [s if counts[s] == 1 else f"{s}-{i}" for s, i in zip(stems, ids)]
    return [safe_name(n, "video name") for n in names]


def iter_videos(sample_collection, label_field):
    """Yields an :class:`ExportVideo` per sample of the collection, loading one sample's labels at a time."""
    ids, filepaths = sample_collection.values(["id", "filepath"])
    for sample_id, filepath, name in zip(ids, filepaths, _video_names(ids, filepaths)):
        numbers, labels = sample_collection.select(sample_id).values(
            ["frames.frame_number", f"frames.{label_field}"]
        )
        labels = {n: d for n, d in zip(numbers[0], labels[0]) if d is not None}
        yield ExportVideo(name, sample_id, filepath, labels)


def iter_frames(video):
    """Yields ``(frame_number, frame_bgr HxWx3 uint8, detections or None)`` for every frame of the video.

    Raises:
        ExportError: the video cannot be opened or decodes to no frames, or labels exist past its last
            decoded frame
    """
    capture = cv2.VideoCapture(video.filepath)
    if not capture.isOpened():
        raise ExportError(f"cannot open video {video.filepath} (sample {video.id})")
    frame_number = 0
    try:
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                break
            frame_number += 1
            yield frame_number, frame_bgr, video.labels.get(frame_number)
    finally:
        capture.release()
    if frame_number == 0:
        raise ExportError(f"{video.filepath} (sample {video.id}) has no decodable frames")
    beyond = [n for n in video.labels if n > frame_number]
    if beyond:
        raise ExportError(
            f"{video.filepath} decodes to {frame_number} frames but frames {sorted(beyond)[:5]} have labels"
        )


def frame_file_name(frame_number, extension):
    """File name of a 1-based frame number: ``00000.<extension>`` for frame 1 (DAVIS numbering)."""
    return f"{frame_number - 1:05d}.{extension}"


def object_masks(detections, frame_size):
    """Returns ``[(detection, HxW uint8 0/1 mask in Fortran order)]`` for the detections with a track
    ``index`` and a mask, placed as FiftyOne places them (``storage.detection_mask``); Fortran order is
    what COCO run-length encoding reads."""
    if detections is None:
        return []
    return [
        (detection, np.asfortranarray(detection_mask(detection, frame_size), dtype=np.uint8))
        for detection in detections.detections
        if detection.index is not None and detection.has_mask
    ]
