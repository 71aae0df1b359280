"""J&F evaluation of a tracked frame field against ground truth, stored as a FiftyOne evaluation run.

``evaluate_tracks(samples, pred_field, gt_field, eval_key)`` scores each video with
``samtrack_ops.evaluation.evaluate_davis`` over the frames that have ground truth (in frame order; the
first of them is the reference frame), then records:

- sample fields ``<eval_key>_J``, ``<eval_key>_F``, ``<eval_key>_JF``: the video's J mean, F mean and
  J&F mean (sortable in the App; grouped in the sidebar under ``eval_key``),
- frame fields ``<eval_key>_J`` and ``<eval_key>_F``: each scored frame's values averaged over objects,
- the run (``samples.list_evaluations()``) with results holding every video's full result;
  ``results.metrics()`` averages over all objects of all videos, as the official DAVIS script does.

Fields may hold ``fo.Detections`` (label map painted from masks and ``index``) or ``fo.Segmentation``
(the mask is the label map). Label maps reach ``evaluate_davis`` unchanged, so the official DAVIS rules hold
for both: 255 (a ``Segmentation`` value or a detection with ``index=255``) is void, and the objects are
1..N, N the largest ID on the reference frame, whether or not each appears there. Everything is validated and computed before anything is written.
"""

import numpy as np

import fiftyone as fo
import fiftyone.utils.eval.base as foeb

from samtrack_ops.evaluation import METRIC_KEYS, EvaluationError, evaluate_davis
from samtrack_ops.fiftyone.prompts import frame_size
from samtrack_ops.fiftyone.storage import detections_to_label_map
from samtrack_ops.prompts import PromptError

LABEL_TYPES = (fo.Detections, fo.Segmentation)
SAMPLE_METRICS = {"J": "J_mean", "F": "F_mean", "JF": "JF_mean"}
FRAME_METRICS = ("J", "F")


def output_fields(eval_key):
    """The sample and frame fields an evaluation with this key writes."""
    return [f"{eval_key}_{m}" for m in SAMPLE_METRICS] + [f"frames.{eval_key}_{m}" for m in FRAME_METRICS]


class DavisEvaluationConfig(foeb.BaseEvaluationMethodConfig):
    """Configures a DAVIS J&F evaluation of ``frames.<pred_field>`` against ``frames.<gt_field>``."""

    def __init__(self, pred_field, gt_field, custom_metrics=None, **kwargs):
        super().__init__(**kwargs)
        self.pred_field = pred_field
        self.gt_field = gt_field
        self.custom_metrics = custom_metrics

    @property
    def method(self):
        return "davis"


class DavisEvaluation(foeb.BaseEvaluationMethod):
    """The DAVIS J&F evaluation method (fields it writes, rename, cleanup)."""

    def get_fields(self, samples, eval_key):
        return output_fields(eval_key)

    def rename(self, samples, eval_key, new_eval_key):
        dataset = samples._dataset
        dataset.rename_sample_fields({f"{eval_key}_{m}": f"{new_eval_key}_{m}" for m in SAMPLE_METRICS})
        dataset.rename_frame_fields({f"{eval_key}_{m}": f"{new_eval_key}_{m}" for m in FRAME_METRICS})
        samples._rename_sidebar_group(eval_key, new_eval_key)

    def cleanup(self, samples, eval_key):
        dataset = samples._dataset
        dataset.delete_sample_fields([f"{eval_key}_{m}" for m in SAMPLE_METRICS], error_level=1)
        dataset.delete_frame_fields([f"{eval_key}_{m}" for m in FRAME_METRICS], error_level=1)
        samples._delete_empty_sidebar_group(eval_key)

    def _validate_run(self, samples, eval_key, existing_info):
        self._validate_fields_match(eval_key, "pred_field", existing_info)
        self._validate_fields_match(eval_key, "gt_field", existing_info)


class DavisEvaluationResults(foeb.BaseEvaluationResults):
    """Results of a DAVIS evaluation: ``videos`` = ``{sample_id: evaluate_davis result}`` (object IDs
    as strings)."""

    def __init__(self, samples, config, eval_key, videos, custom_metrics=None, backend=None):
        super().__init__(samples, config, eval_key, custom_metrics=custom_metrics, backend=backend)
        self.videos = videos

    def metrics(self):
        """Each metric averaged over all objects of all videos; ``JF_mean = (J_mean + F_mean) / 2``."""
        objects = [o for video in self.videos.values() for o in video["per_object"].values()]
        means = {key: float(np.mean([o[key] for o in objects])) for key in METRIC_KEYS}
        means["JF_mean"] = (means["J_mean"] + means["F_mean"]) / 2
        return means

    def print_metrics(self, digits=3):
        for key, value in self.metrics().items():
            print(f"{key:<9} {value:.{digits}f}")

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key, **kwargs):
        return cls(samples, config, eval_key, d["videos"], custom_metrics=d.get("custom_metrics"), **kwargs)


