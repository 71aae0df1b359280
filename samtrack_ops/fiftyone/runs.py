"""Tracking over sample collections: ``track_samples``, run records, ``skip_existing``, per-video splitting.

One call, :func:`track_samples`, segments and tracks every video of a collection into ``frames.<field>``
(and optionally ``frames.<field>_seg``). Each video is written all-or-nothing (``staging.VideoWrite``).

Records, so a user can see how a field was made:

- the *run record*: FiftyOne's runs mechanism, key ``samtrack_<field>`` (``dataset.get_run_info(key)``
  / ``dataset.load_run_results(key)``): config = mode, options, prompts (or the prompt fields), model
  names, checkpoint files and their SHA-256; results = per-video status and fingerprint. Registered by the
  run that processes the videos, or, for a split run, by the call that queues the per-video operations;
- the *video records*: collection ``samtrack_videos``, one document per (dataset, video, field) written
  by the same commit as the labels: the fingerprint (hash of mode, options, prompts of that video and
  checkpoint hashes) of what the field now holds. ``skip_existing=True`` skips videos whose record
  matches the new fingerprint.

Scale-out on FiftyOne's delegated operations (:func:`queue_videos`): one ``track_objects`` operation is
queued per video, so any number of ``fiftyone delegated launch`` workers sharing the database each claim
different videos (FiftyOne claims a queued operation atomically). A worker that dies mid-video leaves its
operation RUNNING and its staged write behind: :func:`recover` (run automatically at the start and end of
every ``track_samples`` call, so whenever any live worker starts or finishes a video) discards the staged
write, marks the operation FAILED and queues it again. A worker's heartbeat runs in the background while
it lives; workers are judged dead after ``stale_after`` seconds without one (at once when they ran in this
PID namespace and their process is gone); ``samtrack_ops.fiftyone.recover(dataset)`` also runs it by hand.
"""

import hashlib
import json
import re

import numpy as np
from bson import ObjectId

import fiftyone.core.odm as foo

from samtrack_ops import models
from samtrack_ops.fiftyone import staging
from samtrack_ops.fiftyone.prompts import FieldPrompts, frame_size, prompt_from_json, prompt_to_json, prompts_from_fields
from samtrack_ops.fiftyone.storage import frame_documents
from samtrack_ops.prompts import PromptError, Text
from samtrack_ops.video import open_frames

TRACK_OPERATOR_URI = "@samtrack/samtrack/track_objects"
MODES = ("interactive", "automatic", "fusion")
PREBUILT_MODELS = ("segmentor", "tracker", "detector")
NOT_IN_FINGERPRINT = ("device",) + PREBUILT_MODELS
CHECKPOINT_ROLES = {  # role: (checkpoint option, registry-name option, default registry name)
    "sam": ("sam_checkpoint", "sam_model", "vit_b"),
    "tracker": ("tracker_checkpoint", "tracker_model", "r50_deaotl"),
    "detector": ("detector_checkpoint", "detector_model", "groundingdino_swint_ogc"),
}
ROLE_OF_PREBUILT = {"sam": "segmentor", "tracker": "tracker", "detector": "detector"}


def run_key(label_field):
    """The FiftyOne run key recording how ``frames.<label_field>`` was made."""
    return f"samtrack_{label_field}"


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
        _check_sample_ids(sample_collection, prompts, "prompts are given for")


def _check_sample_ids(sample_collection, sample_ids, what):
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


def _describe_prompts(prompts):
    if prompts is None:
        return None
    if isinstance(prompts, FieldPrompts):
        return {"fields": prompts.to_json()}
    if isinstance(prompts, dict):
        return {"per_video": {sid: [prompt_to_json(p) for p in ps] for sid, ps in prompts.items()}}
    return {"all_videos": [prompt_to_json(p) for p in prompts]}


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


# --- models and fingerprints ---------------------------------------------------------------------


def _has_text(prompts):
    if isinstance(prompts, dict):
        lists = list(prompts.values())
    elif isinstance(prompts, (list, tuple)):
        lists = [prompts]
    else:
        lists = []
    return any(isinstance(prompt, Text) for prompt_list in lists for prompt in prompt_list)


