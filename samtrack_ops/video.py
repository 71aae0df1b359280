"""Frame sources: a video file, a folder of images, or arrays, decoded once and streamed as RGB frames.

Every source yields (H, W, 3) uint8 RGB frames of one size, one at a time; nothing keeps past frames.
:class:`SpillStore` keeps arrays that a later step needs again (frames for backward propagation, label
maps of earlier passes) on disk instead of in memory.

The decoded frames are the truth: frame ``i`` is the ``i``-th frame the decoder returns, at the size it
returns (OpenCV applies a rotation tag, so a phone clip decodes upright even though its stream - and
FiftyOne's metadata - give the unrotated width and height). When a video file is fully decoded its frame
count is checked against what its container (and, via :meth:`FrameSource.expect`, FiftyOne's metadata)
promised:

- fewer frames (a truncated or damaged file): ``on_missing_frames="fail"`` (default) raises
  :class:`VideoError` after the last decodable frame, so nothing of the video is stored;
  ``"warn"`` warns (:class:`VideoWarning`) and the decodable frames are used;
- more frames, or a variable frame rate (decoder timestamps not evenly spaced): a :class:`VideoWarning`,
  since a player that maps playback time to frame numbers at the average rate (the FiftyOne App) will
  not show frame ``i``'s labels on the ``i``-th decoded frame.
"""

import shutil
import tempfile
import warnings
import weakref
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MISSING_FRAMES_POLICIES = ("fail", "warn")
UNEVEN_INTERVAL = 0.25
"""A frame interval further than this fraction (+ 1 ms of rounding) from the median one means variable frame rate."""


class VideoError(ValueError):
    """A video or frame sequence that cannot be read; the message names the problem and the fix."""


class VideoWarning(UserWarning):
    """A video whose decoded frames disagree with its container or metadata; samtrack uses the decoded frames."""


def check_missing_frames_policy(on_missing_frames):
    if on_missing_frames not in MISSING_FRAMES_POLICIES:
        raise ValueError(f"on_missing_frames must be one of {MISSING_FRAMES_POLICIES}, got {on_missing_frames!r}")


class FrameSource:
    """Iterable of (H, W, 3) uint8 RGB frames; ``frame_count`` is the number of frames when known, else None.

    Iterate it once: a file is decoded as it is iterated, an iterable of arrays is consumed. ``timestamps_ms``
    (video files only) receives each decoded frame's presentation time. See the module docstring for
    ``on_missing_frames`` and the checks made once the last frame is decoded.
    """

    def __init__(self, frames, frame_count, description, timestamps_ms=None, on_missing_frames="fail"):
        check_missing_frames_policy(on_missing_frames)
        self._frames = frames
        self.frame_count = frame_count
        self.description = description
        self.timestamps_ms = timestamps_ms
        self.on_missing_frames = on_missing_frames
        self.promised = {"its container": frame_count} if timestamps_ms is not None and frame_count else {}

    def expect(self, frame_count, by):
        """Also checks the decoded frame count against ``frame_count`` as stated ``by`` (e.g. "its FiftyOne
        metadata"); None or 0 is ignored."""
        if frame_count:
            self.promised[by] = int(frame_count)

    def __iter__(self):
        frame_size = None
        index = -1
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
        self._check_decoded(index + 1)

    def _check_decoded(self, decoded):
        """Compares the decoded frame count and timestamps with what was promised (module docstring)."""
        short = _stated({by: count for by, count in self.promised.items() if count > decoded})
        if short:
            problem = f"{self.description} decodes to only {decoded} frames, but {short}: the file is truncated or damaged"
            if self.on_missing_frames == "fail":
                raise VideoError(
                    f"{problem}. Repair the file (e.g. download it again, or re-encode the decodable part: "
                    f"ffmpeg -i in.mp4 out.mp4), or pass on_missing_frames='warn' to label the {decoded} "
                    "decodable frames (stored labels of the other frames are then kept as they are)")
            warnings.warn(f"{problem}; only frames 1..{decoded} get labels (on_missing_frames='warn')",
                          VideoWarning, stacklevel=3)
        long = _stated({by: count for by, count in self.promised.items() if count < decoded})
        if long:
            warnings.warn(f"{self.description} decodes to {decoded} frames, but {long}; labels are stored by "
                          "decoded frame (frame n = the n-th decoded frame)", VideoWarning, stacklevel=3)
        self._check_frame_rate()

    def _check_frame_rate(self):
        if not self.timestamps_ms or len(self.timestamps_ms) < 3:
            return
        intervals = np.diff(self.timestamps_ms)
        median = float(np.median(intervals))
        if np.abs(intervals - median).max() > UNEVEN_INTERVAL * median + 1.0:
            warnings.warn(
                f"{self.description} has a variable frame rate (frame intervals from {intervals.min():.0f} to "
                f"{intervals.max():.0f} ms): labels are stored by decoded frame (frame n = the n-th decoded "
                "frame), but players that map time to frames at a constant rate (the FiftyOne App) will show "
                "them on other frames; re-encode at a constant rate for exact overlays "
                "(ffmpeg -i in.mp4 -fps_mode cfr out.mp4)", VideoWarning, stacklevel=3)


def _stated(counts):
    """ "its container says 15 and ..." for {who: frame count}; "" when empty."""
    return " and ".join(f"{by} says {count}" for by, count in counts.items())


def check_frame(frame, what="frame"):
    """Raises VideoError unless frame is an (H, W, 3) uint8 RGB array."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VideoError(f"{what} must be an HxWx3 uint8 RGB numpy array, got {type(frame).__name__} "
                         f"{getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}")


def open_frames(frames, on_missing_frames=None):
    """A FrameSource for a video file path, a folder of images (sorted by name) or an iterable of arrays.

    on_missing_frames: "fail" or "warn" (module docstring); None keeps a given FrameSource's own choice.
    """
    source = _open(frames)
    if on_missing_frames is not None:
        check_missing_frames_policy(on_missing_frames)
        source.on_missing_frames = on_missing_frames
    return source


def _open(frames):
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


def _capture(path):
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError(f"cannot open video {path}: not a video file OpenCV can decode (convert it to "
                         f"H.264 mp4, or pass a folder of images)")
    return capture


def _video_file(path):
    capture = _capture(path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    timestamps_ms = []
    return FrameSource(_decode(capture, timestamps_ms), count if count > 0 else None, f"video {path}", timestamps_ms)


def _decode(capture, timestamps_ms):
    try:
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                return
            timestamps_ms.append(capture.get(cv2.CAP_PROP_POS_MSEC))
            yield cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def decoded_frame_size(path):
    """(H, W) of the first decoded frame of the video file at ``path`` (rotation tags applied)."""
    capture = _capture(path)
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise VideoError(f"video {path} decodes to no frame: the file is damaged or not a video")
    return frame.shape[:2]


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
