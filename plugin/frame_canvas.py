"""The clickable frame of the click-prompt panel: one video frame with masks and prompts drawn on it.

The frame is shown as a Plotly figure whose axes are full-resolution pixel coordinates: a downscaled
JPEG of the frame (an ``image`` trace) under an invisible ``heatmap`` trace of coarse cells. The App
reports clicks on a heatmap with the clicked cell's ``x``/``y`` (it reports none for image traces), so a
click anywhere on the frame arrives as a pixel position of the full-resolution frame.
"""

import base64
import functools
import threading

import cv2
import numpy as np

from samtrack_ops.video import open_frames

DISPLAY_MAX_WIDTH = 640
"""Width (pixels) the frame is downscaled to for display; clicks keep full-resolution coordinates."""

CLICK_CELLS = 256
"""Number of click cells along the longer side of the frame (the click precision)."""

MASK_ALPHA = 0.5
POSITIVE_COLOR = (0, 230, 0)
NEGATIVE_COLOR = (255, 40, 40)
BOX_COLOR = (255, 215, 0)
OBJECT_COLORS = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]


class _PositionedDecoder:
    """The pipeline's decoder (``samtrack_ops.video.open_frames``) kept open after the last frame it gave."""

    def __init__(self, video_path):
        self.video_path = video_path
        self.frames = iter(open_frames(video_path))
        self.next_number = 1

    def frame(self, frame_number):
        """Frame ``frame_number`` (1-based); decodes forward from the current position."""
        for frame in self.frames:
            self.next_number += 1
            if self.next_number > frame_number:
                return frame
        raise ValueError(f"video {self.video_path!r} has no frame {frame_number}: it has {self.next_number - 1} "
                         f"frames; pick a frame within its length")


_decoder = None
_decoder_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def read_frame(video_path, frame_number):
    """Frame ``frame_number`` (1-based, as FiftyOne counts) of a video: HxWx3 uint8 RGB (read-only, cached).

    Frame-accurate: frames are decoded in order by the same decoder as the tracking pipeline (seeking by frame
    number is not exact for every codec or for variable frame rate videos), from the start of the video or, when
    moving forward in the video read last, from the last frame read.
    """
    global _decoder
    if frame_number < 1:
        raise ValueError(f"frame numbers start at 1, got {frame_number}")
    with _decoder_lock:
        if _decoder is None or _decoder.video_path != video_path or _decoder.next_number > frame_number:
            _decoder = _PositionedDecoder(video_path)
        frame = _decoder.frame(frame_number)
    frame.flags.writeable = False
    return frame


def draw_overlay(frame, masks, positive_points=(), negative_points=(), box=None, corner=None):
    """The frame downscaled for display with prompts and masks drawn on it: hxwx3 uint8 RGB.

    Args:
        frame: HxWx3 uint8 RGB
        masks: list of HxW bool masks, coloured by their position in the list
        positive_points, negative_points: (x, y) pixel positions of clicks
        box: (x0, y0, x1, y1) pixel box, or None
        corner: (x, y) first corner of a box being drawn, or None
    """
    scale = min(1.0, DISPLAY_MAX_WIDTH / frame.shape[1])
    size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    for index, mask in enumerate(masks):
        small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        color = np.array(OBJECT_COLORS[index % len(OBJECT_COLORS)], dtype=np.float32)
        image[small] = (1 - MASK_ALPHA) * image[small] + MASK_ALPHA * color
    image = image.astype(np.uint8)
    for points, color in ((positive_points, POSITIVE_COLOR), (negative_points, NEGATIVE_COLOR)):
        for x, y in points:
            cv2.circle(image, (round(x * scale), round(y * scale)), 5, color, thickness=-1)
            cv2.circle(image, (round(x * scale), round(y * scale)), 5, (255, 255, 255), thickness=1)
    if box is not None:
        x0, y0, x1, y1 = (round(value * scale) for value in box)
        cv2.rectangle(image, (x0, y0), (x1, y1), BOX_COLOR, thickness=2)
    if corner is not None:
        cv2.drawMarker(image, (round(corner[0] * scale), round(corner[1] * scale)), BOX_COLOR, cv2.MARKER_CROSS, 14, 2)
    return image


def figure(image, frame_size):
    """Plotly ``(data, layout)`` showing ``image`` over a ``frame_size`` = (H, W) pixel coordinate system."""
    height, width = frame_size
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError("could not encode the frame preview as JPEG")
    source = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
    scale = width / image.shape[1]
    cell = max(height, width) / CLICK_CELLS
    cell_x = np.arange(0, width, cell) + cell / 2
    cell_y = np.arange(0, height, cell) + cell / 2
    image_trace = {
        "type": "image", "source": source, "x0": scale / 2, "y0": scale / 2, "dx": scale, "dy": scale,  # pixel centres
        "hoverinfo": "skip",
    }
    click_trace = {
        "type": "heatmap",
        "name": "frame",
        "x": cell_x.round(1).tolist(),
        "y": cell_y.round(1).tolist(),
        "z": np.zeros((len(cell_y), len(cell_x)), np.uint8).tolist(),
        "opacity": 0,
        "showscale": False,
        "hoverinfo": "none",
    }
    layout = {
        "xaxis": {"range": [0, width], "visible": False, "constrain": "domain", "fixedrange": True},
        "yaxis": {"range": [height, 0], "visible": False, "scaleanchor": "x", "fixedrange": True},
        "margin": {"t": 0, "l": 0, "b": 0, "r": 0},
        "dragmode": False,
        "hovermode": "closest",
    }
    return [image_trace, click_trace], layout
