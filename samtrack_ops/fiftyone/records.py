"""Records of what a label field holds and how it was made.

- the *run record*: FiftyOne's runs mechanism, key ``samtrack_<field>`` (``dataset.get_run_info(key)``
  / ``dataset.load_run_results(key)``): config = mode, options, prompts (or the prompt fields), model
  names, checkpoint files and their SHA-256; results = per-video status and fingerprint. Registered by the
  run that processes the videos, or, for a split run, by the call that queues the per-video operations;
- the *video records*: collection ``samtrack_videos``, one document per (dataset, video, field) written
  by the same commit as the labels: the fingerprint of what the field now holds and the corrections
  made to it since (``corrections``, see ``corrections.py``). ``skip_existing=True`` skips videos whose
  record matches the new fingerprint, so corrected videos are not tracked again by a rerun.
"""

import fiftyone.core.odm as foo

from samtrack_ops.fiftyone import staging
from samtrack_ops.fiftyone.fingerprints import json_safe
from samtrack_ops.fiftyone.prompts import FieldPrompts, prompt_to_json


def run_key(label_field):
    """The FiftyOne run key recording how ``frames.<label_field>`` was made."""
    return f"samtrack_{label_field}"


def _describe_prompts(prompts):
    if prompts is None:
        return None
    if isinstance(prompts, FieldPrompts):
        return {"fields": prompts.to_json()}
    if isinstance(prompts, dict):
        return {"per_video": {sid: [prompt_to_json(p) for p in ps] for sid, ps in prompts.items()}}
    return {"all_videos": [prompt_to_json(p) for p in prompts]}


def _video_records():
    return foo.get_db_conn()[staging.RECORDS_COLLECTION]


def video_record_id(dataset, sample_id, label_field):
    return f"{dataset._doc.id}/{sample_id}/{label_field}"


def video_record(dataset, sample_id, label_field):
    """The record of what ``frames.<label_field>`` of one video holds (dict), or None."""
    return _video_records().find_one({"_id": video_record_id(dataset, sample_id, label_field)})


def is_done(dataset, sample_id, label_field, print_):
    record = video_record(dataset, sample_id, label_field)
    if record is None or record["fingerprint"] != print_:
        return False
    return dataset.get_frame_field_schema().get(label_field) is not None


def save_run_record(dataset, label_field, mode, options, model_record, prompts, store_seg, videos):
    """Registers (replaces) the FiftyOne run ``samtrack_<label_field>`` with config and per-video results."""
    key = run_key(label_field)
    config = dataset.init_run(
        method="samtrack",
        label_field=label_field,
        seg_field=f"{label_field}_seg" if store_seg else None,
        mode=mode,
        options=json_safe({k: v for k, v in options.items() if "checkpoint" not in k}),
        models=model_record,
        prompts=_describe_prompts(prompts),
    )
    dataset.reload()
    dataset.register_run(key, config, overwrite=True)
    dataset.save_run_results(key, dataset.init_run_results(key, videos=videos))
