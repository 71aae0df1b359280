"""Frame sources: a video file, a folder of images, or arrays, decoded once and streamed as RGB frames.

Every source yields (H, W, 3) uint8 RGB frames of one size, one at a time; nothing keeps past frames.
:class:`SpillStore` keeps arrays that a later step needs again (frames for backward propagation, label
maps of earlier passes) on disk instead of in memory.
"""

import shutil
import tempfile
import weakref
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class VideoError(ValueError):
    """A video or frame sequence that cannot be read; the message names the problem and the fix."""


class FrameSource:
    """Iterable of (H, W, 3) uint8 RGB frames; ``frame_count`` is the number of frames when known, else None.

    Iterate it once: a file is decoded as it is iterated, an iterable of arrays is consumed.
    """

    def __init__(self, frames, frame_count, description):
        self._frames = frames
        self.frame_count = frame_count
        self.description = description

    def __iter__(self):
        frame_size = None
        for index, frame in enumerate(self._frames):
            check_frame(frame, f"frame {index} of {self.description}")
            if frame_size is None:
                frame_size = frame.shape[:2]
            elif frame.shape[:2] != frame_size:
                raise VideoError(f"frame {index} of {self.description} is {frame.shape[:2]} (H, W) but earlier "
                                 f"frames are {frame_size}; all frames of a video must have one size")
            yield frame
        if frame_size is None:
            raise VideoError(f"{self.description} holds no frames")


def check_frame(frame, what="frame"):
    """Raises VideoError unless frame is an (H, W, 3) uint8 RGB array."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VideoError(f"{what} must be an HxWx3 uint8 RGB numpy array, got {type(frame).__name__} "
                         f"{getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}")


def open_frames(frames):
    """A FrameSource for a video file path, a folder of images (sorted by name) or an iterable of arrays."""
    if isinstance(frames, FrameSource):
        return frames
    if isinstance(frames, (str, Path)):
        path = Path(frames)
        if path.is_dir():
            return _image_folder(path)
        if not path.exists():
            raise VideoError(f"video {path} does not exist; pass a video file, a folder of images or frame arrays")
        return _video_file(path)
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise VideoError(f"frame arrays must be N x H x W x 3 (or an iterable of H x W x 3), got shape {frames.shape}")
    try:
        iterator = iter(frames)
    except TypeError:
        raise VideoError(f"frames must be a video path or an iterable of HxWx3 uint8 arrays, got "
                         f"{type(frames).__name__}") from None
    count = len(frames) if hasattr(frames, "__len__") else None
    return FrameSource(iterator, count, "the given frames")


def _video_file(path):
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError(f"cannot open video {path}: not a video file OpenCV can decode (convert it to "
                         f"H.264 mp4, or pass a folder of images)")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return FrameSource(_decode(capture, path), count if count > 0 else None, f"video {path}")


def _decode(capture, path):
    try:
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def _image_folder(folder):
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise VideoError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return FrameSource((_read_image(path) for path in paths), len(paths), f"image folder {folder}")


def _read_image(path):
    frame_bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame_bgr is None:
        raise VideoError(f"cannot read image {path}: the file is damaged or not an image")
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


class SpillStore:
    """Arrays by key in a temporary folder (raw .npy, lossless).

    ``close()`` deletes the folder; so does garbage collection or interpreter exit when nobody closed it
    (e.g. a caller that stopped reading a generator holding the store).
    """

    def __init__(self, prefix="samtrack-spill-"):
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self._remove = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def _path(self, key):
        return self.folder / f"{key}.npy"

    def put(self, key, array):
        np.save(self._path(key), array, allow_pickle=False)

    def get(self, key):
        """The array stored under key, or None."""
        path = self._path(key)
        return np.load(path, allow_pickle=False) if path.exists() else None

    def close(self):
        self._remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