def _needed_roles(prompts, options):
    """SAM and DeAOT always; Grounding-DINO for text prompts or ``auto_text``."""
    return ["sam", "tracker"] + (["detector"] if options.get("auto_text") or _has_text(prompts) else [])


def _registry_name(role, options):
    _, name_option, default = CHECKPOINT_ROLES[role]
    name = options.get(name_option) or default
    return f"sam_{name}" if role == "sam" else name


_hash_cache = {}


def _file_sha256(path):
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = models.sha256_of(path)
    return _hash_cache[key]


def resolve_models(prompts, options, download=True):
    """Finds the checkpoint files a run needs, before any video is touched.

    Returns:
        ``(options with checkpoint paths filled in, {role: {"name", "checkpoint", "sha256"}})``; a role
        given as a prebuilt object is recorded by its class name. Raises ``MissingCheckpointError``.
    """
    resolved = dict(options)
    record = {}
    for role in _needed_roles(prompts, options):
        checkpoint_option = CHECKPOINT_ROLES[role][0]
        prebuilt = options.get(ROLE_OF_PREBUILT[role])
        if prebuilt is not None:
            record[role] = {"name": f"prebuilt {type(prebuilt).__name__}", "checkpoint": None, "sha256": None}
            continue
        name = _registry_name(role, options)
        path = models.resolve_checkpoint(name, path=options.get(checkpoint_option), download=download)
        resolved[checkpoint_option] = str(path)
        record[role] = {"name": name, "checkpoint": str(path), "sha256": _file_sha256(path)}
    return resolved, record


def _json_safe(options):
    safe = {}
    for key, value in options.items():
        if key in PREBUILT_MODELS:
            value = None if value is None else f"prebuilt {type(value).__name__}"
        elif isinstance(value, np.generic):
            value = value.item()
        elif not isinstance(value, (str, int, float, bool, type(None), list, dict)):
            value = str(value)
        safe[key] = value
    return safe


