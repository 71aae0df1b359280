"""``track_objects``: segment and track objects in videos, a thin form over ``samtrack_ops.fiftyone``.

Targets: the current sample, the selected samples or the current view (videos only). Prompts are typed
into the form (one key frame: clicks, boxes, text) or read from frame label fields (Keypoints = clicks,
Detections = boxes / masks, Polylines = strokes; conventions in ``samtrack_ops/fiftyone/prompts.py``).
The Python equivalent of every run is ``samtrack_ops.fiftyone.track_samples``; with ``split_by_video``
one delegated operation is queued per video (``samtrack_ops.fiftyone.queue_videos``).

Operators called from Python (``execute_operator``) or queued per video may instead pass the library's
run params (``samtrack_ops.fiftyone.call_to_params``) as ``params={"run": ...}``.
"""

import json

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops import models
from samtrack_ops.fiftyone import FieldPrompts, call_to_params, queue_videos, track_from_params
from samtrack_ops.fiftyone.prompts import frame_size, prompt_from_json
from samtrack_ops.fiftyone.runs import MODES, check_label_field, check_videos
from samtrack_ops.pipeline import PipelineOptions
from samtrack_ops.prompts import Box, Click, PromptError, Text

TARGETS = {
    "CURRENT_SAMPLE": "Current sample",
    "SELECTED_SAMPLES": "Selected samples",
    "CURRENT_VIEW": "Current view",
    "DATASET": "Whole dataset",
}
SAM_MODELS, TRACKER_MODELS, DETECTOR_MODELS = models.SAM_MODELS, models.TRACKER_MODELS, models.DETECTOR_MODELS
DEVICES = ("auto", "cpu", "cuda")
_DEFAULTS = PipelineOptions()
NUMERIC_OPTIONS = {  # name: (type, default, description)
    "sam_gap": (int, _DEFAULTS.sam_gap, "automatic / fusion: look for new objects every N frames"),
    "min_area": (int, _DEFAULTS.min_area, "automatic / fusion: smallest new object, in pixels"),
    "max_obj_num": (int, _DEFAULTS.max_obj_num, "most objects in a video"),
    "min_new_obj_iou": (float, _DEFAULTS.min_new_obj_iou,
                        "automatic / fusion: share of a segment that must be untracked for a new object"),
}
ADVANCED_OPTIONS = {  # name: (type, description); shown under "Show advanced options", empty = the default
    "box_threshold": (float, "Grounding-DINO: smallest box score to keep a detection"),
    "text_threshold": (float, "Grounding-DINO: smallest word score to name a detection"),
    "long_term_mem_gap": (int, "DeAOT: frames between long-term memory entries (empty = SAM-Track's 9999)"),
    "max_len_long_term": (int, "DeAOT: most long-term memory entries (empty = SAM-Track's 9999)"),
}
CHECKPOINT_INPUTS = ("sam_checkpoint", "tracker_checkpoint", "detector_checkpoint", "text_encoder_path")


class InputProblem(ValueError):
    """Something in the form that cannot run; shown in the form and raised by execute."""


# --- target ----------------------------------------------------------------------------------------


def _available_targets(ctx):
    available = dict(TARGETS)
    if ctx.current_sample is None:
        available.pop("CURRENT_SAMPLE")
    if not ctx.selected:
        available.pop("SELECTED_SAMPLES")
    return available


def target_collection(ctx):
    """The samples the form's ``target`` names."""
    target = ctx.params.get("target") or next(iter(_available_targets(ctx)))
    if target == "CURRENT_SAMPLE":
        if ctx.current_sample is None:
            raise InputProblem("no sample is open: open a video or choose another target")
        return ctx.dataset.select(ctx.current_sample)
    if target == "SELECTED_SAMPLES":
        if not ctx.selected:
            raise InputProblem("no samples are selected: select videos or choose another target")
        return ctx.dataset.select(ctx.selected, ordered=True)
    if target == "DATASET":
        return ctx.dataset
    return ctx.view


# --- form -> run params ----------------------------------------------------------------------------


