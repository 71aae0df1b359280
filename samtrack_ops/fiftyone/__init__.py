"""Where samtrack meets FiftyOne datasets: ``track_samples`` and friends (see ``runs.py``)."""

from samtrack_ops.fiftyone.prompts import FieldPrompts, prompts_from_fields
from samtrack_ops.fiftyone.queueing import call_to_params, queue_videos, track_from_params
from samtrack_ops.fiftyone.records import run_key, video_record
from samtrack_ops.fiftyone.recovery import recover
from samtrack_ops.fiftyone.review import build_review_queue, mark_reviewed
from samtrack_ops.fiftyone.runs import TRACK_OPERATOR_URI, track_samples
from samtrack_ops.fiftyone.staging import (
    CommitInterruptedError,
    VideoBusyError,
    WriteLostError,
    recover_interrupted_writes,
)
from samtrack_ops.fiftyone.storage import (
    detections_to_label_map,
    label_map_to_detections,
    label_map_to_segmentation,
)

__all__ = [
    "CommitInterruptedError",
    "FieldPrompts",
    "TRACK_OPERATOR_URI",
    "VideoBusyError",
    "WriteLostError",
    "build_review_queue",
    "call_to_params",
    "detections_to_label_map",
    "label_map_to_detections",
    "label_map_to_segmentation",
    "mark_reviewed",
    "prompts_from_fields",
    "queue_videos",
    "recover",
    "recover_interrupted_writes",
    "run_key",
    "track_from_params",
    "track_samples",
    "video_record",
]