def fingerprint(mode, options, model_record, prompts, store_seg):
    """Hash of everything that determines a video's labels (not the device)."""
    content = {
        "mode": mode,
        "options": {k: v for k, v in _json_safe(options).items() if k not in NOT_IN_FINGERPRINT and "checkpoint" not in k},
        "models": {role: (m["name"], m["sha256"]) for role, m in model_record.items()},
        "prompts": [prompt_to_json(p) for p in prompts],
        "store_seg": bool(store_seg),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


# --- video records ---------------------------------------------------------------------------------


def _video_records():
    return foo.get_db_conn()[staging.RECORDS_COLLECTION]


def _video_record_id(dataset, sample_id, label_field):
    return f"{dataset._doc.id}/{sample_id}/{label_field}"


def video_record(dataset, sample_id, label_field):
    """The record of what ``frames.<label_field>`` of one video holds (dict), or None."""
    return _video_records().find_one({"_id": _video_record_id(dataset, sample_id, label_field)})


def _is_done(dataset, sample_id, label_field, print_):
    record = video_record(dataset, sample_id, label_field)
    if record is None or record["fingerprint"] != print_:
        return False
    return dataset.get_frame_field_schema().get(label_field) is not None


# --- one video -------------------------------------------------------------------------------------


def _track_video(dataset, sample, prompts, label_field, mode, options, store_seg, print_, report, operation_id):
    from samtrack_ops.pipeline import segment_and_track

    seg_field = f"{label_field}_seg" if store_seg else None
    field_types = _field_types(dataset, label_field, store_seg)
    record = {
        "_id": _video_record_id(dataset, sample.id, label_field),
        "dataset_id": str(dataset._doc.id),
        "sample_id": sample.id,
        "label_field": label_field,
        "fingerprint": print_,
        "run_key": run_key(label_field),
    }
    total = (sample.metadata.total_frame_count if sample.metadata else None) or 0
    source = open_frames(sample.filepath)
    source.expect(total, "its FiftyOne metadata (total_frame_count)")
    frames = 0
    with staging.VideoWrite(dataset, sample.id, field_types, operation_id=operation_id, record=record) as write:
        for result in segment_and_track(source, prompts, mode, **options):
            write.add(result.frame_index + 1, frame_documents(result.label_map, result.objects, label_field, seg_field))
            frames += 1
            report(min(frames / total, 1.0) if total else 0.0)
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
        progress: optional ``progress(fraction, message)`` callback, called per frame
        record_run: register the run record ``samtrack_<label_field>`` on the dataset
        download: allow downloading missing checkpoints
        operation_id: the delegated operation running this call, if any (recorded for recovery)
        stale_after: seconds without heartbeat after which a writer counts as dead
        **options: pipeline options (sam_model, tracker_model, detector_model, device, sam_checkpoint,
            tracker_checkpoint, detector_checkpoint, text_encoder_path, sam_gap, min_area, max_obj_num,
            min_new_obj_iou, auto_text, seed_exact, ...; prebuilt segmentor/tracker/detector objects)

    Returns:
        ``{sample_id: "done" | "skipped"}``
    """
    _check_call(sample_collection, label_field, mode, prompts, store_seg)
    dataset = sample_collection._dataset
    recover(dataset, stale_after=stale_after)
    options, model_record = resolve_models(prompts, options, download=download)

    plan = plan_videos(sample_collection, prompts, mode, options, model_record, store_seg)
    videos = {}
    for position, (sample, video_prompts, print_) in enumerate(plan):
        if skip_existing and _is_done(dataset, sample.id, label_field, print_):
            videos[sample.id] = {"status": "skipped", "fingerprint": print_}
            continue

        def report(fraction, position=position, name=sample.filepath):
            if progress is not None:
                progress((position + fraction) / len(plan), f"video {position + 1}/{len(plan)}: {name}")

        frames = _track_video(
            dataset, sample, video_prompts, label_field, mode, options, store_seg, print_, report, operation_id
        )
        videos[sample.id] = {"status": "done", "fingerprint": print_, "frames": frames}

    if record_run:
        save_run_record(dataset, label_field, mode, options, model_record, prompts, store_seg, videos)
    recover(dataset, stale_after=stale_after)
    return {sample_id: info["status"] for sample_id, info in videos.items()}


def save_run_record(dataset, label_field, mode, options, model_record, prompts, store_seg, videos):
    """Registers (replaces) the FiftyOne run ``samtrack_<label_field>`` with config and per-video results."""
    key = run_key(label_field)
    config = dataset.init_run(
        method="samtrack",
        label_field=label_field,
        seg_field=f"{label_field}_seg" if store_seg else None,
        mode=mode,
        options=_json_safe({k: v for k, v in options.items() if "checkpoint" not in k}),
        models=model_record,
        prompts=_describe_prompts(prompts),
    )
    dataset.reload()
    dataset.register_run(key, config, overwrite=True)
    dataset.save_run_results(key, dataset.init_run_results(key, videos=videos))


# --- delegated splitting and recovery --------------------------------------------------------------


def recover(dataset=None, stale_after=staging.DEFAULT_STALE_AFTER):
    """Makes videos whose worker died re-runnable: discards their staged writes (or finishes interrupted
    commits) and marks their delegated operations FAILED and queues them again.

    Returns:
        ``{"writes": [journal entries handled], "requeued": [new operation IDs]}``
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

    service = DelegatedOperationService()
    requeued = []
    handled = staging.recover_interrupted_writes(dataset, stale_after=stale_after)
    for entry in handled:
        if entry.get("operation_id") is None:
            continue
        failed = service.set_failed(
            doc_id=ObjectId(entry["operation_id"]),
            result=ExecutionResult(error="samtrack: the worker died mid-video; the video was queued again"),
            required_state=ExecutionRunState.RUNNING,
        )
        if failed is not None:
            requeued.append(str(service.rerun_operation(failed.id).id))
    return {"writes": handled, "requeued": requeued}


def queue_videos(sample_collection, params, delegation_target=None):
    """Queues one delegated ``track_objects`` operation per video (params = operator run params).

    With ``params["skip_existing"]`` videos already done with the same fingerprint are not queued. The run
    record is registered here (per-video status then lives in the video records).

    Returns:
        list of the queued operation IDs (str)
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionContext

    run = params_to_call(params)
    prebuilt = [name for name in PREBUILT_MODELS if run["options"].get(name) is not None]
    if prebuilt:
        raise ValueError(f"delegated runs load their own models: pass checkpoint files, not prebuilt {prebuilt}")
    _check_call(sample_collection, run["label_field"], run["mode"], run["prompts"], run["store_seg"])
    dataset = sample_collection._dataset
    options, model_record = resolve_models(run["prompts"], run["options"], download=run["download"])
    service = DelegatedOperationService()
    queued = []
    videos = {}
    plan = plan_videos(sample_collection, run["prompts"], run["mode"], options, model_record, run["store_seg"])
    for sample, _, print_ in plan:
        if run["skip_existing"] and _is_done(dataset, sample.id, run["label_field"], print_):
            videos[sample.id] = {"status": "skipped", "fingerprint": print_}
            continue
        request = {
            "dataset_name": dataset.name,
            "dataset_id": str(dataset._doc.id),
            "params": {"run": {**params, "sample_ids": [sample.id], "split_child": True, "options": options}},
        }
        operation = service.queue_operation(
            operator=TRACK_OPERATOR_URI,
            label=f"samtrack: {run['label_field']} <- {sample.filepath}",
            delegation_target=delegation_target,
            context=ExecutionContext(request_params=request),
        )
        queued.append(str(operation.id))
        videos[sample.id] = {"status": "queued", "fingerprint": print_, "operation_id": str(operation.id)}
    save_run_record(
        dataset, run["label_field"], run["mode"], options, model_record, run["prompts"], run["store_seg"], videos
    )
    return queued


# --- operator parameters <-> call ------------------------------------------------------------------


def call_to_params(prompts, label_field, mode="interactive", *, store_seg=False, skip_existing=False, download=True, **options):
    """The JSON-able run params of a :func:`track_samples` call (prompts as a list or FieldPrompts)."""
    if isinstance(prompts, dict):
        raise ValueError("per-video prompt dicts cannot be split into delegated runs; give a list or FieldPrompts")
    return {
        "label_field": label_field,
        "mode": mode,
        "store_seg": store_seg,
        "skip_existing": skip_existing,
        "download": download,
        "prompts": None if prompts is None or isinstance(prompts, FieldPrompts) else [prompt_to_json(p) for p in prompts],
        "prompt_fields": prompts.to_json() if isinstance(prompts, FieldPrompts) else None,
        "options": _json_safe(options),
        "sample_ids": None,
    }


def params_to_call(params):
    """The :func:`track_samples` keyword arguments of run params (see :func:`call_to_params`)."""
    if params.get("prompt_fields"):
        prompts = FieldPrompts(**params["prompt_fields"])
    elif params.get("prompts") is not None:
        prompts = [prompt_from_json(p) for p in params["prompts"]]
    else:
        prompts = None
    return {
        "prompts": prompts,
        "label_field": params["label_field"],
        "mode": params.get("mode", "interactive"),
        "store_seg": bool(params.get("store_seg")),
        "skip_existing": bool(params.get("skip_existing")),
        "download": params.get("download", True),
        "options": {k: v for k, v in (params.get("options") or {}).items() if v is not None},
    }


def track_from_params(sample_collection, params, progress=None, operation_id=None):
    """Runs :func:`track_samples` from run params on the collection (or on ``params["sample_ids"]``)."""
    run = params_to_call(params)
    if params.get("sample_ids"):
        _check_sample_ids(sample_collection._dataset, params["sample_ids"], "the run is for")
        sample_collection = sample_collection._dataset.select(params["sample_ids"], ordered=True)
    return track_samples(
        sample_collection,
        run["prompts"],
        run["label_field"],
        run["mode"],
        store_seg=run["store_seg"],
        skip_existing=run["skip_existing"],
        download=run["download"],
        progress=progress,
        operation_id=operation_id,
        record_run=not params.get("split_child", False),
        **run["options"],
    )
