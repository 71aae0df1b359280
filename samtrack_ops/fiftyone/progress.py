"""Progress of a :func:`~samtrack_ops.fiftyone.runs.track_samples` call: FiftyOne's bar over frames, with stages."""

import fiftyone.core.utils as fou


def frames_to_track(sample, options):
    """How many frames of ``sample`` a run with ``options`` processes (its ``frame_range``), by the metadata."""
    total = (sample.metadata.total_frame_count if sample.metadata else None) or 0
    start, stop = options.get("frame_range") or (0, None)
    return len(range(total)[start:stop])


class FrameProgress(fou.ProgressBar):
    """FiftyOne's progress bar over the frames of a ``track_samples`` call; each stage is printed above it.

    ``progress`` follows FiftyOne's convention (``apply_model``, ``compute_metadata``): None uses
    ``fo.config.show_progress_bars``, True/False force the bar on/off, and a callable is called instead of
    drawing a bar, with this object after every frame and stage change (``.iteration``, ``.total``,
    ``.progress`` in [0, 1], ``.stage``: e.g. "video 1/2: loading SAM (vit_b)"; no "video" part for one video).
    """

    def __init__(self, total, progress=None):
        self._on_update = progress if callable(progress) else None
        self.stage = ""
        self.video = ""
        super().__init__(total=total, progress=False if self._on_update else progress, iters_str="frames")

    def start_video(self, position, count, filepath):
        self.video = f"video {position + 1}/{count}: " if count > 1 else ""
        self.set_stage(f"tracking {filepath}")

    def set_stage(self, message):
        self.stage = self.video + message
        if not self.quiet:
            print(f"samtrack: {self.stage}")  # the bar captures stdout and shows this line above itself
        self.set_iteration(self.iteration)

    def set_iteration(self, *args, **kwargs):
        super().set_iteration(*args, **kwargs)
        if self._on_update is not None:
            self._on_update(self)
