"""Label maps <-> FiftyOne labels.

A *label map* is an HxW integer array of track IDs (0 = background). In a dataset it is stored per frame
as ``fo.Detections``: one ``fo.Detection`` per visible object whose ``index`` is the track ID, whose
``bounding_box`` is the tight relative box ``[x, y, w, h]`` around the object's pixels and whose ``mask``
is the boolean object mask cropped to that box. Optionally the whole map is also stored as an
``fo.Segmentation`` in ``<field>_seg``.

Two outputs share one conversion (:func:`visible_objects`): :func:`label_map_to_detections` builds
FiftyOne label objects, and :func:`detections_document` / :func:`segmentation_document` build the very
documents FiftyOne stores for them, which is what the batched writer (``staging.py``) sends to the
database: building label objects first costs about as much as the whole write.
"""

import hashlib
from typing import NamedTuple

import numpy as np
import scipy.ndimage as ndi
from bson import ObjectId

import fiftyone as fo
import fiftyone.core.utils as fou


class VisibleObject(NamedTuple):
    """One object of a label map: track ID, relative box ``[x, y, w, h]`` and HxW-cropped bool mask."""

    track_id: int
    bounding_box: list
    mask: np.ndarray


def _as_label_map(label_map):
    label_map = np.asarray(label_map)
    if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(
            f"a label map must be a 2-D integer array (HxW track IDs), got {label_map.dtype} {label_map.shape}"
        )
    if label_map.size and label_map.min() < 0:
        raise ValueError("a label map must not hold negative track IDs; 0 is background")
    return label_map


def visible_objects(label_map):
    """Yields a :class:`VisibleObject` per track ID present in an HxW label map, in ascending ID order.

    One pass over the map finds every object's box (``scipy.ndimage.find_objects``); masks are computed
    on the box crop only. Boxes are written so that FiftyOne's own rendering (``Detection.to_segmentation``,
    which truncates ``size * coordinate`` to whole pixels) puts each mask back on exactly its pixels.
    """
    label_map = _as_label_map(label_map)
    height, width = label_map.shape
    for offset, box in enumerate(ndi.find_objects(label_map)):
        if box is None:
            continue
        track_id = offset + 1
        rows, cols = box
        x, box_width = _relative_span(cols.start, cols.stop, width)
        y, box_height = _relative_span(rows.start, rows.stop, height)
        yield VisibleObject(
            track_id=track_id,
            bounding_box=[x, y, box_width, box_height],
            mask=label_map[box] == track_id,
        )


def _relative_span(start, stop, size):
    """``(begin, extent)`` relative to ``size`` for pixels ``start..stop - 1``, nudged up by a few ULPs where
    floating point would make ``int(size * begin)`` or ``int(size * (begin + extent))`` one pixel short."""
    begin = start / size
    while int(size * begin) < start:
        begin = float(np.nextafter(begin, 2.0))
    extent = (stop - start) / size
    while int(size * (begin + extent)) < stop:
        extent = float(np.nextafter(extent, 2.0))
    return begin, extent


def _object_info(objects):
    return {int(o.id): o for o in objects or ()}


def _label_and_confidence(info, track_id):
    obj = info.get(track_id)
    label = getattr(obj, "label", None) or "object"
    score = getattr(obj, "score", None)
    return label, None if score is None else float(score)


def label_map_to_detections(label_map, objects=None):
    """Converts an HxW label map to ``fo.Detections``.

    Args:
        label_map: HxW integer array of track IDs, 0 = background
        objects: optional iterable of objects with ``id``, ``label`` and ``score`` attributes (e.g.
            ``samtrack_ops.ObjectInfo``); IDs missing from it are labelled "object" without confidence

    Returns:
        ``fo.Detections`` with one detection per ID present, in ascending ID order
    """
    info = _object_info(objects)
    detections = []
    for obj in visible_objects(label_map):
        label, confidence = _label_and_confidence(info, obj.track_id)
        detections.append(
            fo.Detection(
                label=label,
                bounding_box=obj.bounding_box,
                mask=obj.mask,
                index=obj.track_id,
                confidence=confidence,
            )
        )
    return fo.Detections(detections=detections)


SIGNAL_ATTRIBUTES = (
    "suspicion", "confidence_drop", "area_jump", "shift", "components", "reappeared", "swap_with")


def content_hash(track_id, label, bounding_box, mask):
    """Hash of what a samtrack Detection shows (ID, label, box, mask); stored as ``samtrack_hash`` so that a
    later edit in the App (which changes any of them but not the hash) is recognised."""
    mask = np.asarray(mask, dtype=bool)
    digest = hashlib.sha256(f"{int(track_id)}|{label}|{np.round(bounding_box, 6).tolist()}|{mask.shape}".encode())
    digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()[:16]


