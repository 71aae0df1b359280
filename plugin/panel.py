"""The click-prompt panel: click objects on a video frame, preview SAM's masks, then track them.

Workflow: pick a video and a frame; choose a click mode (positive point, negative point, or box = two
clicks on opposite corners) and click on the frame; every click re-runs SAM and shows the mask. Name the
object and "Add object"; repeat for more objects (on this or other frames); "Track" tracks them through the
video (``track_from_panel``, with per-frame progress in the panel) or queues ``track_objects`` as a
delegated operation.

A click is answered at once (the click drawn, "Computing the mask ..."); the mask follows from a second
event (``compute_preview``). SAM's frame embedding is computed once per frame and kept for a few frames
(``samtrack_ops.segmentor``); once a model is loaded, opening a frame starts its embedding in the
background, so a click runs only SAM's prompt encoder and mask decoder.

Panel state (JSON): ``points`` [[x, y, 1|0], ...] and ``box`` [x0, y0, x1, y1] of the object being drawn,
``corner`` [x, y] of a half-drawn box, and ``objects`` [{"label", "frame_number", "points", "box"}, ...];
coordinates are full-resolution pixels, frame numbers 1-based as in FiftyOne.
"""

import logging
import queue
import threading

import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops import models
from samtrack_ops.fiftyone import call_to_params, queue_videos, track_from_params
from samtrack_ops.prompts import Box, Click, PromptError
from samtrack_ops.segmentor import SAM_MODELS, load_segmentor

from . import frame_canvas
from .frame_panel import FramePanel

MAX_LISTED_VIDEOS = 200
PLOT_HEIGHT = 320
TRACK_FROM_PANEL_URI = "@samtrack/samtrack/track_from_panel"
MODEL_SETTINGS = ("sam_model", "tracker_model", "device", "sam_checkpoint", "tracker_checkpoint")
TRACKER_MODELS = models.TRACKER_MODELS
USER_ERRORS = (PromptError, ValueError, models.CheckpointError)


logger = logging.getLogger(__name__)

_loaded = {}  # {"settings": (sam_model, checkpoint, device), "segmentor": Segmentor}: one model at a time
_loading = threading.Lock()


def _segmentor(settings):
    """The SAM segmentor of ``settings`` = (sam_model, checkpoint, device), kept loaded between panel events."""
    with _loading:
        if _loaded.get("settings") != settings:
            sam_model, checkpoint, device = settings
            _loaded["segmentor"] = load_segmentor(sam_model, checkpoint=checkpoint or None, device=device or None)
            _loaded["settings"] = settings
        return _loaded["segmentor"]


def _prefetch_embedding(settings, frame):
    """Starts SAM's embedding of ``frame`` in the background when the model of ``settings`` is already loaded."""
    with _loading:
        segmentor = _loaded.get("segmentor") if _loaded.get("settings") == settings else None
    if segmentor is not None:
        threading.Thread(target=segmentor.prefetch, args=(frame,), daemon=True).start()


def object_prompt(obj):
    """The Click or Box prompt of a stored object (see the module docstring), or None when empty."""
    frame_index = obj["frame_number"] - 1
    if obj.get("box"):
        return Box(frame=frame_index, box_xyxy=obj["box"], label=obj.get("label"))
    if obj.get("points"):
        points = [point[:2] for point in obj["points"]]
        labels = [point[2] for point in obj["points"]]
        return Click(frame=frame_index, points=points, labels=labels, label=obj.get("label"))
    return None


def frame_count(sample):
    """Number of frames of a video sample (computes its metadata when missing)."""
    metadata = sample.metadata
    if metadata is None or not metadata.get_field("total_frame_count"):
        sample.compute_metadata()
        metadata = sample.metadata
    return metadata.total_frame_count


