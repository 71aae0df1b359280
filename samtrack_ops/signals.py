"""Quality signals of tracked objects, frame by frame: where did tracking probably go wrong?

A :class:`QualityMonitor` follows one video's label maps in frame order and gives, per frame, the
signals of every visible object (:class:`ObjectSignals`) and of the frame (:class:`FrameSignals`). It
reads only the label map and the objects' scores the pipeline already has, so it costs a few
whole-map numpy passes per frame (see ``benchmarks/review.py``).

Signals of an object on frame t:

- ``confidence``: the object's score (tracked frames: the tracker's mean softmax probability inside the
  mask; key frames: SAM's predicted IoU), None when unknown;
- ``confidence_drop``: how far ``confidence`` fell below the object's running level (an exponential
  average of its earlier confidences, weight :data:`LEVEL_MEMORY` on the past), relative to that level;
- ``area_jump``: ``|log2(area_t / area_{t-1})|`` (1.0 = the mask halved or doubled), 0 when the object
  was not on frame t-1;
- ``shift``: how far the mask's centroid moved since frame t-1, in units of the mask's size (the square
  root of its area), 0 when the object was not on frame t-1;
- ``components``: connected components of the mask holding at least :data:`MIN_PIECE` of its area
  (slivers do not count); a mask falling into more pieces than on frame t-1 is suspicious (a mask that
  is always in pieces, e.g. behind branches, is not);
- ``reappeared``: visible on t, not on t-1, but seen before;
- ``swap_with``: the ID of another object whose mask this one's took over, and vice versa, between t-1
  and t (a suspected ID switch), 0 if none. Two objects a, b are swapped when each one's mask on t
  matches the other's on t-1 better than its own (IoU; by centroid distance when neither overlaps
  anything of t-1);
- ``suspicion``: one number in [0, 1], the largest of the terms in :func:`suspicion_terms`.

Frame signals: the objects' signals, the objects that vanished (visible on t-1, gone on t) with whether
they touched the image border on t-1 (leaving the picture is expected; vanishing inside it is not), and
the frame's ``suspicion``: the largest of its objects' and of :data:`VANISHED_INSIDE` per object that
vanished away from the border.
"""

from typing import NamedTuple, Optional

import numpy as np
import scipy.ndimage as ndi

LEVEL_MEMORY = 0.8
FULL_DROP = 0.5  # a confidence half below the running level is fully suspicious
FULL_AREA_JUMP = 2.0  # a mask 4x larger or smaller is fully suspicious
FULL_SHIFT = 0.5  # a centroid moving half the mask's size in one frame is fully suspicious
REAPPEARED = 0.5
SWAPPED = 1.0
MIN_PIECE = 0.05
VANISHED_INSIDE = 0.75
VANISHED_AT_BORDER = 0.1


class ObjectSignals(NamedTuple):
    """Signals of one object on one frame (see the module docstring)."""

    confidence: Optional[float]
    confidence_drop: float
    area_jump: float
    shift: float
    components: int
    reappeared: bool
    swap_with: int
    suspicion: float


class FrameSignals(NamedTuple):
    """objects: {ID: ObjectSignals}; vanished: {ID: touched the border on the frame before}; suspicion and
    its reason (a key of :func:`suspicion_terms`, "vanished", or "" when nothing is suspicious)."""

    objects: dict
    vanished: dict
    suspicion: float
    reason: str


class _Shape(NamedTuple):
    box: tuple
    area: int
    centroid: np.ndarray
    touches_border: bool


def suspicion_terms(confidence_drop, area_jump, shift, components, components_before, reappeared, swap_with):
    """{reason: term in [0, 1]} of an object on a frame; its suspicion is the largest term (ties: the first)."""
    return {"swap": SWAPPED if swap_with else 0.0,
            "shift": min(shift / FULL_SHIFT, 1.0),
            "area jump": min(area_jump / FULL_AREA_JUMP, 1.0),
            "fragmented": max(0, components - components_before) / components if components_before else 0.0,
            "confidence drop": min(confidence_drop / FULL_DROP, 1.0),
            "reappeared": REAPPEARED if reappeared else 0.0}


