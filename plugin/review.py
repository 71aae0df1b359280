"""Review and correct operators: thin adapters over ``samtrack_ops.fiftyone.review`` / ``.corrections``.

- ``build_review_queue``: the clips most likely wrong in a label field, worst first, saved as a view;
- ``mark_reviewed``: frames of the current video leave the queue;
- ``correct_track``: one correction on the current video (``action``: resegment, add, delete, merge,
  relabel, human_edits), with clicks or a box on ``frame_number`` where the action needs a mask.

Frame numbers are FiftyOne's (1-based); clicks and boxes are in pixels of the video frame.
"""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops.fiftyone import corrections
from samtrack_ops.fiftyone.review import DEFAULT_THRESHOLD, build_review_queue, mark_reviewed, review_view_name
from samtrack_ops.prompts import Box, Click, PromptError

ACTIONS = ("resegment", "add", "delete", "merge", "relabel", "human_edits")
MODEL_INPUTS = ("sam_checkpoint", "tracker_checkpoint", "device")


class BuildReviewQueue(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="build_review_queue", label="samtrack: build review queue", dynamic=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("label_field", label="Tracked label field", required=True, default="samtrack")
        inputs.float("threshold", label="Flag frames with suspicion at least", default=DEFAULT_THRESHOLD)
        return types.Property(inputs)

    def execute(self, ctx):
        field = ctx.params["label_field"]
        view = build_review_queue(ctx.dataset, field, threshold=float(ctx.params.get("threshold", DEFAULT_THRESHOLD)))
        if ctx.params.get("open_view", True) and getattr(ctx, "ops", None) is not None:
            ctx.ops.set_view(name=review_view_name(field))
        return {"clips": len(view), "view": review_view_name(field)}


class MarkReviewed(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="mark_reviewed", label="samtrack: mark frames reviewed", dynamic=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("label_field", label="Tracked label field", required=True, default="samtrack")
        inputs.list("frame_numbers", types.Number(int=True), label="Frame numbers", required=True)
        return types.Property(inputs)

    def execute(self, ctx):
        sample = _current_video(ctx)
        mark_reviewed(sample, ctx.params["label_field"], ctx.params["frame_numbers"])
        return {"reviewed": len(ctx.params["frame_numbers"])}


class CorrectTrack(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="correct_track", label="samtrack: correct a track", dynamic=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.enum("action", list(ACTIONS), label="Correction", default="resegment", required=True)
        inputs.str("label_field", label="Tracked label field", required=True, default="samtrack")
        inputs.int("frame_number", label="Frame number", default=1)
        inputs.int("object_id", label="Track (index)")
        inputs.int("merged_id", label="Merge this track into the one above")
        inputs.str("label", label="Label (add / relabel)")
        inputs.bool("backward", label="Re-propagate backward instead of forward", default=False)
        inputs.bool("early_stop", label="Stop once the stored labels agree again", default=True)
        for name in MODEL_INPUTS:
            inputs.str(name, label=name.replace("_", " "))
        return types.Property(inputs)

    def execute(self, ctx):
        params = ctx.params
        try:
            result = run_correction(_current_video(ctx), params)
        except (PromptError, ValueError) as error:
            raise ValueError(f"correction not applied: {error}") from error
        results = result if isinstance(result, list) else [result]
        return {"corrections": [r._asdict() for r in results]}


def _current_video(ctx):
    sample_id = ctx.params.get("sample_id") or ctx.current_sample
    if sample_id is None:
        raise ValueError("open a video sample (or pass sample_id) to review or correct it")
    return ctx.dataset[sample_id]


def _prompt(params):
    frame = int(params.get("frame_number") or 1) - 1
    if params.get("box"):
        return Box(frame=frame, box_xyxy=[float(v) for v in params["box"]])
    clicks = params.get("clicks") or ()
    if not clicks:
        raise PromptError("click on the object (or draw a box) on the frame to correct")
    return Click(frame=frame, points=[(float(c["x"]), float(c["y"])) for c in clicks],
                 labels=[1 if c.get("positive", True) else 0 for c in clicks])


def _model_options(params):
    options = {name: params[name] for name in MODEL_INPUTS if params.get(name)}
    if options.get("device") == "auto":
        options.pop("device")
    return options


def run_correction(sample, params):
    """Runs the correction the operator params describe on one video sample (CorrectionResult or list)."""
    action, field = params.get("action", "resegment"), params["label_field"]
    frame_number, object_id = int(params.get("frame_number") or 1), params.get("object_id")
    tracking = {"backward": bool(params.get("backward")), "early_stop": params.get("early_stop", True),
                **_model_options(params)}
    if action == "resegment":
        return corrections.resegment_track(sample, field, frame_number, int(object_id), _prompt(params), **tracking)
    if action == "add":
        return corrections.add_track(sample, field, frame_number, _prompt(params), params.get("label") or "object",
                                     **tracking)
    if action == "delete":
        return corrections.delete_track(sample, field, int(object_id), frame_number, tracking["backward"])
    if action == "merge":
        return corrections.merge_tracks(sample, field, int(object_id), int(params["merged_id"]), frame_number)
    if action == "relabel":
        return corrections.relabel_track(sample, field, int(object_id), params["label"])
    if action == "human_edits":
        tracking.pop("backward")
        return corrections.apply_human_edits(sample, field, **tracking)
    raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
