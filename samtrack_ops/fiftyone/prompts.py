"""Prompts from a dataset's frame label fields, and prompts <-> JSON (operator parameters, run records).

Frame label fields as prompts (FiftyOne coordinates are relative to the frame; frame numbers start at 1,
prompt frames at 0; every labelled frame becomes a key frame):

- ``fo.Keypoints``: each ``fo.Keypoint`` gives clicks on one object. A point is positive unless the
  keypoint carries a per-point list attribute ``positive`` (``[1, 1, 0]`` / ``[True, False]``) marking it
  0/False, or, without that attribute, the keypoint's ``label`` is ``"negative"`` (then all its points are
  negative). Keypoints of one frame that share an ``index`` are one object (so a ``"negative"`` keypoint
  with ``index=3`` adds negative clicks to the object whose positive keypoint has ``index=3``); a keypoint
  without ``index`` is an object of its own. The object's label is its first non-"negative" label.
- ``fo.Detections``: each detection is a box prompt, or a mask prompt when it has an instance ``mask``.
- ``fo.Polylines``: each polyline is a stroke through all its points.

Field paths may be given with or without the ``frames.`` prefix.
"""

import base64
import io
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

import fiftyone as fo

from samtrack_ops.fiftyone.storage import detection_mask
from samtrack_ops.prompts import Box, Click, Mask, PromptError, Stroke, Text
from samtrack_ops.video import VideoError, VideoWarning, decoded_frame_size

NEGATIVE_LABEL = "negative"
POSITIVE_ATTRIBUTE = "positive"


@dataclass(frozen=True)
class FieldPrompts:
    """Which frame label fields of each sample hold prompts (any may be None)."""

    keypoints_field: Optional[str] = None
    detections_field: Optional[str] = None
    polylines_field: Optional[str] = None

    def fields(self):
        """``{kind: field name without "frames."}`` of the fields given."""
        given = {
            "keypoints": self.keypoints_field,
            "detections": self.detections_field,
            "polylines": self.polylines_field,
        }
        return {kind: _frame_field(name) for kind, name in given.items() if name}

    def validate(self, sample_collection):
        """Raises PromptError unless each given field exists with the right label type."""
        if not self.fields():
            raise PromptError("no prompt field given: name a Keypoints, Detections or Polylines frame field")
        schema = sample_collection.get_frame_field_schema() or {}
        expected = {"keypoints": fo.Keypoints, "detections": fo.Detections, "polylines": fo.Polylines}
        for kind, name in self.fields().items():
            field = schema.get(name)
            if field is None:
                raise PromptError(f"prompt field frames.{name} does not exist; frame fields: {sorted(schema)}")
            if getattr(field, "document_type", None) is not expected[kind]:
                raise PromptError(f"prompt field frames.{name} holds {field}, not {expected[kind].__name__}")

    def to_json(self):
        return {"keypoints_field": self.keypoints_field, "detections_field": self.detections_field,
                "polylines_field": self.polylines_field}


def _frame_field(name):
    return name[len("frames."):] if name.startswith("frames.") else name


def frame_size(sample):
    """``(H, W)`` of a video sample's decoded frames (what tracking sees; a rotation tag is applied).

    FiftyOne's metadata stores the stream's unrotated size: when it disagrees (a phone clip's rotation tag,
    or stale metadata) a ``VideoWarning`` says so and the decoded size is used.
    """
    try:
        size = tuple(decoded_frame_size(sample.filepath))
    except VideoError as error:
        raise PromptError(f"cannot read the frame size of {sample.filepath}: {error}") from None
    if sample.metadata is None:
        sample.compute_metadata()  # frame count and rate, for progress and the App
    metadata = sample.metadata
    stated = (getattr(metadata, "frame_height", None), getattr(metadata, "frame_width", None))
    if all(stated) and stated != size:
        rotated = stated == size[::-1]
        warnings.warn(
            f"video {sample.filepath}: FiftyOne metadata says {stated[1]}x{stated[0]} (WxH) but its frames decode "
            f"as {size[1]}x{size[0]}{' (the file carries a rotation tag)' if rotated else ''}; samtrack uses the "
            "decoded size, so relative coordinates refer to the frames as decoded and shown",
            VideoWarning,
            stacklevel=2,
        )
    return size


def prompts_from_fields(sample, field_prompts):
    """The prompts stored in ``sample``'s frame fields, in frame order.

    Args:
        sample: a video ``fo.Sample``
        field_prompts: a :class:`FieldPrompts`

    Returns:
        list of ``samtrack_ops.prompts`` objects, pixel coordinates, 0-based frames
    """
    height, width = frame_size(sample)
    scale = np.array([width, height], dtype=np.float64)
    readers = {"keypoints": _clicks, "detections": _boxes_and_masks, "polylines": _strokes}
    fields = field_prompts.fields()
    view = sample._dataset.select(sample.id).select_fields([f"frames.{name}" for name in fields.values()])
    prompts = []
    for frame_number, frame in view.first().frames.items():
        for kind, name in fields.items():
            labels = frame[name]
            if labels is not None:
                prompts.extend(readers[kind](labels, frame_number - 1, scale, (height, width)))
    return prompts


