"""FiftyOne plugin ``@samtrack/samtrack``: thin operators over the ``samtrack_ops`` library.

FiftyOne imports this file as a package whose search path is this folder, so the operator classes come
from the ``plugin/`` package next to it by relative import. ``samtrack_ops`` must be importable (``pip
install -e .`` of this checkout, as ``./test.sh`` and ``./run.sh`` do).

Everything is imported inside :func:`register`, so importing this file alone imports nothing: pytest
imports it as the package of the checkout's folder (whatever that folder is named) before the tests'
``conftest.py`` has pointed FiftyOne at a throwaway database.
"""

import logging
import os


def register(plugin):
    from .plugin.export import EvaluateTracks, ExportTracks
    from .plugin.models import ManageModels
    from .plugin.panel import ClickPromptPanel, TrackFromPanel
    from .plugin.review import BuildReviewQueue, CorrectTrack, MarkReviewed
    from .plugin.review_panel import ReviewPanel
    from .plugin.setup import shadowing_problem
    from .plugin.tracking import TrackObjects

    problem = shadowing_problem(os.path.dirname(os.path.abspath(__file__)))
    if problem:
        logging.getLogger(__name__).warning(problem)
    plugin.register(TrackObjects)
    plugin.register(ManageModels)
    plugin.register(ClickPromptPanel)
    plugin.register(TrackFromPanel)
    plugin.register(ExportTracks)
    plugin.register(EvaluateTracks)
    plugin.register(BuildReviewQueue)
    plugin.register(MarkReviewed)
    plugin.register(CorrectTrack)
    plugin.register(ReviewPanel)