def _form_prompts(params):
    number = params.get("prompt_frame")
    frame = (1 if number is None else int(number)) - 1
    if frame < 0:
        raise InputProblem("prompt frame numbers start at 1")
    prompts = []
    objects = {}
    for number, click in enumerate(params.get("clicks") or (), start=1):
        group = objects.setdefault(int(click.get("object") or 1), ([], []))
        group[0].append(tuple(_pixel(click, key, f"Click {number}") for key in ("x", "y")))
        group[1].append(1 if click.get("positive", True) else 0)
    for number, (points, labels) in sorted(objects.items()):
        prompts.append(Click(frame=frame, points=points, labels=labels, label=f"object {number}"))
    for number, box in enumerate(params.get("boxes") or (), start=1):
        corners = [_pixel(box, key, f"Box {number}") for key in ("x0", "y0", "x1", "y1")]
        prompts.append(Box(frame=frame, box_xyxy=corners, label=box.get("label") or None))
    if _text(params):
        prompts.append(Text(frame=frame, text=_text(params)))
    return prompts


def _pixel(item, key, what):
    """The pixel coordinate ``item[key]`` of a click or box of the form; InputProblem naming the field if empty."""
    value = item.get(key)
    if value is None or value == "":
        raise InputProblem(f"{what}: '{key} (pixels)' is empty; type a pixel coordinate (0 = left/top edge) "
                           f"or remove the {what.split()[0].lower()}")
    return float(value)


def _text(params):
    return (params.get("text") or "").strip()


def _prompts(params):
    """Prompts of the form; automatic mode takes none (its text classes are the ``auto_text`` option)."""
    if params.get("mode") == "automatic":
        return None
    if params.get("prompt_source") == "fields":
        return FieldPrompts(
            keypoints_field=params.get("keypoints_field") or None,
            detections_field=params.get("detections_field") or None,
            polylines_field=params.get("polylines_field") or None,
        )
    return _form_prompts(params)


def _options(params):
    options = {
        "sam_model": params.get("sam_model") or "vit_b",
        "tracker_model": params.get("tracker_model") or "r50_deaotl",
        "device": None if params.get("device") in (None, "auto") else params["device"],
    }
    for name, (kind, default, _) in NUMERIC_OPTIONS.items():
        value = params.get(name)
        options[name] = kind(default if value is None else value)
    for name in CHECKPOINT_INPUTS:
        if params.get(name):
            options[name] = params[name]
    if params.get("mode") == "automatic" and _text(params):
        options["auto_text"] = _text(params)
    if params.get("advanced"):
        options.update(_advanced_options(params))
    if params.get("seed_exact"):
        options["seed_exact"] = True
    return options


def _advanced_options(params):
    options = {"detector_model": params.get("detector_model") or _DEFAULTS.detector_model}
    for name, (kind, _) in ADVANCED_OPTIONS.items():
        if params.get(name) is not None:
            options[name] = kind(params[name])
    text = (params.get("generator_options") or "").strip()
    if text:
        example = 'e.g. {"points_per_side": 16, "pred_iou_thresh": 0.8}'
        try:
            options["generator_options"] = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputProblem(f"generator_options is not valid JSON ({error}); give an object, {example}") from None
        if not isinstance(options["generator_options"], dict):
            raise InputProblem(f"generator_options must be a JSON object, {example}")
    return options


