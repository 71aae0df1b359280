"""``export_tracks`` and ``evaluate_tracks``: thin forms over ``samtrack_ops.export`` and
``samtrack_ops.fiftyone.evaluation_runs``.

Both act on the target view FiftyOne offers (current view, selected samples, dataset). Python
equivalents: ``samtrack_ops.export.EXPORTERS[format](view, label_field, export_dir, overwrite=...)`` and
``samtrack_ops.fiftyone.evaluation_runs.evaluate_tracks(view, pred_field, gt_field, eval_key)``.
"""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops.export import EXPORTERS, ExportError
from samtrack_ops.export.coco import IMAGE_FORMATS
from samtrack_ops.fiftyone.evaluation_runs import LABEL_TYPES, evaluate_tracks

FORMAT_LABELS = {"coco": "COCO instance segmentation", "davis": "DAVIS 2017 folders", "ytvis": "YouTube-VIS JSON"}


def _frame_fields(collection, label_types):
    if collection.media_type != "video":
        return []
    schema = collection.get_frame_field_schema()
    return sorted(name for name, field in schema.items() if getattr(field, "document_type", None) in label_types)


def _field_dropdown(inputs, name, fields, label, default=None):
    choices = types.Dropdown()
    for field in fields:
        choices.add_choice(field, label=f"frames.{field}")
    inputs.enum(name, choices.values(), required=True, default=default, label=label, view=choices)


def _show_problem(inputs, message):
    inputs.view("problem", types.Error(label="Cannot run yet", description=message), invalid=True)


def export_options(params):
    """The exporter and its keyword arguments named by the form's params."""
    export_format = params.get("format") or "coco"
    if export_format not in EXPORTERS:
        raise ExportError(f"format must be one of {sorted(EXPORTERS)}, got {export_format!r}")
    if not params.get("export_dir"):
        raise ExportError("choose a directory to export to")
    options = {"overwrite": bool(params.get("overwrite"))}
    if export_format == "coco":
        options["image_format"] = params.get("image_format") or "jpg"
    return EXPORTERS[export_format], options


class ExportTracks(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_tracks",
            label="samtrack: export tracked objects",
            description="Export a tracked frame field as COCO, DAVIS or YouTube-VIS",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ctx.target_view()
        fields = _frame_fields(view, (fo.Detections,))
        _field_dropdown(inputs, "label_field", fields, "Tracked field", default=fields[0] if fields else None)
        formats = types.RadioGroup()
        for value, label in FORMAT_LABELS.items():
            formats.add_choice(value, label=label)
        inputs.enum("format", formats.values(), default="coco", label="Format", view=formats)
        if (ctx.params.get("format") or "coco") == "coco":
            inputs.enum("image_format", list(IMAGE_FORMATS), default="jpg", label="Frame image format")
        inputs.str("export_dir", required=True, label="Directory to create (absolute path)")
        inputs.bool("overwrite", default=False, label="Replace the directory if it exists")
        if not fields:
            _show_problem(inputs, "the target has no frame fields of fo.Detections: track objects first")
        return types.Property(inputs, view=types.View(label="Export tracked objects"))

    def execute(self, ctx):
        exporter, options = export_options(ctx.params)
        written = exporter(ctx.target_view(), ctx.params.get("label_field"), ctx.params["export_dir"], **options)
        return {"written": str(written)}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("written", label="Written")
        return types.Property(outputs)


class EvaluateTracks(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="evaluate_tracks",
            label="samtrack: evaluate tracks (DAVIS J&F)",
            description="Score a tracked field against ground truth with DAVIS J&F; sortable per-video fields",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        fields = _frame_fields(ctx.target_view(), LABEL_TYPES)
        _field_dropdown(inputs, "pred_field", fields, "Predictions (frame field)")
        _field_dropdown(inputs, "gt_field", fields, "Ground truth (frame field)")
        inputs.str("eval_key", default="davis", required=True, label="Evaluation key",
                   description="writes <key>_J, <key>_F, <key>_JF per video and <key>_J, <key>_F per frame")
        inputs.bool("overwrite", default=False, label="Replace an evaluation with this key")
        if not fields:
            _show_problem(inputs, "the target has no Detections or Segmentation frame fields to compare")
        return types.Property(inputs, view=types.View(label="Evaluate tracks (DAVIS J&F)"))

    def execute(self, ctx):
        results = evaluate_tracks(
            ctx.target_view(),
            ctx.params.get("pred_field"),
            ctx.params.get("gt_field"),
            eval_key=ctx.params.get("eval_key") or "davis",
            overwrite=bool(ctx.params.get("overwrite")),
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return {"eval_key": results.key, **results.metrics()}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("eval_key", label="Evaluation key")
        for key in ("JF_mean", "J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay"):
            outputs.float(key, label=key)
        return types.Property(outputs)

