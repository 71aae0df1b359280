"""What the panels that show a clickable video frame share: picking the frame, recording clicks, drawing.

:class:`FramePanel` is a mixin of ``foo.Panel`` used by the click-to-track panel (``plugin.panel``) and
the review panel (``plugin.review_panel``). Panel state it reads and writes (JSON): ``sample_id``,
``frame_number`` (1-based), ``click_mode`` (a key of :data:`CLICK_MODES`), ``points`` [[x, y, 1|0], ...],
``box`` [x0, y0, x1, y1] and ``corner`` [x, y] of a half-drawn box, ``frame_layout`` (the plot's layout);
coordinates are pixels of the full-resolution frame. The frame itself is the panel data ``frame``
(``plugin.frame_canvas.figure``). The panel using it defines ``_refresh(ctx)`` (re-draws the frame).
"""

import fiftyone.operators.types as types

from . import frame_canvas

CLICK_MODES = {"positive": "Positive point", "negative": "Negative point", "box": "Box (two corners)"}


class FramePanel:
    # ---- events -----------------------------------------------------------------------------------

    def select_frame(self, ctx):
        ctx.panel.set_state("frame_number", ctx.params["value"])
        self._clear_drawing(ctx)
        self._refresh(ctx)

    # ---- state ------------------------------------------------------------------------------------

    def _record_click(self, ctx):
        """Adds the clicked pixel to the drawing: a point (replacing a box), or a box corner in box mode
        (two corners make the box, replacing the points). False when the click carried no position."""
        x, y = ctx.params.get("x"), ctx.params.get("y")
        if x is None or y is None:
            return False
        mode = ctx.panel.get_state("click_mode") or "positive"
        if mode == "box":
            self._add_corner(ctx, [x, y])
        else:
            ctx.panel.set_state("box", None)
            points = ctx.panel.get_state("points") or []
            ctx.panel.set_state("points", points + [[x, y, int(mode == "positive")]])
        return True

    def _add_corner(self, ctx, corner):
        first = ctx.panel.get_state("corner")
        if first is None:
            ctx.panel.set_state("corner", corner)
            return
        (x0, x1), (y0, y1) = sorted([first[0], corner[0]]), sorted([first[1], corner[1]])
        ctx.panel.set_state("box", [x0, y0, x1, y1] if x0 < x1 and y0 < y1 else None)
        ctx.panel.set_state("points", None)
        ctx.panel.set_state("corner", None)

    def _clear_drawing(self, ctx):
        for key in ("points", "box", "corner"):
            ctx.panel.set_state(key, None)

    def _video(self, ctx):
        """The panel's video sample (``sample_id``), or None when there is none."""
        sample_id = ctx.panel.get_state("sample_id")
        if sample_id is None or ctx.dataset is None or ctx.dataset.media_type != "video":
            return None
        return ctx.dataset[sample_id]

    def _call_later(self, ctx, method):
        """Triggers the panel's ``method`` as a new event with the panel's state as it is now: what this event
        set is shown at once, and the slow work runs in the next one."""
        ctx.trigger(self.uri, params={"__method__": method, "panel_id": ctx.panel_id,
                                      "panel_state": dict(ctx.panel_state)})

    # ---- drawing ----------------------------------------------------------------------------------

    def _draw_frame(self, ctx, frame, masks):
        """Shows ``frame`` (HxWx3 uint8 RGB) with ``masks`` (HxW bool each) and the drawing in the plot."""
        points = ctx.panel.get_state("points") or []
        image = frame_canvas.draw_overlay(
            frame, masks, [p[:2] for p in points if p[2]], [p[:2] for p in points if not p[2]],
            box=ctx.panel.get_state("box"), corner=ctx.panel.get_state("corner"),
        )
        data, layout = frame_canvas.figure(image, frame.shape[:2])
        ctx.panel.set_data("frame", data)
        ctx.panel.set_state("frame_layout", layout)

    def _render_click_modes(self, panel):
        modes = types.RadioGroup(label="Click mode", orientation="horizontal")
        for value, label in CLICK_MODES.items():
            modes.add_choice(value, label=label)
        panel.enum("click_mode", modes.values(), view=modes)

    def _render_frame(self, ctx, panel, height):
        """The clickable frame, ``height`` pixels high (clicks go to the panel's ``click_frame``)."""
        layout = ctx.panel.get_state("frame_layout") or {}
        panel.plot("frame", layout={**layout, "height": height}, config={"displayModeBar": False},
                   on_click=self.click_frame, height=height)
