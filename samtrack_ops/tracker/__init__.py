"""DeAOT tracker (inference only): configs, network, engine and the streaming Tracker API."""

from samtrack_ops.tracker.tracker import Tracker, load_tracker

__all__ = ["Tracker", "load_tracker"]
