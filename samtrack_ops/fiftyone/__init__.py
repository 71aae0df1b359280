"""Where samtrack meets FiftyOne datasets: ``track_samples`` and friends (see ``runs.py``).

Everything a FiftyOne user needs is importable from here: tracking (``track_samples``), evaluation
(``evaluate_tracks``), exports (``export_coco``, ``export_davis``, ``export_ytvis``, ``import_davis``; loaded
on first use, since ``samtrack_ops.export`` itself builds on this package) and delegated runs.
"""

import importlib

from samtrack_ops.fiftyone.evaluation_runs import evaluate_tracks
from samtrack_ops.fiftyone.progress import FrameProgress
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

_FROM_EXPORT = ("export_coco", "export_davis", "export_ytvis", "import_davis")


def __getattr__(name):
    if name in _FROM_EXPORT:
        return getattr(importlib.import_module("samtrack_ops.export"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CommitInterruptedError",
    "FieldPrompts",
    "FrameProgress",
    "TRACK_OPERATOR_URI",
    "VideoBusyError",
    "WriteLostError",
    "build_review_queue",
    "call_to_params",
    "detections_to_label_map",
    "evaluate_tracks",
    *_FROM_EXPORT,
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