class QualityMonitor:
    """Signals of one video's objects; feed it the label maps in frame order with :meth:`update`."""

    def __init__(self):
        self._previous = None  # label map of the frame before
        self._shapes = {}  # {ID: _Shape} on the frame before
        self._levels = {}  # {ID: running confidence level}
        self._components = {}  # {ID: pieces} on the frame before
        self._seen = set()

    def update(self, label_map, scores=None):
        """FrameSignals of the next frame: label_map (H, W) integer track IDs; scores {ID: float} or None."""
        scores = scores or {}
        shapes = _shapes(label_map)
        swaps = self._swaps(label_map, shapes)
        objects = {}
        worst = (0.0, "")
        for object_id, shape in shapes.items():
            confidence = scores.get(object_id)
            drop = self._confidence_drop(object_id, confidence)
            before = self._shapes.get(object_id)
            area_jump = abs(float(np.log2(shape.area / before.area))) if before else 0.0
            shift = float(np.linalg.norm(shape.centroid - before.centroid) / np.sqrt(shape.area)) if before else 0.0
            components = _components(label_map, object_id, shape)
            reappeared = before is None and object_id in self._seen
            swap_with = swaps.get(object_id, 0)
            terms = suspicion_terms(drop, area_jump, shift, components, self._components.get(object_id, 0) if before else 0,
                                    reappeared, swap_with)
            reason = max(terms, key=terms.get)  # the first of equal terms
            objects[object_id] = ObjectSignals(None if confidence is None else float(confidence), drop, area_jump,
                                               shift, components, reappeared, swap_with, float(terms[reason]))
            worst = max(worst, (terms[reason], reason))
        vanished = {object_id: shape.touches_border for object_id, shape in self._shapes.items()
                    if object_id not in shapes}
        for border in vanished.values():
            worst = max(worst, (VANISHED_AT_BORDER if border else VANISHED_INSIDE, "vanished"))
        self._previous, self._shapes = label_map, shapes
        self._components = {object_id: signals.components for object_id, signals in objects.items()}
        self._seen.update(shapes)
        suspicion, reason = worst
        return FrameSignals(objects, vanished, float(suspicion), reason if suspicion > 0 else "")

    def _confidence_drop(self, object_id, confidence):
        if confidence is None:
            return 0.0
        level = self._levels.get(object_id)
        self._levels[object_id] = confidence if level is None else LEVEL_MEMORY * level + (1 - LEVEL_MEMORY) * confidence
        if not level:
            return 0.0
        return max(0.0, (level - confidence) / level)

    def _swaps(self, label_map, shapes):
        """{ID: ID of the object it swapped places with} between the frame before and this one."""
        common = sorted(set(shapes) & set(self._shapes))
        if len(common) < 2:
            return {}
        overlap = _overlaps(self._previous, label_map)
        swaps = {}
        for position, a in enumerate(common):
            for b in common[position + 1:]:
                if a not in swaps and b not in swaps and self._swapped(a, b, shapes, overlap):
                    swaps[a], swaps[b] = b, a
        return swaps

    def _swapped(self, a, b, shapes, overlap):
        def iou(now_id, before_id):
            shared = overlap.get((before_id, now_id), 0)
            return shared / (shapes[now_id].area + self._shapes[before_id].area - shared)

        kept, crossed = iou(a, a) + iou(b, b), iou(a, b) + iou(b, a)
        if kept or crossed:
            return iou(a, b) > iou(a, a) and iou(b, a) > iou(b, b)

        def distance(now_id, before_id):
            return float(np.linalg.norm(shapes[now_id].centroid - self._shapes[before_id].centroid))

        return distance(a, b) + distance(b, a) < 0.5 * (distance(a, a) + distance(b, b))


def _shapes(label_map):
    """{ID: _Shape} of every object in label_map (H, W)."""
    height, width = label_map.shape
    flat = label_map.ravel()
    areas = np.bincount(flat)
    rows = np.bincount(flat, weights=np.repeat(np.arange(height, dtype=np.float64), width))
    cols = np.bincount(flat, weights=np.tile(np.arange(width, dtype=np.float64), height))
    shapes = {}
    for offset, box in enumerate(ndi.find_objects(label_map)):
        if box is None:
            continue
        object_id = offset + 1
        touches = box[0].start == 0 or box[1].start == 0 or box[0].stop == height or box[1].stop == width
        area = int(areas[object_id])
        shapes[object_id] = _Shape(box, area, np.array([rows[object_id], cols[object_id]]) / area, bool(touches))
    return shapes


def _components(label_map, object_id, shape):
    """Pieces of object_id's mask (8-connected components with at least MIN_PIECE of its area)."""
    pieces, count = ndi.label(label_map[shape.box] == object_id, structure=np.ones((3, 3)))
    if count <= 1:
        return count
    areas = np.bincount(pieces.ravel())[1:]
    return int(np.count_nonzero(areas >= MIN_PIECE * shape.area))


def _overlaps(before, now):
    """{(ID on the frame before, ID now): shared pixels} for the pairs of objects that overlap."""
    both = (before != 0) & (now != 0)
    codes = before[both].astype(np.int64) << 16 | now[both].astype(np.int64)
    values, counts = np.unique(codes, return_counts=True)
    return {(int(v >> 16), int(v & 0xFFFF)): int(c) for v, c in zip(values, counts)}
