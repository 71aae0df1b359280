"""Key frames: turning the prompts of one frame into object masks with track IDs, labels and scores.

Object prompts (Click, Box, Stroke, Mask) give one object each; a Text prompt gives one object per
Grounding-DINO detection (SAM segments each detected box; the label is the detected phrase). New objects
take consecutive IDs in prompt order; a prompt with ``object_id`` corrects that object instead. Where
masks of one frame overlap, the later prompt wins. The key-frame score of an object is SAM's predicted
IoU of its mask (1.0 for a Mask prompt used as given).
"""

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from samtrack_ops.cmr import ObjectLimitWarning
from samtrack_ops.prompts import Mask, Text
from samtrack_ops.registry import DEFAULT_LABEL


class EmptyResultWarning(UserWarning):
    """A prompt gave no object (a text prompt found nothing, or SAM returned an empty mask)."""


@dataclass
class KeyObject:
    """One object on a key frame: mask (H, W) bool; label None keeps a corrected object's label."""

    id: int
    mask: np.ndarray
    label: Optional[str]
    score: float
    correction: bool


def paint(objects, frame_size, dtype):
    """Label map (H, W) of dtype with the objects painted in order (later ones on top)."""
    label_map = np.zeros(frame_size, dtype=dtype)
    for key_object in objects:
        label_map[key_object.mask] = key_object.id
    return label_map


class KeyFramePrompter:
    """Makes KeyObjects from prompts; new objects and corrections go through ``registry``.

    models: the pipeline's lazy model set (``segmentor``, ``detector``, ``mask_prompt``);
    stopwatch: times the "SAM embedding" and "Grounding-DINO" stages;
    registry: the run's :class:`~samtrack_ops.registry.ObjectRegistry`.
    """

    def __init__(self, models, stopwatch, registry):
        self.models = models
        self.stopwatch = stopwatch
        self.registry = registry

    def objects(self, frame_index, frame, prompts):
        """KeyObjects of the prompts on this frame (H, W, 3), in prompt order."""
        objects = []
        for prompt in prompts:
            if isinstance(prompt, Text):
                objects += self._text_objects(frame_index, frame, prompt)
            else:
                objects += self._prompt_object(frame_index, frame, prompt)
        return objects

    def _prompt_object(self, frame_index, frame, prompt):
        mask, score = self.segment(frame, prompt)
        if not mask.any():
            warnings.warn(f"{type(prompt).__name__} prompt on frame {frame_index} gave an empty mask; no object "
                          f"added (try more or other points)", EmptyResultWarning, stacklevel=4)
            return []
        if prompt.object_id is not None:
            return [self._correction(frame_index, prompt, mask, score)]
        return self._new_objects(frame_index, [(mask, prompt.label or DEFAULT_LABEL, score)])

    def segment(self, frame, prompt):
        """(mask (H, W) bool, score) of a Click/Box/Stroke/Mask prompt on frame (H, W, 3)."""
        if isinstance(prompt, Mask) and self.models.mask_prompt_as_given:
            return prompt.mask.copy(), 1.0
        segmentor = self.models.segmentor
        with self.stopwatch("SAM embedding"):
            segmentor.set_frame(frame)
        mask, score = segmentor.predict(prompt)
        return np.asarray(mask, dtype=bool), float(score)

    def _correction(self, frame_index, prompt, mask, score):
        self.registry.check_correction(prompt.object_id, frame_index)
        self.registry.relabel(prompt.object_id, prompt.label)
        return KeyObject(prompt.object_id, mask, prompt.label, score, correction=True)

    def _text_objects(self, frame_index, frame, prompt):
        with self.stopwatch("Grounding-DINO"):
            detections = self.models.detector.detect(frame, prompt.text, box_threshold=prompt.box_threshold,
                                                     text_threshold=prompt.text_threshold)
        if not detections:
            warnings.warn(f"text prompt {prompt.text!r} on frame {frame_index} found nothing; no object added "
                          f"(lower box_threshold/text_threshold or rephrase)", EmptyResultWarning, stacklevel=4)
            return []
        return self._new_objects(frame_index, self._segment_best_boxes(frame_index, frame, detections))

    def _segment_best_boxes(self, frame_index, frame, detections):
        """[(mask, phrase, SAM score)] of the best-scoring detections with a non-empty mask, at most as many
        as there are free track IDs; SAM sees only the boxes needed (random or loose detectors return
        hundreds). The detections not segmented are reported with an ObjectLimitWarning."""
        found, remaining = [], list(detections)
        while remaining and len(found) < self.registry.room:
            wanted = self.registry.room - len(found)
            found += [item for item in self.segment_boxes(frame, remaining[:wanted]) if item[0].any()]
            remaining = remaining[wanted:]
        if remaining:
            warnings.warn(f"{len(remaining)} lower-scoring detection(s) of frame {frame_index} dropped: track IDs "
                          f"may not exceed max_obj_num={self.registry.max_obj_num}", ObjectLimitWarning, stacklevel=4)
        return found

    def segment_boxes(self, frame, detections):
        """[(mask (H, W) bool, phrase, SAM score)] for the first ``max_obj_num`` Detections (best first, as the
        detector returns them; a frame cannot hold more objects) on this frame, in detection order."""
        detections = detections[: self.registry.max_obj_num]
        segmentor = self.models.segmentor
        with self.stopwatch("SAM embedding"):
            segmentor.set_frame(frame)
        height, width = frame.shape[:2]
        boxes = np.array([detection.box_xyxy for detection in detections], dtype=np.float64)
        boxes = np.clip(boxes, 0, [width, height, width, height])
        masks = segmentor.predict_boxes(boxes)
        return [(np.asarray(mask, bool), detection.phrase or DEFAULT_LABEL, float(score))
                for (mask, score), detection in zip(masks, detections)]

    def _new_objects(self, frame_index, found):
        """KeyObjects with fresh IDs for [(mask, label, score)]; those beyond max_obj_num are dropped."""
        room = self.registry.room
        if len(found) > room:
            warnings.warn(f"{len(found) - room} object(s) of frame {frame_index} dropped: track IDs may not "
                          f"exceed max_obj_num={self.registry.max_obj_num}", ObjectLimitWarning, stacklevel=4)
        return [KeyObject(self.registry.add(frame_index, label, "prompted"), mask, label, score, correction=False)
                for mask, label, score in found[:room]]
