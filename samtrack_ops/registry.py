"""The objects of one video: track IDs, labels, first frames and where each object came from.

One :class:`ObjectRegistry` per run owns object identity: key frames (:mod:`samtrack_ops.keyframes`),
automatic discovery (CMR in :mod:`samtrack_ops.pipeline`) and corrections all create, look up and
relabel objects here, and nowhere else. Fresh IDs are consecutive from ``next_id`` and never exceed
``max_obj_num``.

Provenance of a stored object on one frame (:data:`PROVENANCES`): ``prompted`` (a prompt made its mask
on this frame), ``tracked`` (the tracker carried it here), ``discovered`` (CMR found it here),
``corrected`` (a correction set or re-propagated it) or ``human`` (edited in the App's annotation tools).
"""

from dataclasses import dataclass

from samtrack_ops.prompts import PromptError

DEFAULT_LABEL = "object"
PROVENANCES = ("prompted", "tracked", "discovered", "corrected", "human")


@dataclass
class TrackedObject:
    """One object of a video: its track ID, label, first frame (0-based) and origin (a provenance)."""

    id: int
    label: str
    first_frame: int
    origin: str


class ObjectRegistry:
    """Track IDs of one video, given out from ``next_id`` up to ``max_obj_num``."""

    def __init__(self, max_obj_num, next_id=1):
        self.max_obj_num = max_obj_num
        self.next_id = next_id
        self.objects = {}

    @property
    def room(self):
        """How many more objects may join."""
        return max(0, self.max_obj_num - self.next_id + 1)

    def add(self, frame_index, label, origin):
        """Registers a new object first seen on frame_index under the next free ID; returns that ID."""
        return self.claim(self.next_id, frame_index, label, origin)

    def claim(self, object_id, frame_index, label, origin):
        """Registers a new object under a fresh ``object_id`` (>= next_id, as CMR hands out); returns it."""
        if object_id < self.next_id or object_id > self.max_obj_num:
            raise ValueError(f"track ID {object_id} is not fresh: free IDs are {self.next_id}..{self.max_obj_num}")
        if origin not in PROVENANCES:
            raise ValueError(f"origin must be one of {PROVENANCES}, got {origin!r}")
        self.objects[object_id] = TrackedObject(object_id, label or DEFAULT_LABEL, frame_index, origin)
        self.next_id = object_id + 1
        return object_id

    def check_correction(self, object_id, frame_index):
        """Raises PromptError unless object ``object_id`` exists on or before frame_index."""
        known = self.objects.get(object_id)
        if known is None or known.first_frame > frame_index:
            raise PromptError(f"prompt on frame {frame_index} corrects object {object_id}, but no earlier "
                              f"prompt created that object; drop object_id to add a new object")

    def relabel(self, object_id, label):
        """Gives a known object a new label (None keeps the old one)."""
        if label is not None:
            self.objects[object_id].label = label

    def label(self, object_id):
        """The label of an object (DEFAULT_LABEL for an ID the registry does not know)."""
        known = self.objects.get(object_id)
        return DEFAULT_LABEL if known is None else known.label