def form_to_run(params):
    """The library run params (``call_to_params``) of the form values."""
    try:
        run = call_to_params(
            _prompts(params),
            params.get("label_field") or "samtrack",
            params.get("mode") or "interactive",
            store_seg=bool(params.get("store_seg")),
            skip_existing=bool(params.get("skip_existing")),
            **_options(params),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputProblem(str(error)) from None
    run["split_by_video"] = bool(params.get("split_by_video"))
    return run


def check_run(collection, run):
    """Problems that stop the run before it starts (InputProblem)."""
    if run["mode"] not in MODES:
        raise InputProblem(f"mode must be one of {MODES}")
    try:
        check_label_field(run["label_field"])
    except ValueError as error:
        raise InputProblem(str(error)) from None
    try:
        check_videos(collection)
    except ValueError as error:
        raise InputProblem(str(error)) from None
    if run["prompt_fields"]:
        try:
            FieldPrompts(**run["prompt_fields"]).validate(collection)
        except PromptError as error:
            raise InputProblem(str(error)) from None
    elif run["mode"] != "automatic" and not run["prompts"]:
        raise InputProblem(f"{run['mode']} mode needs prompts: add clicks, boxes or text, or read them from fields")
    if run["prompts"] and len(collection) == 1:
        _check_inside_frame(collection.first(), run["prompts"])


def _check_inside_frame(sample, prompt_dicts):
    size = frame_size(sample)
    for data in prompt_dicts:
        try:
            prompt_from_json(data).validate(size)
        except PromptError as error:
            raise InputProblem(str(error)) from None


def _form_problem(ctx):
    """What stops the form's run from starting (a message naming the field), or None."""
    try:
        check_run(target_collection(ctx), form_to_run(ctx.params))
    except (InputProblem, PromptError) as error:
        return str(error)
    return None


# --- the operator ----------------------------------------------------------------------------------


class TrackObjects(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="track_objects",
            label="samtrack: segment and track objects",
            description="SAM + Grounding-DINO + DeAOT tracking into a frame Detections field",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx):
        # queueing one operation per video is quick: do it right away
        if ctx.params.get("split_by_video") and "run" not in ctx.params:
            return False
        return None

    def resolve_input(self, ctx):
        inputs = types.Object()
        if "run" in ctx.params:
            inputs.obj("run", label="run params (samtrack_ops.fiftyone.call_to_params)")
            return types.Property(inputs)
        problem = _form_problem(ctx)
        _target_inputs(ctx, inputs)
        _prompt_inputs(ctx, inputs)
        if problem:  # under the prompts, where the user is typing, not at the end of the long form
            inputs.view("problem", types.Error(label="Cannot run yet", description=problem),
                        invalid=True, error_message=problem)
        _model_inputs(inputs)
        _advanced_inputs(ctx, inputs)
        _output_inputs(inputs)
        return types.Property(inputs, view=types.View(label="Track objects"))

    def execute(self, ctx):
        if "run" in ctx.params:
            run, collection = ctx.params["run"], ctx.dataset
        else:
            run, collection = form_to_run(ctx.params), target_collection(ctx)
            check_run(collection, run)
        if run.get("split_by_video") and not run.get("sample_ids"):
            queued = queue_videos(collection, run, delegation_target=ctx.delegation_target)
            return {"queued_operations": queued}

        def progress(bar):
            ctx.set_progress(progress=bar.progress, label=bar.stage)

        outcome = track_from_params(collection, run, progress=progress, operation_id=ctx.request_params.get("run_doc"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        statuses = list(outcome.values())
        return {
            "label_field": run["label_field"],
            "done": statuses.count("done"),
            "skipped": statuses.count("skipped"),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("label_field", label="Field written (frames.<field>)")
        outputs.int("done", label="Videos tracked")
        outputs.int("skipped", label="Videos skipped (already done with the same settings)")
        outputs.list("queued_operations", types.String(), label="Delegated operations queued (one per video)")
        return types.Property(outputs)


def _target_inputs(ctx, inputs):
    available = _available_targets(ctx)
    choices = types.RadioGroup()
    for value, label in available.items():
        choices.add_choice(value, label=label)
    inputs.enum("target", choices.values(), default=next(iter(available)), label="Videos", view=choices)


def _prompt_inputs(ctx, inputs):
    modes = types.Dropdown()
    for mode in MODES:
        modes.add_choice(mode, label=mode)
    inputs.enum("mode", modes.values(), default="interactive", label="Mode", view=modes,
                description="interactive: your prompts; automatic: SAM finds objects; fusion: both")
    sources = types.RadioGroup()
    sources.add_choice("form", label="Type prompts here")
    sources.add_choice("fields", label="Read prompts from frame label fields")
    inputs.enum("prompt_source", sources.values(), default="form", label="Prompts", view=sources)
    if ctx.params.get("prompt_source") == "fields":
        _field_choice(ctx, inputs, "keypoints_field", fo.Keypoints, "clicks: per-point 'positive' list or label 'negative'")
        _field_choice(ctx, inputs, "detections_field", fo.Detections, "boxes; detections with masks are mask prompts")
        _field_choice(ctx, inputs, "polylines_field", fo.Polylines, "strokes")
        return
    inputs.int("prompt_frame", default=1, label="Key frame number (first frame = 1)")
    click = types.Object()
    click.float("x", label="x (pixels)", required=True)
    click.float("y", label="y (pixels)", required=True)
    click.bool("positive", default=True, label="positive")
    click.int("object", default=1, label="object number")
    inputs.list("clicks", click, label="Clicks")
    box = types.Object()
    for corner in ("x0", "y0", "x1", "y1"):
        box.float(corner, label=f"{corner} (pixels)", required=True)
    box.str("label", label="label")
    inputs.list("boxes", box, label="Boxes")
    inputs.str("text", label="Text classes",
               description="Grounding-DINO classes, e.g. 'person. car' (automatic mode: the classes to find)")


def _field_choice(ctx, inputs, name, label_type, description):
    schema = ctx.dataset.get_frame_field_schema() if ctx.dataset.media_type == "video" else None
    fields = [f for f, field in (schema or {}).items() if getattr(field, "document_type", None) is label_type]
    choices = types.Dropdown()
    for field in fields:
        choices.add_choice(field, label=f"frames.{field}")
    inputs.enum(name, choices.values(), label=f"{label_type.__name__} field", description=description, view=choices)


def _model_inputs(inputs):
    for name, values, default in (("sam_model", SAM_MODELS, "vit_b"), ("tracker_model", TRACKER_MODELS, "r50_deaotl"),
                                  ("device", DEVICES, "auto")):
        choices = types.Dropdown()
        for value in values:
            choices.add_choice(value, label=value)
        inputs.enum(name, choices.values(), default=default, label=name, view=choices)
    for name, (kind, default, description) in NUMERIC_OPTIONS.items():
        adder = inputs.int if kind is int else inputs.float
        adder(name, default=default, label=name, description=description)
    for name in CHECKPOINT_INPUTS:
        inputs.str(name, label=name, description="existing file/folder; empty = the model cache")
    inputs.bool("seed_exact", default=False, label="seed_exact",
                description="automatic mode: segment everything exactly as the Segment-and-Track-Anything seed "
                            "(BGR input, masks in generator order, reused highest ID); see the README")


def _advanced_inputs(ctx, inputs):
    inputs.bool("advanced", default=False, label="Show advanced options",
                description="Grounding-DINO model and thresholds, DeAOT memory, SAM segment-everything settings")
    if not ctx.params.get("advanced"):
        return
    choices = types.Dropdown()
    for value in DETECTOR_MODELS:
        choices.add_choice(value, label=value)
    inputs.enum("detector_model", choices.values(), default=_DEFAULTS.detector_model, label="detector_model",
                view=choices, description="Grounding-DINO for text prompts and automatic text classes")
    for name, (kind, description) in ADVANCED_OPTIONS.items():
        adder = inputs.int if kind is int else inputs.float
        adder(name, default=getattr(_DEFAULTS, name), label=name, description=description)
    inputs.str("generator_options", label="generator_options",
               description='SAM segment-everything overrides as JSON, e.g. {"points_per_side": 16}')


def _output_inputs(inputs):
    inputs.str("label_field", default="samtrack", label="Output frame field")
    inputs.bool("store_seg", default=False, label="Also store frames.<field>_seg (full label map)")
    inputs.bool("skip_existing", default=False, label="Skip videos already done with the same settings")
    inputs.bool("split_by_video", default=False,
                label="One delegated operation per video (run `fiftyone delegated launch` workers)")
