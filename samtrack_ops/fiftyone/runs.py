"""Tracking over sample collections: ``track_samples``, ``skip_existing``.

One call, :func:`track_samples`, segments and tracks every video of a collection into ``frames.<field>``
(and optionally ``frames.<field>_seg``). Each video is written all-or-nothing (``staging.VideoWrite``).

The run record and the video records (``records.py``) say how a field was made; ``fingerprints.py``
hashes what determines a video's labels; ``recovery.py`` cleans up after dead workers (run at the start and
end of every call); ``queueing.py`` splits a run into one delegated operation per video.
"""

import re

from samtrack_ops.fiftyone import staging
from samtrack_ops.fiftyone.fingerprints import fingerprint, resolve_models
from samtrack_ops.fiftyone.progress import FrameProgress, frames_to_track
from samtrack_ops.fiftyone.prompts import FieldPrompts, frame_size, prompts_from_fields
from samtrack_ops.fiftyone.records import is_done, run_key, save_run_record, video_record_id
from samtrack_ops.fiftyone.recovery import recover
from samtrack_ops.fiftyone.storage import frame_documents
from samtrack_ops.fiftyone.review import store_video_summaries
from samtrack_ops.pipeline import MODES
from samtrack_ops.prompts import PromptError
from samtrack_ops.signals import QualityMonitor
from samtrack_ops.video import open_frames

TRACK_OPERATOR_URI = "@samtrack/samtrack/track_objects"


def check_label_field(label_field):
    if not isinstance(label_field, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label_field):
        raise ValueError(
            f"label field {label_field!r} must be a plain field name (letters, digits, _), e.g. 'samtrack'"
        )


def _check_call(sample_collection, label_field, mode, prompts, store_seg):
    """Everything checkable before a model is loaded: field name and types, mode, videos, prompt targets."""
    check_label_field(label_field)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_videos(sample_collection)
    dataset = sample_collection._dataset
    staging.check_field_types(dataset, _field_types(dataset, label_field, store_seg))
    if isinstance(prompts, FieldPrompts):
        prompts.validate(sample_collection)
    if isinstance(prompts, dict):
        check_sample_ids(sample_collection, prompts, "prompts are given for")


def check_sample_ids(sample_collection, sample_ids, what):
    """Raises ValueError naming the sample IDs that are not in the collection."""
    strangers = sorted(set(map(str, sample_ids)) - set(sample_collection.values("id")))
    if strangers:
        raise ValueError(
            f"{what} sample IDs {strangers}, which are not in the collection (dataset "
            f"'{sample_collection._dataset.name}'); use the IDs of its video samples"
        )


def _field_types(dataset, label_field, store_seg):
    """The frame fields a run replaces: the Detections field, and its ``_seg`` when stored or present."""
    field_types = {label_field: "Detections"}
    if store_seg or f"{label_field}_seg" in dataset.get_frame_field_schema():
        field_types[f"{label_field}_seg"] = "Segmentation"  # replaced too: no stale full-frame maps
    return field_types


def check_videos(sample_collection):
    """Raises ValueError unless ``sample_collection`` holds at least one video sample and only videos."""
    if sample_collection.media_type != "video":
        raise ValueError(
            f"samtrack works on videos, but this collection holds {sample_collection.media_type} "
            "samples; select video samples (or convert images to a video first)"
        )
    if len(sample_collection) == 0:
        raise ValueError("the collection is empty: select at least one video sample")


# --- prompts per video ---------------------------------------------------------------------------


def _prompts_for(sample, prompts):
    """The prompt list of one sample from ``prompts`` (None, list, {sample_id: list} or FieldPrompts)."""
    if prompts is None:
        return []
    if isinstance(prompts, FieldPrompts):
        return prompts_from_fields(sample, prompts)
    if isinstance(prompts, dict):
        return list(prompts.get(sample.id, ()))
    return list(prompts)


def _check_prompts(sample, mode, prompts):
    size = frame_size(sample)
    for prompt in prompts:
        prompt.validate(size)
    if mode == "interactive" and not prompts:
        raise PromptError(
            f"interactive mode needs prompts but video {sample.filepath} has none: give clicks, boxes, "
            "strokes, masks or text, or choose automatic mode"
        )


def plan_videos(sample_collection, prompts, mode, options, model_record, store_seg):
    """``[(sample, prompts of that video, fingerprint)]`` for every video; checks all prompts first."""
    plan = []
    for sample in sample_collection.select_fields():
        video_prompts = _prompts_for(sample, prompts)
        _check_prompts(sample, mode, video_prompts)
        plan.append((sample, video_prompts, fingerprint(mode, options, model_record, video_prompts, store_seg)))
    return plan


# --- one video -------------------------------------------------------------------------------------


