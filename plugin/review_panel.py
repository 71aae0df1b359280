"""The review panel: walk the review queue, look at a flagged frame, correct a track with a click.

Workflow: "Build review queue" lists the frame ranges of the label field most likely wrong, worst first
(``samtrack_ops.fiftyone.review``); picking one opens its video on its first frame with the stored masks
drawn. Choose a track (its index) and a correction; for "resegment" / "add" click on the object
(positive / negative points, or a box by two corners); "Apply" runs the correction
(``samtrack_ops.fiftyone.corrections`` through ``plugin.review.run_correction``), which re-propagates
and reports the frames it rewrote. "Mark reviewed" takes the range out of the queue.

Panel state (JSON): ``queue`` [{"sample_id", "first", "last", "reason", "suspicion"}], ``points``
[[x, y, 1|0], ...], ``box`` [x0, y0, x1, y1], ``corner`` [x, y]; pixel coordinates of the full frame,
frame numbers 1-based.
"""

import numpy as np

import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops.fiftyone.corrections import StoredVideo
from samtrack_ops.fiftyone.review import build_review_queue, mark_reviewed
from samtrack_ops.prompts import PromptError

from . import frame_canvas
from .review import ACTIONS, MODEL_INPUTS, run_correction

PLOT_HEIGHT = 280
QUEUE_ROWS = 50
CLICK_MODES = {"positive": "Positive point", "negative": "Negative point", "box": "Box (two corners)"}


class ReviewPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name="review_panel", label="samtrack: review and correct", icon="rule",
                               surfaces="grid modal", help_markdown=__doc__)

    # ---- events -----------------------------------------------------------------------------------

    def on_load(self, ctx):
        for key, value in {"label_field": "samtrack", "action": "resegment", "click_mode": "positive",
                           "frame_number": 1, "early_stop": True}.items():
            if ctx.panel.get_state(key) is None:
                ctx.panel.set_state(key, value)
        if ctx.current_sample and ctx.panel.get_state("sample_id") is None:
            ctx.panel.set_state("sample_id", ctx.current_sample)
        self._refresh(ctx)

    def build_queue(self, ctx):
        field = ctx.panel.get_state("label_field") or "samtrack"
        try:
            view = build_review_queue(ctx.dataset, field)
        except ValueError as error:
            ctx.panel.set_state("message", f"Cannot build the queue: {error}")
            return
        rows = zip(view.values("sample_id"), view.values("support"), view.values(f"{field}_review.label"),
                   view.values(f"{field}_review.confidence"))
        queue = [{"sample_id": str(sample_id), "first": support[0], "last": support[1], "reason": reason,
                  "suspicion": round(float(suspicion), 2)} for sample_id, support, reason, suspicion in rows]
        ctx.panel.set_state("queue", queue[:QUEUE_ROWS])
        ctx.panel.set_state("message", f"{len(queue)} flagged range(s) in frames.{field}, worst first.")

    def open_flagged(self, ctx):
        position = int(ctx.params["value"])
        item = (ctx.panel.get_state("queue") or [])[position]
        ctx.panel.set_state("sample_id", item["sample_id"])
        ctx.panel.set_state("frame_number", item["first"])
        ctx.panel.set_state("flagged", position)
        self._clear_drawing(ctx)
        self._refresh(ctx)

    def select_frame(self, ctx):
        ctx.panel.set_state("frame_number", ctx.params["value"])
        self._clear_drawing(ctx)
        self._refresh(ctx)

    def click_frame(self, ctx):
        x, y = ctx.params.get("x"), ctx.params.get("y")
        if x is None or y is None:
            return
        if ctx.panel.get_state("click_mode") == "box":
            corner = ctx.panel.get_state("corner")
            if corner is None:
                ctx.panel.set_state("corner", [x, y])
            else:
                (x0, x1), (y0, y1) = sorted([corner[0], x]), sorted([corner[1], y])
                ctx.panel.set_state("box", [x0, y0, x1, y1])
                ctx.panel.set_state("corner", None)
        else:
            points = ctx.panel.get_state("points") or []
            ctx.panel.set_state("points", points + [[x, y, int(ctx.panel.get_state("click_mode") != "negative")]])
        self._refresh(ctx)

    def clear_drawing(self, ctx):
        self._clear_drawing(ctx)
        self._refresh(ctx)

    def apply_correction(self, ctx):
        sample = self._video(ctx)
        if sample is None:
            ctx.panel.set_state("message", "Open a video first (pick a flagged range or a sample).")
            return
        try:
            results = run_correction(sample, self._correction_params(ctx))
        except (PromptError, ValueError, KeyError, TypeError) as error:
            ctx.panel.set_state("message", f"Correction not applied: {error}")
            return
        results = results if isinstance(results, list) else [results]
        ctx.panel.set_state("message", " ".join(
            f"Track {r.object_id}: rewrote frames {r.first_frame}..{r.last_frame}, tracked {r.tracked_frames} "
            f"frame(s){', stopped early (agrees again)' if r.stopped_early else ''}." for r in results)
            or "No edits to apply.")
        self._clear_drawing(ctx)
        self._refresh(ctx)

    def mark_range_reviewed(self, ctx):
        position = ctx.panel.get_state("flagged")
        queue = ctx.panel.get_state("queue") or []
        if position is None or position >= len(queue):
            ctx.panel.set_state("message", "Pick a flagged range first.")
            return
        item = queue[position]
        mark_reviewed(ctx.dataset[item["sample_id"]], ctx.panel.get_state("label_field"),
                      range(item["first"], item["last"] + 1))
        ctx.panel.set_state("message", f"Frames {item['first']}..{item['last']} marked reviewed.")
        self.build_queue(ctx)

    # ---- state ------------------------------------------------------------------------------------

    def _clear_drawing(self, ctx):
        for key in ("points", "box", "corner"):
            ctx.panel.set_state(key, None)

    def _video(self, ctx):
        sample_id = ctx.panel.get_state("sample_id")
        if sample_id is None or ctx.dataset is None or ctx.dataset.media_type != "video":
            return None
        return ctx.dataset[sample_id]

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
        points = ctx.panel.get_state("points") or []
        image = frame_canvas.draw_overlay(frame, masks, [p[:2] for p in points if p[2]],
                                          [p[:2] for p in points if not p[2]], box=ctx.panel.get_state("box"),
                                          corner=ctx.panel.get_state("corner"))
        data, layout = frame_canvas.figure(image, frame.shape[:2])
        ctx.panel.set_data("review_frame", data)
        ctx.panel.set_state("frame_layout", layout)
        ctx.panel.set_state("tracks", tracks)

    def _stored_masks(self, ctx, sample, number):
        """([HxW bool mask per track on the frame], markdown list of those tracks)."""
        field = ctx.panel.get_state("label_field") or "samtrack"
        if field not in sample._dataset.get_frame_field_schema():
            return [], f"_frames.{field} does not exist yet._"
        video = StoredVideo(sample, field)
        label_map = video.label_map(number)
        detections = video.detections(number)
        ids = [int(i) for i in np.unique(label_map) if i]
        rows = [f"- track **{i}** {detections[i].get('label', '')} ({detections[i].get('provenance', 'tracked')}, "
                f"suspicion {detections[i].get('suspicion', 0):.2f})" for i in ids]
        return [label_map == i for i in ids], "\n".join(rows) or "_no tracks on this frame_"

    # ---- layout -----------------------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        if ctx.dataset is None or ctx.dataset.media_type != "video":
            panel.md("Open a **video** dataset with a samtrack label field to review it.", name="no_video")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        panel.str("label_field", label="Tracked label field")
        panel.btn("build_queue", label="Build review queue", variant="outlined", on_click=self.build_queue)
        self._render_queue(ctx, panel)
        panel.int("frame_number", label="Frame", min=1, on_change=self.select_frame)
        panel.plot("review_frame", layout=ctx.panel.get_state("frame_layout") or {},
                   config={"displayModeBar": False}, on_click=self.click_frame, height=PLOT_HEIGHT)
        if ctx.panel.get_state("message"):
            panel.view("message", types.Notice(label=ctx.panel.get_state("message")))
        panel.md(ctx.panel.get_state("tracks") or "", name="tracks")
        self._render_correction(panel)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=1, px=2, py=1))

    def _render_queue(self, ctx, panel):
        queue = ctx.panel.get_state("queue") or []
        if not queue:
            return
        choices = types.Dropdown(label="Flagged frames (worst first)")
        for position, item in enumerate(queue):
            choices.add_choice(str(position), label=f"frames {item['first']}-{item['last']}: {item['reason']} "
                                                    f"({item['suspicion']})")
        panel.enum("flagged_choice", choices.values(), view=choices, on_change=self.open_flagged)
        panel.btn("mark_reviewed", label="Mark range reviewed", on_click=self.mark_range_reviewed)

    def _render_correction(self, panel):
        actions = types.Dropdown(label="Correction")
        for action in ACTIONS:
            actions.add_choice(action, label=action)
        panel.enum("action", actions.values(), view=actions)
        panel.int("object_id", label="Track (index)")
        panel.int("merged_id", label="Merge: track to merge into the one above")
        panel.str("label", label="Label (add / relabel)")
        modes = types.RadioGroup(label="Click mode", orientation="horizontal")
        for value, label in CLICK_MODES.items():
            modes.add_choice(value, label=label)
        panel.enum("click_mode", modes.values(), view=modes)
        panel.bool("backward", label="Re-propagate backward", view=types.CheckboxView())
        panel.bool("early_stop", label="Stop once the stored labels agree again", view=types.CheckboxView())
        for name in MODEL_INPUTS:
            panel.str(name, label=name.replace("_", " ") + " (empty = default)")
        buttons = panel.h_stack("correction_buttons", align_x="left", gap=1)
        buttons.btn("apply_correction", label="Apply", variant="contained", on_click=self.apply_correction)
        buttons.btn("clear_drawing", label="Clear clicks", on_click=self.clear_drawing)
