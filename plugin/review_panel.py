"""The review panel: walk the review queue, look at a flagged frame, correct a track with a click.

Workflow: "Build review queue" lists the frame ranges of the label field most likely wrong, worst first
(``samtrack_ops.fiftyone.review``); picking one opens its video on its first frame with the stored masks
and the list of its tracks (index, label, provenance, suspicion). Choose a correction and a track (its
index); for "resegment" / "add" click on the object (positive / negative points, or a box by two
corners); "Apply" says at once what it corrects, runs the correction (``samtrack_ops.fiftyone.corrections``
through ``plugin.review.run_correction``) in a second event (``correct_now``), then reports the frames
it rewrote and why it stopped, and reloads the App's labels. "Mark range reviewed" takes the range out
of the queue.

Panel state (JSON): ``queue`` [{"sample_id", "video", "first", "last", "reason", "suspicion"}],
``flagged`` (position of the open range), ``message`` (outcome of the last action), and the frame state
of ``plugin.frame_panel``; pixel coordinates of the full frame, frame numbers 1-based.
"""

import logging
import os

import numpy as np

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops.fiftyone.corrections import StoredVideo
from samtrack_ops.models import CheckpointError
from samtrack_ops.fiftyone.review import DEFAULT_THRESHOLD, build_review_queue, mark_reviewed, review_view_name
from samtrack_ops.prompts import PromptError

from . import frame_canvas
from .frame_panel import FramePanel
from .review import ACTIONS, MODEL_INPUTS, run_correction

PLOT_HEIGHT = 280
QUEUE_ROWS = 50
USER_ERRORS = (PromptError, ValueError, KeyError, TypeError, CheckpointError)
NO_FRAME_HINT = ("Build the review queue and pick a flagged range (or open a video of the dataset) to show its "
                 "frame here.")


logger = logging.getLogger(__name__)


