"""samtrack_ops: Segment-and-Track-Anything (SAM + Grounding-DINO + DeAOT) for videos and FiftyOne.

Public names load on first use, so ``import samtrack_ops`` stays light (no torch, no fiftyone):
``segment_and_track``, ``FrameResult``, ``ObjectInfo`` (pipeline) and ``load_tracker`` (tracker).
"""

import importlib

_LAZY_NAMES = {
    "segment_and_track": "samtrack_ops.pipeline",
    "FrameResult": "samtrack_ops.pipeline",
    "ObjectInfo": "samtrack_ops.pipeline",
    "load_tracker": "samtrack_ops.tracker",
}

__all__ = sorted(_LAZY_NAMES)


def __getattr__(name):
    if name not in _LAZY_NAMES:
        raise AttributeError(f"module 'samtrack_ops' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY_NAMES[name]), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))
