"""Encoding frames into an H.264 mp4 with the ``ffmpeg`` executable (browser-playable for the App).

Browsers play H.264 only in ``yuv420p``, which needs an even width and height: a frame with an odd side
gets one black row (bottom) and/or column (right) added by :func:`pad_to_even`; labels drawn on such
frames must be padded the same way (pixels keep their coordinates).
"""

import shutil
import subprocess

import numpy as np

from samtrack_ops.export._atomic import ExportError


def pad_to_even(image):
    """``image`` (H, W, ...) with a zero row at the bottom when H is odd and a zero column at the right when
    W is odd; the image itself when both are even."""
    height, width = image.shape[:2]
    padding = [(0, height % 2), (0, width % 2)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, padding) if height % 2 or width % 2 else image


def _encoder_command(path, frame_size, frame_rate):
    height, width = frame_size
    return [
        "ffmpeg", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(frame_rate), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
        "-f", "mp4", str(path),
    ]  # fmt: skip


def write_mp4(frames_bgr, path, frame_rate=24):
    """Encodes an iterable of HxWx3 uint8 BGR frames (all one size) into ``path``; one video frame each,
    padded to even sizes (:func:`pad_to_even`).

    The file appears at ``path`` only once encoding succeeded (written as ``<path>.partial`` first).

    Raises:
        ExportError: ffmpeg is missing or fails, no frames, or frames of different sizes
    """
    if shutil.which("ffmpeg") is None:
        raise ExportError("ffmpeg was not found on PATH: install it (scripts/bootstrap.sh does) to write videos")
    partial = path.with_name(path.name + ".partial")
    encoder, frame_size = None, None
    try:
        for frame in frames_bgr:
            if encoder is None:
                frame_size = frame.shape[:2]
                encoder = subprocess.Popen(
                    _encoder_command(partial, pad_to_even(frame).shape[:2], frame_rate),
                    stdin=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            if frame.shape[:2] != frame_size:
                raise ExportError(f"{path.name}: frame of size {frame.shape[:2]} after frames of {frame_size}")
            encoder.stdin.write(np.ascontiguousarray(pad_to_even(frame)).tobytes())
        if encoder is None:
            raise ExportError(f"{path.name}: no frames to encode")
        _, errors = encoder.communicate()
        if encoder.returncode != 0:
            raise ExportError(f"ffmpeg failed writing {path}: {errors.decode(errors='replace').strip()}")
        partial.replace(path)
    finally:
        if encoder is not None and encoder.poll() is None:
            encoder.kill()
            encoder.wait()
        partial.unlink(missing_ok=True)
