"""Encoding frames into an H.264 mp4 with the ``ffmpeg`` executable (browser-playable for the App)."""

import shutil
import subprocess

from samtrack_ops.export._atomic import ExportError


def _encoder_command(path, frame_size, frame_rate):
    height, width = frame_size
    # yuv420p (what browsers play) needs even sizes; odd sizes keep full chroma instead.
    pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return [
        "ffmpeg", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(frame_rate), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", pixel_format,
        "-f", "mp4", str(path),
    ]  # fmt: skip


def write_mp4(frames_bgr, path, frame_rate=24):
    """Encodes an iterable of HxWx3 uint8 BGR frames (all one size) into ``path``; one video frame each.

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
                    _encoder_command(partial, frame_size, frame_rate),
                    stdin=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            if frame.shape[:2] != frame_size:
                raise ExportError(f"{path.name}: frame of size {frame.shape[:2]} after frames of {frame_size}")
            encoder.stdin.write(frame.tobytes())
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