def detections_document(label_map, objects=None, signals=None):
    """The database document of ``label_map_to_detections(label_map, objects)`` (same content, new IDs).

    Each Detection also gets ``provenance`` (the object's ``provenance``, default "tracked"), the
    ``samtrack_hash`` of its content and, with ``signals`` (a ``samtrack_ops.signals.FrameSignals``),
    the object's signals as attributes (:data:`SIGNAL_ATTRIBUTES`) and the frame's ``suspicion``, ``reason`` and
    ``vanished`` IDs on the Detections.
    """
    info = _object_info(objects)
    per_object = {} if signals is None else signals.objects
    detections = [detection_document(obj, info.get(obj.track_id), per_object.get(obj.track_id))
                  for obj in visible_objects(label_map)]
    document = {"_cls": "Detections", "detections": detections}
    if signals is not None:
        document.update(frame_signal_attributes(signals))
    return document


def frame_signal_attributes(signals):
    """The frame-level attributes of FrameSignals stored on the Detections: suspicion, reason, vanished."""
    inside = sorted(int(object_id) for object_id, at_border in signals.vanished.items() if not at_border)
    return {"suspicion": signals.suspicion, "reason": signals.reason, "vanished": inside}


def detection_document(visible_object, info=None, object_signals=None):
    """The database document of one Detection: a VisibleObject with the ``label``, ``score`` and
    ``provenance`` of ``info`` (defaults "object", none, "tracked") and optional ObjectSignals."""
    label, confidence = _label_and_confidence({visible_object.track_id: info}, visible_object.track_id)
    document = {
        "_id": ObjectId(),
        "_cls": "Detection",
        "attributes": {},
        "tags": [],
        "label": label,
        "bounding_box": visible_object.bounding_box,
        "mask": fou.serialize_numpy_array(visible_object.mask),
        "index": visible_object.track_id,
        "provenance": getattr(info, "provenance", None) or "tracked",
        "samtrack_hash": content_hash(visible_object.track_id, label, visible_object.bounding_box, visible_object.mask),
    }
    if confidence is not None:
        document["confidence"] = confidence
    if object_signals is not None:
        document.update(_signal_attributes(object_signals))
    return document


def _signal_attributes(object_signals):
    return {name: (value.item() if isinstance(value, np.generic) else value)
            for name, value in object_signals._asdict().items() if name in SIGNAL_ATTRIBUTES}


def label_map_to_segmentation(label_map):
    """The full HxW label map as an ``fo.Segmentation`` (``mask`` values = track IDs)."""
    return fo.Segmentation(mask=_as_label_map(label_map))


def segmentation_document(label_map):
    """The database document of ``label_map_to_segmentation(label_map)`` (same content, new ID)."""
    return {
        "_id": ObjectId(),
        "_cls": "Segmentation",
        "tags": [],
        "mask": fou.serialize_numpy_array(_as_label_map(label_map)),
    }


def detections_to_label_map(detections, frame_size, dtype=np.uint16):
    """Paints ``fo.Detections`` with masks and ``index`` into an HxW label map.

    Each mask is placed as FiftyOne's ``Detection.to_segmentation`` places it (see :func:`detection_mask`).
    Detections are painted in ascending ``index`` order, so where masks overlap the higher track ID wins.
    Detections without an ``index`` or a mask are skipped.

    Args:
        detections: ``fo.Detections`` (or None, giving an all-background map)
        frame_size: ``(H, W)``

    Returns:
        HxW array of ``dtype``
    """
    label_map = np.zeros(frame_size, dtype=dtype)
    if detections is None:
        return label_map
    painted = [d for d in detections.detections if d.index is not None and d.has_mask]
    for det in sorted(painted, key=lambda d: d.index):
        det.to_segmentation(mask=label_map, target=det.index)
    return label_map


def detection_mask(detection, frame_size):
    """The HxW bool mask of a detection with an instance mask in an HxW frame, by FiftyOne's own rule
    (``Detection.to_segmentation``): the box is clipped to the frame and the mask is resized to fill it,
    so masks stored at another resolution than their box (common for other tools' labels) land right."""
    height, width = frame_size
    return detection.to_segmentation(frame_size=(width, height), target=1).mask.astype(bool)


def frame_documents(label_map, objects, label_field, seg_field=None, signals=None):
    """``{field: document}`` for one frame: ``label_field`` gets the Detections (with ``signals``, see
    :func:`detections_document`), ``seg_field`` (if given) the full Segmentation."""
    documents = {label_field: detections_document(label_map, objects, signals)}
    if seg_field is not None:
        documents[seg_field] = segmentation_document(label_map)
    return documents