class ClickPromptPanel(FramePanel, foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="click_prompt_panel",
            label="samtrack: click to track",
            icon="ads_click",
            surfaces="grid modal",
            help_markdown=__doc__,
        )

    # ---- events -----------------------------------------------------------------------------------

    def on_load(self, ctx):
        defaults = {"click_mode": "positive", "sam_model": "vit_b", "tracker_model": "r50_deaotl",
                    "label_field": "samtrack", "delegate": False}
        for key, value in defaults.items():
            if ctx.panel.get_state(key) is None:
                ctx.panel.set_state(key, value)
        sample_id = ctx.current_sample or ctx.panel.get_state("sample_id") or self._first_video_id(ctx)
        self._show_sample(ctx, sample_id)

    def on_change_current_sample(self, ctx):
        if ctx.current_sample:
            self._show_sample(ctx, ctx.current_sample)

    def select_sample(self, ctx):
        self._show_sample(ctx, ctx.params["value"])

    def click_frame(self, ctx):
        """Draws the click at once and says the mask is being computed; ``compute_preview`` follows."""
        if not self._record_click(ctx):
            return
        self._refresh(ctx, with_masks=False)
        self._preview_later(ctx)

    def undo_click(self, ctx):
        ctx.panel.set_state("points", (ctx.panel.get_state("points") or [])[:-1])
        ctx.panel.set_state("corner", None)
        self._refresh(ctx, with_masks=False)
        self._preview_later(ctx)

    def clear_drawing(self, ctx):
        self._clear_drawing(ctx)
        self._refresh(ctx, with_masks=False)
        self._preview_later(ctx)

    def compute_preview(self, ctx):
        """The masks of the frame's objects and of the object being drawn (triggered after a click)."""
        self._refresh(ctx)

    def _preview_later(self, ctx):
        """Shows that SAM is working and triggers ``compute_preview`` with the panel's state as it is now."""
        try:
            if not any(prompt is not None for prompt in self._frame_prompts(ctx)):
                return
        except PromptError:
            pass  # compute_preview shows the problem
        ctx.panel.set_state("status", "Computing the mask ... (SAM)")
        self._call_later(ctx, "compute_preview")

    def add_object(self, ctx):
        drawn = self._drawn_object(ctx)
        if object_prompt(drawn) is None:
            ctx.panel.set_state("status", "**Click on the object (or draw a box) before adding it.**")
            return
        objects = ctx.panel.get_state("objects") or []
        ctx.panel.set_state("objects", objects + [drawn])
        ctx.panel.set_state("object_name", "")
        self._clear_drawing(ctx)
        self._refresh(ctx, with_masks=False)
        self._preview_later(ctx)  # the added object's mask on the frame, without the drawing's clicks
        ctx.panel.set_state("status", f"Added '{drawn['label']}' (object {len(objects) + 1}).")

    def remove_last_object(self, ctx):
        ctx.panel.set_state("objects", (ctx.panel.get_state("objects") or [])[:-1])
        self._refresh(ctx, with_masks=False)
        self._preview_later(ctx)

    def track(self, ctx):
        objects = ctx.panel.get_state("objects") or []
        if not objects:
            ctx.panel.set_state("track_status", "**Add at least one object before tracking** (click it, then Add object).")
            return
        try:
            status = self._start_tracking(ctx, objects)
        except USER_ERRORS as error:
            status = f"**Cannot track:** {error}"
        ctx.panel.set_state("track_status", status)

    def _start_tracking(self, ctx, objects):
        sample_id = ctx.panel.get_state("sample_id")
        run = {**self._run_params(ctx, objects), "sample_ids": [sample_id]}
        if ctx.panel.get_state("delegate"):
            queued = queue_videos(ctx.dataset.select(sample_id), run, delegation_target=ctx.delegation_target)
            return f"Queued {len(queued)} delegated operation(s); run `fiftyone delegated launch` to process them."
        ctx.trigger(TRACK_FROM_PANEL_URI, params={"run": run, "panel_id": ctx.panel_id})
        return f"Tracking {len(objects)} object(s): loading the models ..."

    # ---- state ------------------------------------------------------------------------------------

    def _first_video_id(self, ctx):
        if ctx.view is None or ctx.dataset.media_type != "video" or not len(ctx.view):
            return None
        return ctx.view.first().id

    def _show_sample(self, ctx, sample_id):
        if sample_id != ctx.panel.get_state("sample_id"):
            ctx.panel.set_state("objects", [])
            ctx.panel.set_state("frame_number", 1)
        ctx.panel.set_state("sample_id", sample_id)
        self._clear_drawing(ctx)
        self._refresh(ctx, with_masks=False)
        self._preview_later(ctx)

    def _drawn_object(self, ctx):
        return {
            "label": (ctx.panel.get_state("object_name") or "").strip() or "object",
            "frame_number": ctx.panel.get_state("frame_number") or 1,
            "points": ctx.panel.get_state("points") or [],
            "box": ctx.panel.get_state("box"),
        }

    # ---- preview ----------------------------------------------------------------------------------

    def _refresh(self, ctx, with_masks=True):
        """Re-draws the frame with the prompts and (``with_masks``) SAM's masks of this frame's objects."""
        sample = self._video(ctx)
        if sample is None:
            return
        frame_number = ctx.panel.get_state("frame_number") or 1
        try:
            frame = frame_canvas.read_frame(sample.filepath, frame_number)
        except ValueError as error:
            ctx.panel.set_state("status", f"**Cannot show frame {frame_number}:** {error}")
            return
        masks, status = [], None
        if with_masks:
            try:
                masks, status = self._masks(ctx, frame, frame_number)
            except USER_ERRORS as error:
                status = f"**Cannot preview:** {error}"
        else:
            _prefetch_embedding(self._sam_settings(ctx), frame)
        self._draw_frame(ctx, frame, masks)
        ctx.panel.set_state("frame_count", frame_count(sample))
        ctx.panel.set_state("status", status)

    def _sam_settings(self, ctx):
        return (ctx.panel.get_state("sam_model") or "vit_b", ctx.panel.get_state("sam_checkpoint") or None,
                ctx.panel.get_state("device") or None)

    def _frame_prompts(self, ctx):
        """Prompts on the current frame: the added objects' (None for none) and the one being drawn, last."""
        frame_number = ctx.panel.get_state("frame_number") or 1
        objects = [o for o in ctx.panel.get_state("objects") or [] if o["frame_number"] == frame_number]
        return [object_prompt(o) for o in objects + [self._drawn_object(ctx)]]

    def _masks(self, ctx, frame, frame_number):
        """SAM masks of the objects on ``frame_number`` (added ones, then the one being drawn) and a summary."""
        prompts = [p for p in self._frame_prompts(ctx) if p is not None]
        if not prompts:
            return [], None
        segmentor = _segmentor(self._sam_settings(ctx))
        segmentor.set_frame(frame)
        masks = [segmentor.predict(prompt) for prompt in prompts]
        (mask, score), prompt = masks[-1], prompts[-1]
        summary = (f"Preview of '{prompt.label}' on frame {frame_number}: {int(mask.sum())} pixels, "
                   f"SAM score {score:.2f}")
        return [mask for mask, _ in masks], summary

    def _run_params(self, ctx, objects):
        """The ``track_objects`` run params (``samtrack_ops.fiftyone.call_to_params``) of the objects."""
        options = {name: ctx.panel.get_state(name) or None for name in MODEL_SETTINGS}
        return call_to_params(
            [object_prompt(obj) for obj in objects],
            ctx.panel.get_state("label_field") or "samtrack",
            "interactive",
            **{name: value for name, value in options.items() if value is not None},
        )

    # ---- layout -----------------------------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        if ctx.dataset is None or ctx.dataset.media_type != "video":
            panel.md("Open a **video** dataset to click objects on its frames.", name="no_video")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        # what a click changes (status, object list, Track) sits above the frame: the App gives the plot more
        # height than the frame needs, which would push anything below it out of view
        self._render_pickers(ctx, panel)
        panel.md(ctx.panel.get_state("status") or "", name="status")
        self._render_drawing_buttons(panel)
        self._render_objects(ctx, panel)
        panel.btn("track", label="Track", variant="contained", on_click=self.track)
        panel.md(ctx.panel.get_state("track_status") or "", name="track_status")
        self._render_frame(ctx, panel, PLOT_HEIGHT)
        self._render_settings(panel)
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=1, px=2, py=1))

    def _render_pickers(self, ctx, panel):
        videos = types.Dropdown(label="Video")
        for sample_id, filepath in zip(*ctx.view.limit(MAX_LISTED_VIDEOS).values(["id", "filepath"])):
            videos.add_choice(sample_id, label=filepath.rsplit("/", 1)[-1])
        panel.enum("sample_id", videos.values(), view=videos, on_change=self.select_sample)
        panel.int("frame_number", label="Frame", min=1, max=ctx.panel.get_state("frame_count"),
                  on_change=self.select_frame)
        self._render_click_modes(panel)

    def _render_drawing_buttons(self, panel):
        panel.str("object_name", label="Object name")
        buttons = panel.h_stack("drawing_buttons", align_x="left", gap=1)
        buttons.btn("add_object", label="Add object", variant="outlined", on_click=self.add_object)
        buttons.btn("undo_click", label="Undo click", on_click=self.undo_click)
        buttons.btn("clear_drawing", label="Clear", on_click=self.clear_drawing)

    def _render_objects(self, ctx, panel):
        objects = ctx.panel.get_state("objects") or []
        if not objects:
            panel.md("_No objects yet._", name="object_list")
            return
        rows = [f"{i + 1}. **{o['label']}** on frame {o['frame_number']} "
                f"({'box' if o.get('box') else str(len(o['points'])) + ' clicks'})" for i, o in enumerate(objects)]
        panel.md("Objects to track:\n\n" + "\n".join(rows), name="object_list")
        panel.btn("remove_last_object", label="Remove last object", on_click=self.remove_last_object)

    def _render_settings(self, panel):
        for name, values in (("sam_model", SAM_MODELS), ("tracker_model", TRACKER_MODELS)):
            choices = types.Dropdown(label=name)
            for value in values:
                choices.add_choice(value, label=value)
            panel.enum(name, choices.values(), view=choices)
        panel.str("sam_checkpoint", label="SAM checkpoint (empty = model cache)")
        panel.str("tracker_checkpoint", label="DeAOT checkpoint (empty = model cache)")
        panel.str("device", label="Device (empty = cuda if available, else cpu)")
        panel.str("label_field", label="Output frame field")
        panel.bool("delegate", label="Run as a delegated operation", view=types.CheckboxView())


