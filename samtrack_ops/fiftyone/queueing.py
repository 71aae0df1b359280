"""Scale-out on FiftyOne's delegated operations, and the operator's run params.

:func:`queue_videos` queues one ``track_objects`` operation per video, so any number of ``fiftyone
delegated launch`` workers sharing the database each claim different videos (FiftyOne claims a queued
operation atomically). A worker that dies mid-video leaves its operation RUNNING and its staged write
behind: ``recovery.recover`` (run by every ``track_samples`` call, or by hand) discards the staged write,
marks the operation FAILED and queues it again. Workers on other hosts are judged dead after
``stale_after`` seconds without a heartbeat.
"""

from samtrack_ops.fiftyone.fingerprints import PREBUILT_MODELS, json_safe, resolve_models
from samtrack_ops.fiftyone.prompts import FieldPrompts, prompt_from_json, prompt_to_json
from samtrack_ops.fiftyone.records import is_done, save_run_record
from samtrack_ops.fiftyone.runs import TRACK_OPERATOR_URI, _check_call, check_sample_ids, plan_videos, track_samples


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
        if run["skip_existing"] and is_done(dataset, sample.id, run["label_field"], print_):
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
        "options": json_safe(options),
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
        check_sample_ids(sample_collection._dataset, params["sample_ids"], "the run is for")
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