def _point_signs(keypoint):
    flags = keypoint[POSITIVE_ATTRIBUTE] if POSITIVE_ATTRIBUTE in keypoint else None
    if flags is None:
        sign = 0 if keypoint.label == NEGATIVE_LABEL else 1
        return [sign] * len(keypoint.points)
    if len(flags) != len(keypoint.points):
        raise PromptError(
            f"keypoint '{keypoint.label}' has {len(keypoint.points)} points but {len(flags)} "
            f"'{POSITIVE_ATTRIBUTE}' flags; give one flag per point"
        )
    return [int(bool(flag)) for flag in flags]


def _clicks(keypoints, frame, scale, _):
    groups = {}
    for position, keypoint in enumerate(keypoints.keypoints):
        points = [p for p in keypoint.points if p is not None and not np.isnan(p).any()]
        if len(points) != len(keypoint.points):
            raise PromptError(f"keypoint '{keypoint.label}' on frame {frame + 1} has missing (None/NaN) points")
        key = ("index", keypoint.index) if keypoint.index is not None else ("position", position)
        group = groups.setdefault(key, {"points": [], "labels": [], "label": None})
        group["points"].extend(np.asarray(points) * scale)
        group["labels"].extend(_point_signs(keypoint))
        if keypoint.label != NEGATIVE_LABEL and group["label"] is None:
            group["label"] = keypoint.label
    return [Click(frame=frame, points=g["points"], labels=g["labels"], label=g["label"]) for g in groups.values()]


def _boxes_and_masks(detections, frame, scale, frame_hw):
    prompts = []
    for detection in detections.detections:
        if detection.has_mask:
            prompts.append(Mask(frame=frame, mask=detection_mask(detection, frame_hw), label=detection.label))
            continue
        x, y, w, h = detection.bounding_box
        x0, y0, x1, y1 = x * scale[0], y * scale[1], (x + w) * scale[0], (y + h) * scale[1]
        prompts.append(Box(frame=frame, box_xyxy=[x0, y0, x1, y1], label=detection.label))
    return prompts


def _strokes(polylines, frame, scale, _):
    prompts = []
    for polyline in polylines.polylines:
        points = [point for shape in polyline.points for point in shape]
        if not points:
            raise PromptError(f"polyline '{polyline.label}' on frame {frame + 1} has no points")
        prompts.append(Stroke(frame=frame, points=np.asarray(points) * scale, label=polyline.label))
    return prompts


# --- JSON ------------------------------------------------------------------------------------------


def _encode_mask(mask):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, mask=np.packbits(mask), shape=mask.shape)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _decode_mask(text):
    stored = np.load(io.BytesIO(base64.b64decode(text)))
    shape = tuple(stored["shape"])
    return np.unpackbits(stored["mask"])[: shape[0] * shape[1]].reshape(shape).astype(bool)


def prompt_to_json(prompt):
    """A JSON-able dict for a prompt (``type`` + its fields; masks packed as base64)."""
    data = {"type": type(prompt).__name__.lower(), "frame": int(prompt.frame)}
    if isinstance(prompt, Text):
        data.update(text=prompt.text, box_threshold=prompt.box_threshold, text_threshold=prompt.text_threshold)
        return data
    data.update(label=prompt.label, object_id=prompt.object_id)
    if isinstance(prompt, Click):
        data.update(points=prompt.points.tolist(), labels=prompt.labels.tolist())
    elif isinstance(prompt, Box):
        data.update(box_xyxy=prompt.box_xyxy.tolist())
    elif isinstance(prompt, Stroke):
        data.update(points=prompt.points.tolist(), use_points=prompt.use_points)
    elif isinstance(prompt, Mask):
        data.update(mask=_encode_mask(prompt.mask))
    return data


_PROMPT_TYPES = {"click": Click, "box": Box, "stroke": Stroke, "mask": Mask, "text": Text}


def prompt_from_json(data):
    """The prompt described by a :func:`prompt_to_json` dict; PromptError for unknown types or fields."""
    data = dict(data)
    kind = data.pop("type", None)
    if kind not in _PROMPT_TYPES:
        raise PromptError(f"unknown prompt type {kind!r}; expected one of {sorted(_PROMPT_TYPES)}")
    if kind == "mask":
        data["mask"] = _decode_mask(data["mask"])
    try:
        return _PROMPT_TYPES[kind](**data)
    except TypeError as error:
        raise PromptError(f"bad {kind} prompt {data}: {error}") from None
