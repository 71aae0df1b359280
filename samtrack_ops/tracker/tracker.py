"""Streaming DeAOT tracker: references in, one label map per frame out, bounded memory."""

import numpy as np
import torch

from samtrack_ops import models
from samtrack_ops.tracker.aggregation import label_map_from_logits, soft_aggregate
from samtrack_ops.tracker.config import SAMTRACK_LONG_TERM_MEM_GAP, SAMTRACK_MAX_LEN_LONG_TERM, get_config
from samtrack_ops.tracker.engine import MultiObjectEngine, split_object_count
from samtrack_ops.tracker.network import build_network
from samtrack_ops.tracker.transforms import check_frame, network_input_size, preprocess_frame, resize_label_map

MAX_OBJECT_ID = 65535


class Tracker:
    """Tracks objects given as label maps through a stream of frames (SAM-Track's DeAOT usage).

    Frames are (H, W, 3) uint8 RGB; label maps (H, W) integer ids, 0 = background. Returned label
    maps are uint8 while all ids are <= 255, else uint16 (ids up to 65535; every 10 ids up to the
    largest one cost one object group).
    Memory holds the configured long-term frames plus one short-term frame per object group;
    nothing else of past frames is kept.
    """

    def __init__(self, network, long_term_mem_gap=SAMTRACK_LONG_TERM_MEM_GAP,
                 max_len_long_term=SAMTRACK_MAX_LEN_LONG_TERM):
        for option, value in (("long_term_mem_gap", long_term_mem_gap), ("max_len_long_term", max_len_long_term)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{option} must be a positive integer, got {value!r}.")
        self.network = network
        self.long_term_mem_gap = int(long_term_mem_gap)
        self.max_len_long_term = int(max_len_long_term)
        self.reset()

    @property
    def device(self):
        return next(self.network.parameters()).device

    @property
    def dtype(self):
        """Floating-point dtype of the network, its inputs, memory and logits."""
        return self.network.dtype

    @property
    def object_count(self):
        """Largest object id given in any reference so far (the reference's obj_nums)."""
        return self._engine.object_count

    @property
    def long_term_frames(self):
        """Frames held in long-term memory, per object group of at most 10 objects."""
        return [engine.long_term_frames for engine in self._engine.engines]

    @property
    def memory_bytes(self):
        """Bytes of all long- and short-term memory tensors (bounded by the memory options)."""
        return sum(engine.memory_bytes for engine in self._engine.engines)

    @property
    def last_lstt_outputs(self):
        """Final LSTT output of the last propagated or referenced frame per object group, for
        inspection: list of (h * w, 2 * embed_dim) tensors, tokens row-major, identity half last."""
        return [engine.lstt_output[0] for engine in self._engine.engines]

    @property
    def last_group_logits(self):
        """Logits of the last tracked frame per object group, for inspection: list of
        (11, H'/4, W'/4) tensors (identities above the group's object count hold -1e10)."""
        return [logits[0] for logits in self._last_group_logits]

    @property
    def group_object_counts(self):
        """Object count of each group of at most 10 objects (ids 10 g + 1 .. 10 g + count)."""
        return split_object_count(self.object_count, len(self._engine.engines))

    def reset(self):
        """Forgets all objects and memory; the next call must be add_reference."""
        self._engine = MultiObjectEngine(self.network, self.long_term_mem_gap, self.max_len_long_term)
        self._frame_size = None
        self._input_size = None
        self._last_frame = None
        self._last_group_logits = []

    def _check_label_map(self, label_map, what, frame_size):
        if not isinstance(label_map, np.ndarray) or label_map.ndim != 2 or not (
            np.issubdtype(label_map.dtype, np.integer) or label_map.dtype == np.bool_
        ):
            raise ValueError(f"{what} must be an HxW integer numpy array of object ids, got "
                             f"{type(label_map).__name__} {getattr(label_map, 'shape', '')}.")
        if label_map.shape != frame_size:
            raise ValueError(f"{what} has shape {label_map.shape} but frames are {frame_size} (H, W).")
        low, high = int(label_map.min()), int(label_map.max())
        if low < 0 or high > MAX_OBJECT_ID:
            raise ValueError(f"{what} holds ids {low}..{high}; ids must be 0 (background) to {MAX_OBJECT_ID}.")
        return high

    def _check_frame(self, frame):
        check_frame(frame)
        if self._frame_size is not None and frame.shape[:2] != self._frame_size:
            raise ValueError(f"Frame size {frame.shape[:2]} differs from this video's {self._frame_size} "
                             f"(H, W); call reset() before tracking another video.")

    def _to_input_size(self, label_map):
        resized = resize_label_map(label_map, self._input_size).astype(np.int64)
        return torch.from_numpy(resized).to(self.device)

    def _remember_frame(self, frame):
        self._last_frame = frame.copy()

    @torch.inference_mode()
    def add_reference(self, frame, label_map):
        """Adds objects: label_map (H, W) ids on frame (H, W, 3).

        The first call starts tracking. A later call with a merged map holding new ids behaves like
        SAM-Track's key-frame step: object groups whose count grows get a new reference pass, the
        others store the frame (as just tracked) with their part of the map in memory. Existing
        groups first propagate the frame when it is not the one they saw last.
        """
        self._check_frame(frame)
        highest = self._check_label_map(label_map, "label_map", frame.shape[:2])
        if self._frame_size is None:
            self._frame_size = frame.shape[:2]
            self._input_size = network_input_size(self._frame_size, self.network.config)
        same_frame = self._last_frame is not None and np.array_equal(frame, self._last_frame)
        image = None if same_frame else preprocess_frame(frame, self._input_size, self.device, self.dtype)
        object_count = max(self.object_count, highest)
        self._engine.add_reference(image, self._to_input_size(label_map), object_count, same_frame)
        self._remember_frame(frame)

    @torch.inference_mode()
    def track(self, frame, update_memory=True, return_logits=False):
        """Segments the tracked objects in frame (H, W, 3) -> label map (H, W) uint8 (uint16 above id 255).

        With update_memory the prediction is stored as the frame's memory (as SAM-Track does after
        every frame). With return_logits also returns the logits before argmax at the stride-4 grid:
        (1 + 10 E, H'/4, W'/4) float tensor for E object groups (aggregated when E > 1; unused
        identities of a single group hold -1e10).
        """
        if not self._engine.engines:
            raise RuntimeError("No objects to track: call add_reference(frame, label_map) first.")
        self._check_frame(frame)
        self._engine.propagate(preprocess_frame(frame, self._input_size, self.device, self.dtype))
        self._remember_frame(frame)
        engine_logits = self._last_group_logits = self._engine.decode()
        labels = label_map_from_logits(engine_logits, self.group_object_counts, self._frame_size,
                                       self.network.config.align_corners)
        label_map = labels.cpu().numpy().astype(np.uint8 if self.object_count <= 255 else np.uint16)
        if update_memory:
            self.update_memory(label_map)
        if return_logits:
            return label_map, soft_aggregate(engine_logits)[0]
        return label_map

    @torch.inference_mode()
    def update_memory(self, label_map):
        """Stores the last tracked frame in memory with label_map (H, W) as its objects."""
        if self._last_frame is None:
            raise RuntimeError("update_memory needs a frame: call add_reference, then track, first.")
        highest = self._check_label_map(label_map, "label_map", self._frame_size)
        if highest > self.object_count:
            raise ValueError(f"label_map holds id {highest} but only ids up to {self.object_count} are tracked; "
                             f"add new objects with add_reference(frame, label_map).")
        self._engine.update_memory(self._to_input_size(label_map))


_DTYPES = (torch.float32, torch.float64)


def _state_dict_from(checkpoint):
    """The model weights inside an official DeAOT checkpoint dict, without a ``module.`` prefix."""
    for key in ("state_dict", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {key.removeprefix("module."): value for key, value in checkpoint.items()}


def load_tracker(name="r50_deaotl", checkpoint=None, device=None, dtype=torch.float32, **memory_options):
    """Builds a Tracker for DeAOT variant ``name`` with official weights.

    checkpoint: None (the registered file, via samtrack_ops.models.resolve_checkpoint), a path, or
    an in-memory (state) dict. device: None = cuda when available, else cpu.
    dtype: floating-point dtype of the network and of everything the tracker computes (inputs,
    masks, memory, logits); float32 (default, fast) or float64 (reference-grade, e.g. parity checks).
    The weights are cast after loading, so a float32 checkpoint is upcast exactly.
    memory_options: long_term_mem_gap, max_len_long_term (SAM-Track defaults: 9999 and 9999).
    Raises CheckpointError when the weights do not belong to this architecture.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(str(d) for d in _DTYPES)}, got {dtype!r}.")
    config = get_config(name)
    source = checkpoint
    if checkpoint is None:
        source = models.resolve_checkpoint(name)
    if not isinstance(source, dict):
        source = models.load_checkpoint(source)
    state_dict = _state_dict_from(source)
    network = build_network(config)
    expected = {key: value.shape for key, value in network.state_dict().items()}
    described = "the given state dict" if isinstance(checkpoint, dict) else (checkpoint or source)
    models.check_state_dict(state_dict, expected, described, name)
    network.load_state_dict(state_dict, strict=True)
    network.to(device=models.resolve_device(device), dtype=dtype)
    return Tracker(network, **memory_options)