class TrackFromPanel(foo.Operator):
    """Tracks the panel's objects now, streaming per-frame progress and the outcome into the panel's
    ``track_status`` (params: ``run`` = ``call_to_params`` run params with ``sample_ids``, ``panel_id``)."""

    @property
    def config(self):
        return foo.OperatorConfig(
            name="track_from_panel",
            label="samtrack: track the panel's objects",
            unlisted=True,
            execute_as_generator=True,
        )

    def execute(self, ctx):
        run, panel_id = ctx.params["run"], ctx.params["panel_id"]
        frames = frame_count(ctx.dataset[run["sample_ids"][0]])
        for status, finished in _tracking_updates(ctx.dataset, run, frames):
            if finished:
                yield ctx.trigger("reload_dataset")  # the new field in the sidebar before "Done" is read
            yield ctx.ops.patch_panel_state({"track_status": status}, panel_id=panel_id)


def _tracking_updates(dataset, run, frame_count):
    """Runs ``track_from_params`` on one video of ``frame_count`` frames in a thread; yields its per-frame
    progress, then its outcome, as ``(markdown line, finished)``."""
    updates = queue.Queue()

    def progress(bar):  # samtrack_ops.fiftyone.FrameProgress, after every frame and stage
        total = bar.total or frame_count
        updates.put((f"Tracking ... frame {bar.iteration}/{total} ({bar.iteration / total:.0%}): {bar.stage}", False))

    def work():
        try:
            outcome = track_from_params(dataset, run, progress=progress)
            done = list(outcome.values()).count("done")
            updates.put((f"**Done:** frames.{run['label_field']} written ({done} video(s) tracked); it is in the "
                         f"sidebar under FRAME LABELS.", True))
        except USER_ERRORS as error:
            updates.put((f"**Tracking failed:** {error}", True))
        except Exception as error:  # shown in the panel; the traceback goes to the App server's log
            logger.exception("track_from_panel failed")
            updates.put((f"**Tracking failed:** {type(error).__name__}: {error}", True))

    threading.Thread(target=work, daemon=True).start()
    while True:
        status, finished = updates.get()
        yield status, finished
        if finished:
            return
