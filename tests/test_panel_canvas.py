"""The click-prompt panel's frame canvas and prompt conversion, without a browser (fast).

The browser side (clicks reaching the panel, the preview appearing) is in test_app_browser.py.
"""

import base64
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import write_mp4
from samtrack_ops.prompts import Box, Click, PromptError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin's own package, as FiftyOne loads it
from plugin import frame_canvas  # noqa: E402
from plugin.panel import object_prompt  # noqa: E402


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    """A 5-frame 64x96 video whose frame n (1-based) is uniformly grey level 40 * n."""
    frames = np.stack([np.full((64, 96, 3), 40 * n, np.uint8) for n in range(1, 6)])
    return str(write_mp4(frames, tmp_path_factory.mktemp("canvas") / "numbered.mp4"))


def test_read_frame_counts_from_one_and_caches(numbered_video):
    third = frame_canvas.read_frame(numbered_video, 3)
    assert third.shape == (64, 96, 3)
    assert abs(float(third.mean()) - 120) < 6  # lossy codec
    assert frame_canvas.read_frame(numbered_video, 3) is third


def test_read_frame_past_the_end_names_the_problem(numbered_video):
    with pytest.raises(ValueError, match="has no frame 6"):
        frame_canvas.read_frame(numbered_video, 6)
    with pytest.raises(ValueError, match="start at 1"):
        frame_canvas.read_frame(numbered_video, 0)


def _frame_id(frame):
    """The number a frame of ``variable_rate_video`` shows: its bottom half's grey level + 25 x its top half's green."""
    return int(round(frame[40:, :, 0].mean() / 10)) + 25 * int(round(frame[:24, :, 1].mean() / 25))


@pytest.fixture(scope="module")
def variable_rate_video(tmp_path_factory):
    """200 numbered 64x96 frames, H.264, 30 fps with a 10 s pause after frame 20 (variable frame rate).

    OpenCV's seek by frame number (CAP_PROP_POS_FRAMES) lands on the wrong frame here (e.g. frame 150 gives 45).
    """
    folder = tmp_path_factory.mktemp("vfr")
    for number in range(200):
        image = np.zeros((64, 96, 3), np.uint8)
        image[:, :, 0] = (number % 25) * 10
        image[:32, :, 1] = (number // 25) * 25
        cv2.imwrite(str(folder / f"{number:03d}.png"), image[:, :, ::-1])
    path = folder / "variable_rate.mp4"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-framerate", "30", "-i", str(folder / "%03d.png"),
         "-vf", "setpts='N/30/TB+if(gte(N,20),10/TB,0)'", "-fps_mode", "passthrough",
         "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return str(path)


def test_read_frame_gives_the_frame_the_pipeline_tracks(variable_rate_video):
    """The preview frame is the frame the tracking pipeline decodes at that index, in any reading order."""
    from samtrack_ops.video import open_frames

    decoded = {index + 1: _frame_id(frame) for index, frame in enumerate(open_frames(variable_rate_video))}
    assert decoded == {number: number - 1 for number in range(1, 201)}
    for number in (31, 151, 191, 61, 2, 200):
        assert _frame_id(frame_canvas.read_frame(variable_rate_video, number)) == decoded[number]


def test_overlay_is_downscaled_and_colours_only_the_mask():
    frame = np.zeros((480, 1280, 3), np.uint8)
    mask = np.zeros((480, 1280), bool)
    mask[:, :640] = True
    image = frame_canvas.draw_overlay(frame, [mask])
    assert image.shape == (240, frame_canvas.DISPLAY_MAX_WIDTH, 3)
    assert image[120, 100].any() and not image[120, 500].any()


def test_figure_clicks_land_on_full_resolution_pixels():
    image = np.zeros((240, 427, 3), np.uint8)
    data, layout = frame_canvas.figure(image, (480, 854))
    image_trace, click_trace = data
    jpeg = base64.b64decode(image_trace["source"].split(",", 1)[1])
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 427, 3)
    assert image_trace["dx"] == pytest.approx(2.0)
    xs, ys = np.array(click_trace["x"]), np.array(click_trace["y"])
    assert 0 < xs.min() < 4 and 850 < xs.max() < 854 and 0 < ys.min() < 4 and 476 < ys.max() < 480
    assert np.array(click_trace["z"]).shape == (len(ys), len(xs))
    assert layout["xaxis"]["range"] == [0, 854] and layout["yaxis"]["range"] == [480, 0]


def test_object_prompt_from_panel_state():
    clicks = object_prompt({"label": "swan", "frame_number": 3, "points": [[10, 20, 1], [30, 40, 0]], "box": None})
    assert isinstance(clicks, Click) and clicks.frame == 2 and clicks.label == "swan"
    assert clicks.points.tolist() == [[10, 20], [30, 40]] and clicks.labels.tolist() == [1, 0]
    box = object_prompt({"label": "car", "frame_number": 1, "points": [], "box": [1, 2, 30, 40]})
    assert isinstance(box, Box) and box.box_xyxy.tolist() == [1, 2, 30, 40]
    assert object_prompt({"label": "x", "frame_number": 1, "points": [], "box": None}) is None
    with pytest.raises(PromptError, match="positive"):
        object_prompt({"label": "x", "frame_number": 1, "points": [[5, 5, 0]], "box": None})
