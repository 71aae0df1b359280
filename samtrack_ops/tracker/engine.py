"""Memory management of DeAOT: object-group engines of at most 10 identities and their combination.

Semantics follow the reference engine as SAM-Track drives it:
- a reference pass propagates a frame through the LSTT with its own ID embedding and no memory;
  its memory is prepended to long-term memory and replaces short-term memory;
- after each tracked frame, the frame's memory (fused with the given mask) replaces short-term
  memory, and is prepended to long-term memory when ``frame_step - last_mem_step >= gap``; a full
  long-term memory first drops its oldest frame (``max_len_long_term`` frames at most);
- objects 1..N are split over ceil(N / 10) engines (engine e holds ids 10e+1..10e+10, renumbered
  1..10), whose logits are combined by soft aggregation;
- adding a reference when an engine's object count grows re-runs that engine's reference pass;
  engines whose count did not grow only update their memory with their part of the mask.
"""

import math

import torch

from samtrack_ops.tracker.config import MAX_OBJECTS_PER_ENGINE

# Logit of unused identities, per network dtype (the reference: -1e10 at full precision, -1e4 in half).
_MASKED_LOGIT = {torch.float64: -1e10, torch.float32: -1e10, torch.float16: -1e4, torch.bfloat16: -1e4}


def _prepend_frame(long_term, frame_memory, frame_tokens, max_frames):
    """Long-term memory with frame_memory in front, keeping at most max_frames frames."""
    updated = []
    for old, new in zip(long_term, frame_memory):
        if old.key.shape[1] >= max_frames * frame_tokens:
            old = type(old)(*(part[:, : (max_frames - 1) * frame_tokens] for part in old))
        updated.append(type(old)(*(torch.cat([n, o], dim=1) for n, o in zip(new, old))))
    return updated


def one_hot(label_map, channels, dtype):
    """label_map: (H, W) int64 tensor -> (1, channels, H, W) one-hot in dtype (channel c = label == c)."""
    classes = torch.arange(channels, device=label_map.device).view(-1, 1, 1)
    return (label_map.unsqueeze(0) == classes).to(dtype).unsqueeze(0)


class ObjectGroupEngine:
    """Memory and state of one group of at most 10 objects (ids 1..object_count, 0 = background)."""

    def __init__(self, network, long_term_mem_gap, max_len_long_term):
        self.network = network
        self.long_term_mem_gap = long_term_mem_gap
        self.max_len_long_term = max_len_long_term
        self.object_count = None
        self.frame_step = 0
        self.last_mem_step = -1
        self.long_term = None
        self.short_term = None
        self.pending = None
        self.lstt_output = None

    @property
    def long_term_frames(self):
        """Number of frames held in long-term memory."""
        if self.long_term is None:
            return 0
        return self.long_term[0].key.shape[1] // self.pending[0].key.shape[1]

    @property
    def memory_bytes(self):
        """Bytes held in long- and short-term memory tensors (shared tensors counted once)."""
        held = [self.long_term or [], self.short_term or []]
        parts = {part.data_ptr(): part for layers in held for memory in layers for part in memory}
        return sum(part.numel() * part.element_size() for part in parts.values())

    def _id_embedding(self, label_map):
        channels = min(int(label_map.max()), MAX_OBJECTS_PER_ENGINE) + 1
        return self.network.identity_embedding(one_hot(label_map, channels, self.network.dtype))

    def add_reference(self, tokens, size_2d, label_map, object_count):
        """Reference pass: tokens (1, L, C) of the frame, label_map (H', W') int64 at input size."""
        id_emb = self._id_embedding(label_map)
        self.lstt_output, self.pending, memory = self.network.LSTT(tokens, None, None, size_2d, id_emb=id_emb)
        if self.long_term is None:
            self.long_term = memory
        else:
            self.long_term = _prepend_frame(self.long_term, memory, tokens.shape[1], self.max_len_long_term)
        self.short_term = memory
        self.last_mem_step = self.frame_step
        self.object_count = object_count

    def propagate(self, tokens, size_2d):
        """Matches the frame tokens (1, L, C) against memory; the result waits for decode/update."""
        self.frame_step += 1
        self.lstt_output, self.pending, _ = self.network.LSTT(tokens, self.long_term, self.short_term, size_2d)

    def decode(self, adapted, size_2d):
        """Logits (1, 11, H'/4, W'/4) of the last propagated frame; unused identities masked.

        adapted: the decoder's projections of the frame's encoder features (shared by all groups).
        """
        logits = self.network.decode(self.lstt_output, adapted, size_2d)
        logits[:, self.object_count + 1 :] = _MASKED_LOGIT[logits.dtype]
        return logits

    def update_memory(self, label_map):
        """Stores the last propagated frame with its mask label_map (H', W') int64 at input size."""
        id_emb = self._id_embedding(label_map)
        memory = [layer.fuse_identity(p, id_emb) for layer, p in zip(self.network.LSTT.layers, self.pending)]
        self.short_term = memory
        if self.frame_step - self.last_mem_step >= self.long_term_mem_gap:
            tokens = self.pending[0].key.shape[1]
            self.long_term = _prepend_frame(self.long_term, memory, tokens, self.max_len_long_term)
            self.last_mem_step = self.frame_step


