"""Where samtrack meets FiftyOne datasets: ``track_samples`` and friends (see ``runs.py``)."""

from samtrack_ops.fiftyone.prompts import FieldPrompts, prompts_from_fields
from samtrack_ops.fiftyone.runs import (
    TRACK_OPERATOR_URI,
    call_to_params,
    queue_videos,
    recover,
    run_key,
    track_from_params,
    track_samples,
    video_record,
)
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
    "call_to_params",
    "detections_to_label_map",
    "label_map_to_detections",
    "label_map_to_segmentation",
    "prompts_from_fields",
    "queue_videos",
    "recover",
    "recover_interrupted_writes",
    "run_key",
    "track_from_params",
    "track_samples",
    "video_record",
]