class ReviewPanel(FramePanel, foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name="review_panel", label="samtrack: review and correct", icon="rule",
                               surfaces="grid modal", help_markdown=__doc__)

    # ---- events -----------------------------------------------------------------------------------

    def on_load(self, ctx):
        for key, value in {"label_field": _default_label_field(ctx.dataset), "action": "resegment",
                           "click_mode": "positive", "frame_number": 1, "early_stop": True}.items():
            if ctx.panel.get_state(key) is None:
                ctx.panel.set_state(key, value)
        if ctx.current_sample and ctx.panel.get_state("sample_id") is None:
            ctx.panel.set_state("sample_id", ctx.current_sample)
        self._refresh(ctx)

    def on_change_current_sample(self, ctx):
        if ctx.current_sample and ctx.current_sample != ctx.panel.get_state("sample_id"):
            self._open(ctx, ctx.current_sample, 1)

    def build_queue(self, ctx):
        field = ctx.panel.get_state("label_field") or "samtrack"
        try:
            queue = _queue_rows(_build_review_queue(ctx.dataset, field), field)
        except ValueError as error:
            ctx.panel.set_state("message", f"Cannot build the queue: {error}")
            return
        ctx.panel.set_state("queue", queue[:QUEUE_ROWS])
        ctx.panel.set_state("flagged", None)
        ctx.panel.set_state("flagged_choice", None)
        ctx.ops.reload_dataset()  # the new per-video fields (<field>_suspicion, ...) in the sidebar, to sort by
        if not queue:
            ctx.panel.set_state("message", f"Nothing to review: no unreviewed frame of frames.{field} has "
                                           f"suspicion >= {DEFAULT_THRESHOLD}.")
            return
        listed = f" (the worst {QUEUE_ROWS} listed)" if len(queue) > QUEUE_ROWS else ""
        ctx.panel.set_state("message", f"{len(queue)} flagged range(s) in frames.{field}{listed}, worst first; also "
                                       f"saved as the view '{review_view_name(field)}'. Pick one to open its frame.")

    def open_flagged(self, ctx):
        position = int(ctx.params["value"])
        item = (ctx.panel.get_state("queue") or [])[position]
        ctx.panel.set_state("flagged", position)
        ctx.panel.set_state("message", f"{_range_name(item)}: {item['reason']} (suspicion {item['suspicion']:.2f}). "
                                       f"Pick the track and the correction, click on the object, then Apply.")
        self._open(ctx, item["sample_id"], item["first"])

    def click_frame(self, ctx):
        if self._record_click(ctx):
            self._refresh(ctx)

    def clear_drawing(self, ctx):
        self._clear_drawing(ctx)
        self._refresh(ctx)

    def apply_correction(self, ctx):
        """Says at once what is being corrected; the correction itself runs in ``correct_now``."""
        if self._video(ctx) is None:
            ctx.panel.set_state("message", "Open a video first (pick a flagged range or a sample).")
            return
        params = self._correction_params(ctx)
        ctx.panel.set_state("message", f"Correcting: {params['action']} track {params.get('object_id') or ''} on "
                                       f"frame {params['frame_number']}, re-propagating ... (the panel updates "
                                       f"when it is done)")
        self._call_later(ctx, "correct_now")

    def correct_now(self, ctx):
        try:
            results = run_correction(self._video(ctx), self._correction_params(ctx))
        except USER_ERRORS as error:
            ctx.panel.set_state("message", f"Correction not applied: {error}")
            return
        except Exception as error:  # shown in the panel; the traceback goes to the App server's log
            logger.exception("correction from the review panel failed")
            ctx.panel.set_state("message", f"Correction failed: {type(error).__name__}: {error}")
            return
        results = results if isinstance(results, list) else [results]
        ctx.panel.set_state("message", "Done. " + (" ".join(describe(r) for r in results) or "No edits to apply."))
        self._clear_drawing(ctx)
        self._refresh(ctx)
        ctx.ops.reload_dataset()  # the App shows the rewritten labels

    def mark_range_reviewed(self, ctx):
        position = ctx.panel.get_state("flagged")
        queue = ctx.panel.get_state("queue") or []
        if position is None or position >= len(queue):
            ctx.panel.set_state("message", "Pick a flagged range first.")
            return
        item = queue[position]
        mark_reviewed(ctx.dataset[item["sample_id"]], ctx.panel.get_state("label_field"),
                      range(item["first"], item["last"] + 1))
        self.build_queue(ctx)
        ctx.panel.set_state("message", f"{_range_name(item)} marked reviewed; "
                                       f"{len(ctx.panel.get_state('queue') or [])} range(s) left in the queue.")

    # ---- state ------------------------------------------------------------------------------------

    def _open(self, ctx, sample_id, frame_number):
        ctx.panel.set_state("sample_id", sample_id)
        ctx.panel.set_state("frame_number", frame_number)
        self._clear_drawing(ctx)
        self._refresh(ctx)

    def _correction_params(self, ctx):
        state = {name: ctx.panel.get_state(name) for name in (
            "action", "label_field", "frame_number", "object_id", "merged_id", "label", "backward", "early_stop",
            "box", *MODEL_INPUTS)}
        state["clicks"] = [{"x": x, "y": y, "positive": bool(positive)}
                           for x, y, positive in ctx.panel.get_state("points") or []]
        return state

    def _refresh(self, ctx):
        """Draws the frame with its stored masks (and the clicks/box being drawn)."""
        sample = self._video(ctx)
        if sample is None:
            return
        number = int(ctx.panel.get_state("frame_number") or 1)
        try:
            frame = frame_canvas.read_frame(sample.filepath, number)
        except ValueError as error:
            ctx.panel.set_state("message", str(error))
            return
        masks, tracks = self._stored_masks(ctx, sample, number)
        self._draw_frame(ctx, frame, masks)
        ctx.panel.set_state("tracks", tracks)
        ctx.panel.set_state("frame_count", sample.metadata.total_frame_count if sample.metadata else None)

    def _stored_masks(self, ctx, sample, number):
        """([HxW bool mask per track on the frame], markdown list of those tracks, in the masks' colours' order)."""
        field = ctx.panel.get_state("label_field") or "samtrack"
        if field not in sample._dataset.get_frame_field_schema():
            return [], f"_frames.{field} does not exist: set the tracked label field above._"
        video = StoredVideo(sample, field)
        label_map = video.label_map(number)
        detections = video.detections(number)
        ids = [int(i) for i in np.unique(label_map) if i]
        rows = [f"- track **{i}** {detections[i].get('label', '')} ({detections[i].get('provenance', 'tracked')}, "
                f"suspicion {detections[i].get('suspicion', 0):.2f})" for i in ids]
        return [label_map == i for i in ids], "\n".join(rows) or f"_no tracks on frame {number}_"

    # ---- layout -----------------------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        if ctx.dataset is None or ctx.dataset.media_type != "video":
            panel.md("Open a **video** dataset with a samtrack label field to review it.", name="no_video")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        # the queue, the outcome of the last action and the frame's tracks sit above the frame, the correction
        # buttons right under it: the App gives the plot more height than the frame needs
        panel.str("label_field", label="Tracked label field")
        self._render_queue(ctx, panel)
        if ctx.panel.get_state("message"):
            panel.view("message", types.Notice(label=ctx.panel.get_state("message")))
        if self._video(ctx) is None:
            panel.md(f"_{NO_FRAME_HINT}_", name="no_frame")
            return types.Property(panel, view=types.GridView(orientation="vertical", gap=1, px=2, py=1))
        panel.int("frame_number", label="Frame", min=1, max=ctx.panel.get_state("frame_count"),
                  on_change=self.select_frame)
        panel.md(ctx.panel.get_state("tracks") or "", name="tracks")
        self._render_correction(panel)
        self._render_frame(ctx, panel, PLOT_HEIGHT)
        buttons = panel.h_stack("correction_buttons", align_x="left", gap=1)
        buttons.btn("apply_correction", label="Apply", variant="contained", on_click=self.apply_correction)
        buttons.btn("clear_drawing", label="Clear clicks", on_click=self.clear_drawing)
        self._render_options(panel)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=1, px=2, py=1))

    def _render_queue(self, ctx, panel):
        queue = ctx.panel.get_state("queue") or []
        buttons = panel.h_stack("queue_buttons", align_x="left", gap=1)
        buttons.btn("build_queue", label="Build review queue", variant="outlined", on_click=self.build_queue)
        if not queue:
            return
        buttons.btn("mark_reviewed", label="Mark range reviewed", on_click=self.mark_range_reviewed)
        several_videos = len({item["sample_id"] for item in queue}) > 1
        choices = types.Dropdown(label="Flagged frames (worst first)")
        for position, item in enumerate(queue):
            video = f"{item['video']}, " if several_videos else ""
            choices.add_choice(str(position), label=f"{video}{_range_name(item)}: {item['reason']} "
                                                    f"(suspicion {item['suspicion']:.2f})")
        panel.enum("flagged_choice", choices.values(), view=choices, on_change=self.open_flagged)

    def _render_correction(self, panel):
        actions = types.Dropdown(label="Correction")
        for action in ACTIONS:
            actions.add_choice(action, label=action)
        panel.enum("action", actions.values(), view=actions)
        panel.int("object_id", label="Track (index)")
        self._render_click_modes(panel)

    def _render_options(self, panel):
        panel.int("merged_id", label="Merge: track to merge into the one above")
        panel.str("label", label="Label (add / relabel)")
        panel.bool("backward", label="Re-propagate backward", view=types.CheckboxView())
        panel.bool("early_stop", label="Stop once the stored labels agree again", view=types.CheckboxView())
        for name in MODEL_INPUTS:
            panel.str(name, label=name.replace("_", " ") + " (empty = default)")