def _check_field(samples, field_name, role):
    field = samples.get_field(f"frames.{field_name}")
    if field is None:
        raise EvaluationError(
            f"{role} field {field_name!r} is not a frame field; the frame fields are "
            f"{sorted(samples.get_frame_field_schema())}"
        )
    if getattr(field, "document_type", None) not in LABEL_TYPES:
        raise EvaluationError(f"{role} field frames.{field_name} must hold fo.Detections or fo.Segmentation")


def _check_eval_key(samples, eval_key, overwrite):
    if not isinstance(eval_key, str) or not eval_key.isidentifier():
        raise EvaluationError(f"eval_key {eval_key!r} must be a valid identifier (letters, digits, _)")
    if eval_key in samples.list_evaluations():
        if not overwrite:
            raise EvaluationError(
                f"an evaluation {eval_key!r} already exists: pass overwrite=True or choose another key"
            )
        return
    taken = [name for name in output_fields(eval_key) if samples.has_field(name)]
    if taken:
        raise EvaluationError(f"fields {taken} already exist and are not from an evaluation: choose another key")


def _frame_size(sample):
    """(H, W) of a video sample's decoded frames (:func:`~samtrack_ops.fiftyone.prompts.frame_size`: the size
    tracking used, a rotation tag applied), as an EvaluationError when the video cannot be read."""
    try:
        return frame_size(sample)
    except PromptError as error:
        raise EvaluationError(str(error)) from None


def _label_map(label, frame_size):
    if label is None:
        return np.zeros(frame_size, dtype=np.uint16)
    if isinstance(label, fo.Segmentation):
        return np.asarray(label.get_mask())
    return detections_to_label_map(label, frame_size)


def _evaluate_sample(sample, pred_field, gt_field):
    """Returns ``(frame ids of the scored frames, result)`` or None when the sample has no ground truth."""
    frames = [sample.frames[n] for n in sorted(sample.frames.keys())]
    frames = [f for f in frames if f[gt_field] is not None]
    if not frames:
        return None
    frame_size = _frame_size(sample)
    gt_maps = [_label_map(f[gt_field], frame_size) for f in frames]
    pred_maps = [_label_map(f[pred_field], frame_size) for f in frames]
    try:
        result = evaluate_davis(pred_maps, gt_maps)
    except EvaluationError as error:
        raise EvaluationError(f"sample {sample.id} ({sample.filepath}): {error}") from error
    scored_ids = [frames[i].id for i in result["per_frame"]["frame_indices"]]
    result["per_object"] = {str(k): v for k, v in result["per_object"].items()}
    return scored_ids, result


def _write_fields(samples, eval_key, scored):
    """Writes the per-sample and per-frame fields; ``scored`` = ``{sample_id: (frame_ids, result)}``."""
    dataset = samples._dataset
    for name, key in SAMPLE_METRICS.items():
        dataset.add_sample_field(f"{eval_key}_{name}", fo.FloatField)
        values = {sample_id: result[key] for sample_id, (_, result) in scored.items()}
        samples.set_values(f"{eval_key}_{name}", values, key_field="id")
    for name in FRAME_METRICS:
        dataset.add_frame_field(f"{eval_key}_{name}", fo.FloatField)
        values = {
            frame_id: value
            for frame_ids, result in scored.values()
            for frame_id, value in zip(frame_ids, result["per_frame"][name])
        }
        samples.set_values(f"frames.{eval_key}_{name}", values, key_field="frames.id")


def evaluate_tracks(samples, pred_field, gt_field, eval_key="davis", overwrite=False):
    """Scores ``frames.<pred_field>`` against ``frames.<gt_field>`` of a video collection with DAVIS J&F.

    Args:
        samples: a FiftyOne video dataset or view
        pred_field: frame field of the predictions (``fo.Detections`` or ``fo.Segmentation``)
        gt_field: frame field of the ground truth (same types)
        eval_key: key of the evaluation run and prefix of the fields it writes
        overwrite: replace an existing evaluation with this key

    Returns:
        :class:`DavisEvaluationResults`

    Raises:
        EvaluationError: unknown or wrongly typed fields, no ground truth, a bad key, a taken key
            without ``overwrite``, or a video whose predictions and ground truth cannot be compared
    """
    if samples.media_type != "video":
        raise EvaluationError(f"evaluate_tracks needs a video collection, not {samples.media_type!r}")
    _check_field(samples, pred_field, "prediction")
    _check_field(samples, gt_field, "ground-truth")
    _check_eval_key(samples, eval_key, overwrite)
    view = samples.select_fields([f"frames.{pred_field}", f"frames.{gt_field}"])
    scored = {}
    for sample in view.iter_samples():
        outcome = _evaluate_sample(sample, pred_field, gt_field)
        if outcome is not None:
            scored[sample.id] = outcome
    if not scored:
        raise EvaluationError(f"frames.{gt_field} has no labels in this collection: nothing to evaluate")

    config = DavisEvaluationConfig(pred_field, gt_field)
    method = config.build()
    method.register_run(samples, eval_key, overwrite=overwrite)
    _write_fields(samples, eval_key, scored)
    results = DavisEvaluationResults(
        samples, config, eval_key, {sample_id: result for sample_id, (_, result) in scored.items()}, backend=method
    )
    method.save_run_results(samples, eval_key, results)
    method.add_fields_to_sidebar_group(samples, eval_key)
    return results
