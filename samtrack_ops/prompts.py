"""Prompts: what a user tells samtrack about the objects to segment on a key frame.

All coordinates are pixels of the full-resolution frame, ``x`` to the right and ``y`` down; ``frame`` is the
0-based index of the key frame. Each object prompt (everything but :class:`Text`) describes one object; give
``object_id`` to correct an object that is already tracked (the new mask re-anchors it from that frame on),
otherwise the object gets a fresh track ID. ``label`` names the object ("object" when omitted).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np


class PromptError(ValueError):
    """A prompt that cannot be used as given; the message says what to change."""


def _check_frame_index(frame):
    if not isinstance(frame, (int, np.integer)) or frame < 0:
        raise PromptError(f"prompt frame must be a non-negative integer frame index, got {frame!r}")


def _as_points(points, what):
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise PromptError(f"{what} points must be a non-empty list of (x, y) pairs, got shape {array.shape}")
    _check_finite(array, what)
    return array


def _check_finite(coordinates, what):
    """Raises PromptError when a coordinate is NaN or infinite (NaN passes every < / > comparison)."""
    if not np.isfinite(coordinates).all():
        bad = np.asarray(coordinates)[~np.isfinite(coordinates).all(axis=-1)][0].tolist()
        raise PromptError(f"{what} coordinates must be finite numbers of pixels, got {bad}")


def _check_inside(points_xy, frame_size, what):
    _check_finite(points_xy, what)
    height, width = frame_size
    outside = (points_xy[:, 0] < 0) | (points_xy[:, 0] > width) | (points_xy[:, 1] < 0) | (points_xy[:, 1] > height)
    if outside.any():
        bad = points_xy[outside][0].tolist()
        raise PromptError(f"{what} point {bad} lies outside the {width}x{height} frame")


@dataclass
class Click:
    """Clicks on one object: ``points`` Nx2 (x, y), ``labels`` N values, 1 = positive, 0 = negative."""

    frame: int
    points: np.ndarray
    labels: np.ndarray
    label: Optional[str] = None
    object_id: Optional[int] = None

    def __post_init__(self):
        _check_frame_index(self.frame)
        self.points = _as_points(self.points, "click")
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.points):
            raise PromptError(f"click has {len(self.points)} points but {len(self.labels)} labels")
        if not np.isin(self.labels, (0, 1)).all():
            raise PromptError("click labels must be 1 (positive) or 0 (negative)")
        if not (self.labels == 1).any():
            raise PromptError("a click prompt needs at least one positive point (label 1); got only negatives")

    def validate(self, frame_size):
        _check_inside(self.points, frame_size, "click")


@dataclass
class Box:
    """A box around one object, ``box_xyxy`` = (x0, y0, x1, y1) with x0 < x1 and y0 < y1."""

    frame: int
    box_xyxy: np.ndarray
    label: Optional[str] = None
    object_id: Optional[int] = None

    def __post_init__(self):
        _check_frame_index(self.frame)
        self.box_xyxy = np.asarray(self.box_xyxy, dtype=np.float64).reshape(-1)
        if self.box_xyxy.shape != (4,):
            raise PromptError(f"box must be (x0, y0, x1, y1), got {self.box_xyxy.tolist()}")
        _check_finite(self.box_xyxy.reshape(2, 2), "box")
        x0, y0, x1, y1 = self.box_xyxy
        if not (x0 < x1 and y0 < y1):
            raise PromptError(f"box (x0, y0, x1, y1) = {self.box_xyxy.tolist()} is empty or inverted")

    def validate(self, frame_size):
        _check_inside(self.box_xyxy.reshape(2, 2), frame_size, "box")


@dataclass
class Stroke:
    """A scribble over one object, ``points`` Nx2 (x, y) along the stroke.

    By default (as the seed does) the stroke becomes its bounding box; ``use_points=True`` also feeds the
    stroke points to SAM as positive clicks.
    """

    frame: int
    points: np.ndarray
    label: Optional[str] = None
    object_id: Optional[int] = None
    use_points: bool = False

    def __post_init__(self):
        _check_frame_index(self.frame)
        self.points = _as_points(self.points, "stroke")

    def validate(self, frame_size):
        _check_inside(self.points, frame_size, "stroke")

    @property
    def box_xyxy(self):
        """The stroke's bounding box (x0, y0, x1, y1), at least one pixel wide and high."""
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)])


@dataclass
class Mask:
    """An existing HxW mask of one object (any nonzero pixel belongs to it)."""

    frame: int
    mask: np.ndarray
    label: Optional[str] = None
    object_id: Optional[int] = None

    def __post_init__(self):
        _check_frame_index(self.frame)
        self.mask = np.asarray(self.mask).astype(bool)
        if self.mask.ndim != 2:
            raise PromptError(f"mask prompt must be a 2-D HxW array, got shape {self.mask.shape}")
        if not self.mask.any():
            raise PromptError("mask prompt is empty (no nonzero pixel)")

    def validate(self, frame_size):
        if self.mask.shape != tuple(frame_size):
            raise PromptError(f"mask prompt has shape {self.mask.shape}, the frame is {tuple(frame_size)}")


@dataclass
class Text:
    """Object classes to find with Grounding-DINO, e.g. ``"person. car"`` (one object per detection)."""

    frame: int
    text: str
    box_threshold: float = 0.25
    text_threshold: float = 0.25

    def __post_init__(self):
        _check_frame_index(self.frame)
        if not isinstance(self.text, str) or not self.text.strip():
            raise PromptError("text prompt must be a non-empty string such as 'person. car'")

    def validate(self, frame_size):
        pass


OBJECT_PROMPTS = (Click, Box, Stroke, Mask)
