"""FiftyOne plugin ``@samtrack/samtrack``: thin operators over the ``samtrack_ops`` library.

FiftyOne imports this file as a package whose search path is this folder, so the operator classes come
from the ``plugin/`` package next to it by relative import. ``samtrack_ops`` must be importable (``pip
install -e .`` of this checkout, as ``./test.sh`` and ``./run.sh`` do).
"""

from .plugin.export import EvaluateTracks, ExportTracks
from .plugin.models import ManageModels
from .plugin.panel import ClickPromptPanel
from .plugin.review import BuildReviewQueue, CorrectTrack, MarkReviewed
from .plugin.review_panel import ReviewPanel
from .plugin.tracking import TrackObjects


def register(plugin):
    plugin.register(TrackObjects)
    plugin.register(ManageModels)
    plugin.register(ClickPromptPanel)
    plugin.register(ExportTracks)
    plugin.register(EvaluateTracks)
    plugin.register(BuildReviewQueue)
    plugin.register(MarkReviewed)
    plugin.register(CorrectTrack)
    plugin.register(ReviewPanel)