def split_label_map(label_map, engine_count):
    """(H, W) int64 ids -> one map per engine with its ids renumbered 1..10 (others 0)."""
    if engine_count == 1:
        return [label_map]
    parts = []
    for index in range(engine_count):
        first = index * MAX_OBJECTS_PER_ENGINE + 1
        inside = (label_map >= first) & (label_map < first + MAX_OBJECTS_PER_ENGINE)
        parts.append(torch.where(inside, label_map - first + 1, torch.zeros_like(label_map)))
    return parts


def split_object_count(object_count, engine_count):
    """Object count of each engine when the ids 1..object_count are split over engine_count engines."""
    if engine_count == 1:
        return [object_count]
    counts = [MAX_OBJECTS_PER_ENGINE] * engine_count
    if object_count % MAX_OBJECTS_PER_ENGINE:
        counts[-1] = object_count % MAX_OBJECTS_PER_ENGINE
    return counts


class MultiObjectEngine:
    """Runs the object-group engines on shared image features (one encoder pass per frame)."""

    def __init__(self, network, long_term_mem_gap, max_len_long_term):
        self.network = network
        self.long_term_mem_gap = long_term_mem_gap
        self.max_len_long_term = max_len_long_term
        self.engines = []
        self.object_count = 0
        self.features = None
        self.tokens = None
        self.size_2d = None

    def _encode(self, image):
        self.features, self.tokens, self.size_2d = self.network.encode_image(image)

    def add_reference(self, image, label_map, object_count, same_frame):
        """image: (1, 3, H', W') or None with same_frame; label_map: (H', W') int64; object_count:
        largest id so far.

        same_frame: the engines last saw this very frame (tracked or referenced), so its features
        and propagation are reused; otherwise existing engines first propagate the new frame.
        """
        self.object_count = object_count
        engine_count = max(math.ceil(object_count / MAX_OBJECTS_PER_ENGINE), 1)
        if not same_frame:
            self.propagate(image)
        tokens = self.tokens
        while len(self.engines) < engine_count:
            self.engines.append(ObjectGroupEngine(self.network, self.long_term_mem_gap, self.max_len_long_term))
        parts = split_label_map(label_map, engine_count)
        counts = split_object_count(object_count, engine_count)
        for engine, part, count in zip(self.engines, parts, counts):
            if engine.object_count is None or engine.object_count < count:
                engine.add_reference(tokens, self.size_2d, part, count)
            else:
                engine.update_memory(part)

    def propagate(self, image):
        """image: (1, 3, H', W') -> every engine matches it against its memory."""
        self._encode(image)
        for engine in self.engines:
            engine.propagate(self.tokens, self.size_2d)

    def decode(self):
        """Per-engine logits of the last propagated frame: list of (1, 11, H'/4, W'/4)."""
        adapted = self.network.decoder.adapt(self.features)
        return [engine.decode(adapted, self.size_2d) for engine in self.engines]

    def update_memory(self, label_map):
        """label_map: (H', W') int64 ids of the last propagated frame at input size."""
        parts = split_label_map(label_map, len(self.engines))
        for engine, part in zip(self.engines, parts):
            engine.update_memory(part)