def _track_video(dataset, sample, prompts, label_field, mode, options, store_seg, print_, bar, operation_id):
    from samtrack_ops.pipeline import segment_and_track

    seg_field = f"{label_field}_seg" if store_seg else None
    field_types = _field_types(dataset, label_field, store_seg)
    record = {
        "_id": video_record_id(dataset, sample.id, label_field),
        "dataset_id": str(dataset._doc.id),
        "sample_id": sample.id,
        "label_field": label_field,
        "fingerprint": print_,
        "run_key": run_key(label_field),
    }
    total = (sample.metadata.total_frame_count if sample.metadata else None) or 0
    source = open_frames(sample.filepath)
    source.expect(total, "its FiftyOne metadata (total_frame_count)")
    results = segment_and_track(source, prompts, mode, on_stage=bar.set_stage, **options)
    expected = frames_to_track(sample, options)  # a video decoding more frames than promised stays at 100%
    return write_results(dataset, sample.id, results, field_types, label_field, seg_field,
                         lambda frames: bar.update() if frames <= expected else None, operation_id, record)


def write_results(dataset, sample_id, results, field_types, label_field, seg_field=None, report=None,
                  operation_id=None, record=None):
    """Writes FrameResults (with their quality signals) into one video, all-or-nothing; returns the frame
    count. field_types: every field the write replaces (``staging.VideoWrite``)."""
    frames = 0
    monitor = QualityMonitor()
    with staging.VideoWrite(dataset, sample_id, field_types, operation_id=operation_id, record=record) as write:
        for result in results:
            signals = monitor.update(result.label_map, {info.id: info.score for info in result.objects})
            write.add(result.frame_index + 1,
                      frame_documents(result.label_map, result.objects, label_field, seg_field, signals))
            frames += 1
            if report is not None:
                report(frames)
        write.commit()
    return frames


# --- the public call -------------------------------------------------------------------------------


def track_samples(
    sample_collection,
    prompts,
    label_field,
    mode="interactive",
    *,
    store_seg=False,
    skip_existing=False,
    progress=None,
    record_run=True,
    download=True,
    operation_id=None,
    stale_after=staging.DEFAULT_STALE_AFTER,
    **options,
):
    """Segments and tracks the objects of every video in ``sample_collection`` into ``frames.<label_field>``.

    Args:
        sample_collection: a dataset or view of video samples
        prompts: None (automatic mode), a list of ``samtrack_ops.prompts`` objects (for every video), a
            dict ``{sample_id: [prompts]}``, or a ``FieldPrompts`` (read from each video's frame fields)
        label_field: frame field to (re)write: ``fo.Detections`` per frame (``index`` = track ID)
        mode: "interactive", "automatic" or "fusion"
        store_seg: also write the full label map to ``frames.<label_field>_seg`` (``fo.Segmentation``)
        skip_existing: skip videos whose field already holds the result of the same mode, options,
            prompts and checkpoints
        progress: a progress bar over the frames, FiftyOne's convention (see :class:`FrameProgress`): None
            (``fo.config.show_progress_bars``, on by default), True, False, or a callable receiving the
            :class:`FrameProgress` (``.progress``, ``.iteration``, ``.total``, ``.stage``) instead of a bar
        record_run: register the run record ``samtrack_<label_field>`` on the dataset
        download: allow downloading missing checkpoints
        operation_id: the delegated operation running this call, if any (recorded for recovery)
        stale_after: seconds without heartbeat after which a writer counts as dead
        **options: pipeline options (sam_model, tracker_model, detector_model, device, sam_checkpoint,
            tracker_checkpoint, detector_checkpoint, text_encoder_path, sam_gap, min_area, max_obj_num,
            min_new_obj_iou, auto_text, seed_exact, frame_range, ...; prebuilt segmentor/tracker/detector objects)

    Returns:
        ``{sample_id: "done" | "skipped"}``
    """
    _check_call(sample_collection, label_field, mode, prompts, store_seg)
    dataset = sample_collection._dataset
    recover(dataset, stale_after=stale_after)
    options, model_record = resolve_models(prompts, options, download=download)

    plan = plan_videos(sample_collection, prompts, mode, options, model_record, store_seg)
    videos = {}
    todo = []
    for sample, video_prompts, print_ in plan:
        if skip_existing and is_done(dataset, sample.id, label_field, print_):
            videos[sample.id] = {"status": "skipped", "fingerprint": print_}
        else:
            todo.append((sample, video_prompts, print_))
    with FrameProgress(sum(frames_to_track(sample, options) for sample, _, _ in todo), progress) as bar:
        for position, (sample, video_prompts, print_) in enumerate(todo):
            bar.start_video(position, len(todo), sample.filepath)
            frames = _track_video(
                dataset, sample, video_prompts, label_field, mode, options, store_seg, print_, bar, operation_id
            )
            videos[sample.id] = {"status": "done", "fingerprint": print_, "frames": frames}
    done = [sample_id for sample_id, info in videos.items() if info["status"] == "done"]
    if done:
        store_video_summaries(dataset.select(done), label_field)

    if record_run:
        save_run_record(dataset, label_field, mode, options, model_record, prompts, store_seg, videos)
    recover(dataset, stale_after=stale_after)
    return {sample_id: info["status"] for sample_id, info in videos.items()}