def _default_label_field(dataset):
    """``samtrack`` when the dataset has that frame field, else its first Detections frame field (or ``samtrack``)."""
    if dataset is None or dataset.media_type != "video":
        return "samtrack"
    fields = dataset.get_frame_field_schema(embedded_doc_type=fo.Detections) or {}
    return "samtrack" if "samtrack" in fields or not fields else next(iter(fields))


def _build_review_queue(dataset, field):
    """``build_review_queue`` in the App server, where every request reloads the one shared Dataset object
    (``ExecutionContext.dataset``): a reload in another request while the queue adds its fields can drop
    them from the schema in memory ("has no field '<field>_suspicion'"); the second try reads them back."""
    try:
        return build_review_queue(dataset, field)
    except ValueError as error:
        logger.warning("building the review queue again after a reload: %s", error)
        dataset.reload()
        return build_review_queue(dataset, field)


def _queue_rows(view, field):
    """The review queue's clips as panel rows: {"sample_id", "video", "first", "last", "reason", "suspicion"}."""
    rows = zip(view.values("sample_id"), view.values("filepath"), view.values("support"),
               view.values(f"{field}_review.label"), view.values(f"{field}_review.confidence"))
    return [{"sample_id": str(sample_id), "video": os.path.basename(path), "first": support[0], "last": support[1],
             "reason": reason, "suspicion": round(float(suspicion), 2)}
            for sample_id, path, support, reason, suspicion in rows]


def _range_name(item):
    return f"frame {item['first']}" if item["first"] == item["last"] else f"frames {item['first']}-{item['last']}"


def describe(result):
    """One sentence about a CorrectionResult, e.g. "Track 1: rewrote frames 3..5 (2 tracked), then stopped:
    next frame edited by hand." """
    if result.first_frame > result.last_frame:
        return f"Track {result.object_id}: no frame changed."
    tracked = f" ({result.tracked_frames} tracked)" if result.tracked_frames else ""
    stop = f", then stopped: {result.stop_reason}" if result.stop_reason else ""
    return f"Track {result.object_id}: rewrote frames {result.first_frame}..{result.last_frame}{tracked}{stop}."
