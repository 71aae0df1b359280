"""SAM-Track: ``segment_and_track(frames, prompts, mode, **options)``, one label map per frame.

Modes
-----
- ``"interactive"``: the prompts (Click, Box, Stroke, Mask, Text) on their key frames define the objects.
- ``"automatic"``: every ``sam_gap`` frames (0, sam_gap, 2 sam_gap, ...) SAM segments everything (or, with
  ``auto_text="person. car"``, Grounding-DINO finds boxes that SAM segments) and CMR
  (:mod:`samtrack_ops.cmr`) keeps the segments the tracker does not follow yet as new objects.
- ``"fusion"``: both.

How a video is processed
------------------------
1. Frames up to the last prompted frame K are decoded and kept on disk (:class:`~samtrack_ops.video.SpillStore`);
   on each prompted frame the prompts become objects (:mod:`samtrack_ops.keyframes`). Prompt objects take
   IDs 1, 2, ... in frame and prompt order; automatically found objects take the IDs after them.
2. Backward passes: the new objects of each prompted frame k > 0 are tracked backward over frames k-1 .. 0;
   their label maps go to disk.
3. The forward pass streams the video (frames <= K from disk, the rest straight from the decoder). On a key
   frame (prompts, or an automatic frame) it does what the seed's automatic loop does: track without a memory
   update, put the key frame's objects over the tracked map (a correction first removes the object's tracked
   pixels, so the object is re-anchored from there on), add CMR's new objects, and add the result as a
   reference. Other frames are tracked with a memory update.
4. Each frame's result merges the forward pass with the backward passes that cover it
   (:func:`~samtrack_ops.passes.merge_passes`: the pass anchored nearer in time wins). CMR compares SAM's
   segments with this merged map, so objects known from a backward pass are not found again.

Every frame is decoded once; memory holds a fixed number of frames and the tracker's bounded memory, so it
does not grow with the video's length (disk use does, for frames <= K and the backward label maps).

Scores: on a key frame SAM's predicted IoU of the object's mask (1.0 for given masks and segment-everything
segments), elsewhere the tracker's confidence (:mod:`samtrack_ops.passes`).
"""

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Callable, NamedTuple, Optional

import numpy as np

from samtrack_ops.cmr import find_new_objects, label_map_dtype
from samtrack_ops.keyframes import KeyFramePrompter, paint
from samtrack_ops.passes import PassResult, TrackPass, merge_passes
from samtrack_ops.prompts import OBJECT_PROMPTS, PromptError, Text
from samtrack_ops.registry import ObjectRegistry
from samtrack_ops.video import FrameSource, SpillStore, VideoError, check_missing_frames_policy, open_frames

MODES = ("interactive", "automatic", "fusion")
STAGES = ("decode", "SAM embedding", "everything-generation", "Grounding-DINO", "tracking", "CMR")


class ObjectInfo(NamedTuple):
    """An object visible on a frame: its track ID, label, score (see the module docstring) and provenance
    on this frame ("prompted", "discovered", "corrected" on its key frame, else "tracked")."""

    id: int
    label: str
    score: float
    provenance: str = "tracked"


class FrameResult(NamedTuple):
    """frame_index (0-based), label_map (H, W) uint8 (uint16 when max_obj_num > 255), objects sorted by ID."""

    frame_index: int
    label_map: np.ndarray
    objects: list


@dataclass
class PipelineOptions:
    """Every option of segment_and_track (defaults as the seed where it has them).

    timings: a dict that receives the seconds spent per stage (:data:`STAGES`);
    progress: called as progress(frame_index, frame_count or None) after each frame;
    on_stage: called with a short message (e.g. "loading SAM (vit_b)") as each stage starts;
    frame_range: (start, stop) 0-based frame indices, stop excluded or None (to the end): only these frames
    are processed; prompts must lie inside, results keep the video's frame indices.
    on_missing_frames: "fail" or "warn" when a video decodes to fewer frames than it says it holds
    (see :mod:`samtrack_ops.video`).
    """

    sam_gap: int = 10
    min_area: int = 200
    max_obj_num: int = 255
    min_new_obj_iou: float = 0.8
    auto_text: Optional[str] = None
    generator_options: dict = field(default_factory=dict)
    seed_exact: bool = False
    box_threshold: float = 0.25
    text_threshold: float = 0.25
    long_term_mem_gap: Optional[int] = None
    max_len_long_term: Optional[int] = None
    progress: Optional[Callable] = None
    on_stage: Optional[Callable] = None
    frame_range: Optional[tuple] = None
    timings: Optional[dict] = None
    on_missing_frames: str = "fail"
    sam_model: str = "vit_b"
    tracker_model: str = "r50_deaotl"
    detector_model: str = "groundingdino_swint_ogc"
    device: Optional[str] = None
    sam_checkpoint: Optional[str] = None
    tracker_checkpoint: Optional[str] = None
    detector_checkpoint: Optional[str] = None
    text_encoder_path: Optional[str] = None
    segmentor: object = None
    tracker: object = None
    detector: object = None

    @classmethod
    def parse(cls, options):
        known = {option.name for option in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; segment_and_track takes {', '.join(sorted(known))}")
        parsed = cls(**options)
        parsed.check()
        return parsed

    def check(self):
        for name in ("sam_gap", "min_area", "max_obj_num"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < (0 if name == "min_area" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.max_obj_num > 65535:
            raise ValueError(f"max_obj_num must be <= 65535 (uint16 label maps), got {self.max_obj_num}")
        check_missing_frames_policy(self.on_missing_frames)
        if not 0 <= self.min_new_obj_iou <= 1:
            raise ValueError(f"min_new_obj_iou is an area ratio in [0, 1], got {self.min_new_obj_iou!r}")
        if self.frame_range is not None:
            self.frame_range = check_frame_range(self.frame_range)
        if self.tracker is not None and (self.long_term_mem_gap, self.max_len_long_term) != (None, None):
            raise ValueError("long_term_mem_gap/max_len_long_term configure a tracker the pipeline builds; "
                             "pass them to load_tracker for a prebuilt tracker=")

    def announce(self, message):
        if self.on_stage is not None:
            self.on_stage(message)

    @property
    def memory_options(self):
        return {name: value for name, value in (("long_term_mem_gap", self.long_term_mem_gap),
                                                 ("max_len_long_term", self.max_len_long_term)) if value is not None}


class Models:
    """The segmentor, detector and tracker of a run, each built on first use unless given prebuilt."""

    def __init__(self, options):
        self.options = options
        self._segmentor, self._detector, self._tracker = options.segmentor, options.detector, options.tracker

    @property
    def mask_prompt_as_given(self):
        """Mask prompts skip SAM unless a segmentor was given (it then decides, see Segmentor.refine_masks)."""
        return self._segmentor is None

    @property
    def segmentor(self):
        if self._segmentor is None:
            from samtrack_ops.segmentor import load_segmentor

            options = self.options
            options.announce(f"loading SAM ({options.sam_model})")
            self._segmentor = load_segmentor(options.sam_model, options.sam_checkpoint, options.device)
        return self._segmentor

    @property
    def detector(self):
        if self._detector is None:
            from samtrack_ops.detector import load_detector

            options = self.options
            options.announce(f"loading Grounding-DINO ({options.detector_model})")
            self._detector = load_detector(options.detector_model, options.detector_checkpoint,
                                           options.text_encoder_path, options.device)
        return self._detector

    @property
    def tracker(self):
        if self._tracker is None:
            from samtrack_ops.tracker import load_tracker

            options = self.options
            options.announce(f"loading the DeAOT tracker ({options.tracker_model})")
            self._tracker = load_tracker(options.tracker_model, options.tracker_checkpoint, options.device,
                                         **options.memory_options)
        return self._tracker


class Stopwatch:
    """Adds the seconds spent in each named stage to a dict (or does nothing without one)."""

    def __init__(self, timings):
        self.timings = timings

    @contextmanager
    def __call__(self, stage):
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.timings is not None:
                self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def frames(self, iterable):
        """The frames of iterable, with the time to produce each counted as "decode"."""
        iterator = iter(iterable)
        while True:
            with self("decode"):
                frame = next(iterator, None)
            if frame is None:
                return
            yield frame


def segment_and_track(frames, prompts=(), mode="interactive", **options):
    """Segment and track objects through a video; yields one FrameResult per frame, in order.

    frames: a video path, a folder of images, or an iterable of (H, W, 3) uint8 RGB arrays.
    prompts: Click / Box / Stroke / Mask / Text objects from :mod:`samtrack_ops.prompts` (any frame).
    mode: "interactive", "automatic" or "fusion" (see the module docstring).
    options: see :class:`PipelineOptions`. Bad options, prompts or videos raise here, before any work.
    """
    parsed = PipelineOptions.parse(options)
    prompts = _checked_prompts(prompts, mode, parsed)
    source = open_frames(frames, parsed.on_missing_frames)
    if parsed.frame_range is None:
        _check_prompts_before(prompts, source.frame_count, "the video has {count} frames (0..{last})")
        return SamTrackRun(source, prompts, mode, parsed).results()
    start, stop = parsed.frame_range
    source = _frame_window(source, start, stop)
    early = [prompt for prompt in prompts if prompt.frame < start]
    if early:
        raise PromptError(f"{type(early[0]).__name__} prompt on frame {early[0].frame}, before frame_range's "
                          f"first frame {start}")
    _check_prompts_before(prompts, None if source.frame_count is None else start + source.frame_count,
                          f"frame_range ({start}, {stop}) of this video ends at frame {{last}}")
    shifted = [replace(prompt, frame=prompt.frame - start) for prompt in prompts]
    results = SamTrackRun(source, shifted, mode, parsed, first_frame=start).results()
    return (result._replace(frame_index=result.frame_index + start) for result in results)


def _check_prompts_before(prompts, count, what):
    """PromptError unless every prompt's frame is below ``count`` (None = unknown); what: "... {count} {last}"."""
    if count is not None and prompts and max(p.frame for p in prompts) >= count:
        late = max(prompts, key=lambda p: p.frame)
        raise PromptError(f"{type(late).__name__} prompt on frame {late.frame}, but "
                          + what.format(count=count, last=count - 1))


def check_frame_range(frame_range):
    """``(start, stop)`` as ints, 0 <= start < stop, stop None = to the end; ValueError otherwise."""
    try:
        start, stop = frame_range
    except (TypeError, ValueError):
        start = stop = None
    valid = (isinstance(start, (int, np.integer)) and start >= 0
             and (stop is None or isinstance(stop, (int, np.integer)) and stop > start))
    if not valid:
        raise ValueError(f"frame_range must be (start, stop) with 0 <= start < stop (stop None = to the end), "
                         f"got {frame_range!r}")
    return int(start), None if stop is None else int(stop)


def _frame_window(source, start, stop):
    """A FrameSource of the frames start..stop-1 of ``source`` (the ones before start are decoded and dropped)."""
    count = source.frame_count
    if count is not None and start >= count:
        raise VideoError(f"frame_range starts at frame {start}, but {source.description} has {count} frames "
                         f"(0..{count - 1})")
    if count is not None:
        count = min(count, stop or count) - start
    description = f"frames {start}..{'end' if stop is None else stop - 1} of {source.description}"
    return FrameSource(itertools.islice(source, start, stop), count, description)


def _checked_prompts(prompts, mode, options):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    prompts = list(prompts)
    for prompt in prompts:
        if not isinstance(prompt, (*OBJECT_PROMPTS, Text)):
            raise PromptError(f"prompts must be Click, Box, Stroke, Mask or Text objects, got {type(prompt).__name__}")
    if mode == "automatic" and prompts:
        raise ValueError("automatic mode takes no prompts; use mode='fusion' to combine prompts with "
                         "automatic discovery")
    if mode == "interactive" and not prompts:
        raise ValueError("interactive mode needs prompts; use mode='automatic' to find objects without them")
    if options.seed_exact and (mode != "automatic" or options.auto_text is not None):
        raise ValueError("seed_exact reproduces the seed's segment-everything loop: use it with mode='automatic' "
                         "and no auto_text")
    if mode == "interactive" and options.auto_text is not None:
        raise ValueError("auto_text drives automatic discovery; use mode='automatic' or 'fusion' with it")
    return prompts


class SamTrackRun:
    """One video through the pipeline (see the module docstring for the steps)."""

    def __init__(self, source, prompts, mode, options, first_frame=0):
        self.source = source
        self.first_frame = first_frame  # of the video, for messages: frame indices here start at 0
        self.options = options
        self.automatic = mode in ("automatic", "fusion")
        self.prompts_by_frame = {}
        for prompt in prompts:
            self.prompts_by_frame.setdefault(prompt.frame, []).append(prompt)
        self.last_prompted = max(self.prompts_by_frame, default=-1)
        self.models = Models(options)
        self.stopwatch = Stopwatch(options.timings)
        self.registry = ObjectRegistry(options.max_obj_num)
        self.prompter = KeyFramePrompter(self.models, self.stopwatch, self.registry)
        self.dtype = label_map_dtype(options.max_obj_num)
        self.frame_size = None

    def results(self):
        """Generator of FrameResults; the temporary disk store lives as long as the generator."""
        with SpillStore() as store:
            frames = self.stopwatch.frames(self.source)
            key_objects = self._read_prompted_frames(frames, store)
            backward_anchors = [k for k, objects in key_objects.items()
                                if k > 0 and any(not o.correction for o in objects)]
            for anchor in sorted(backward_anchors):
                self._track_backward(anchor, key_objects[anchor], store)
            replayed = (store.get(f"frame-{index}") for index in range(self.last_prompted + 1))
            self.options.announce(self._forward_stage())
            forward = ForwardPass(self, key_objects)
            for index, frame in enumerate(itertools.chain(replayed, frames)):
                merged = forward.step(index, frame, self._backward_results(index, backward_anchors, store))
                yield self._frame_result(index, *merged, forward.provenance)
                if self.options.progress is not None:
                    count = self.source.frame_count
                    self.options.progress(index, None if count is None else max(count, index + 1))

    def _read_prompted_frames(self, frames, store):
        """Decodes frames 0..K onto disk and turns their prompts into KeyObjects: {frame index: [KeyObject]}."""
        key_objects = {}
        for index in range(self.last_prompted + 1):
            frame = next(frames, None)
            if frame is None:
                raise PromptError(f"a prompt is on frame {self.last_prompted}, but the video has only {index} "
                                  f"frames (0..{index - 1})")
            self.check_frame_size(frame)
            store.put(f"frame-{index}", frame)
            if index in self.prompts_by_frame:
                self.options.announce(self._key_frame_stage(index))
                key_objects[index] = self.prompter.objects(index, frame, self.prompts_by_frame[index])
        return key_objects

    def _key_frame_stage(self, index):
        prompts = self.prompts_by_frame[index]
        models = "Grounding-DINO + SAM" if any(isinstance(p, Text) for p in prompts) else "SAM"
        return (f"key frame index {self.first_frame + index}: {models} embedding and masks for "
                f"{len(prompts)} prompt(s)")

    def _forward_stage(self):
        stage = f"tracking forward from frame index {self.first_frame}"
        if not self.automatic:
            return stage
        finder = f"Grounding-DINO '{self.options.auto_text}'" if self.options.auto_text else "SAM segment-everything"
        return f"{stage}, looking for new objects every {self.options.sam_gap} frames ({finder})"

    def check_frame_size(self, frame):
        """Remembers the first frame's (H, W) and checks every prompt against it."""
        if self.frame_size is None:
            self.frame_size = frame.shape[:2]
            for prompts in self.prompts_by_frame.values():
                for prompt in prompts:
                    prompt.validate(self.frame_size)

    def _track_backward(self, anchor, key_objects, store):
        """Tracks the objects new on frame ``anchor`` over frames anchor-1 .. 0; label maps and scores to disk."""
        new_objects = [key_object for key_object in key_objects if not key_object.correction]
        self.options.announce(f"tracking backward from frame index {self.first_frame + anchor} "
                              f"to {self.first_frame}")
        backward = TrackPass(self.models.tracker, self.dtype)
        backward.add_reference(anchor, store.get(f"frame-{anchor}"), paint(new_objects, self.frame_size, self.dtype))
        for index in range(anchor - 1, -1, -1):
            with self.stopwatch("tracking"):
                label_map, scores = backward.track(store.get(f"frame-{index}"))
            store.put(f"backward-{anchor}-{index}-map", label_map)
            store.put(f"backward-{anchor}-{index}-scores", np.array(list(scores.items()), dtype=np.float64))

    def _backward_results(self, index, anchors, store):
        results = []
        for anchor in anchors:
            if anchor > index:
                scores = store.get(f"backward-{anchor}-{index}-scores").reshape(-1, 2)
                results.append(PassResult(store.get(f"backward-{anchor}-{index}-map"),
                                          {int(i): float(s) for i, s in scores}, anchor))
        return results

    def _frame_result(self, index, label_map, scores, provenance):
        objects = [ObjectInfo(object_id, self.registry.label(object_id), scores[object_id],
                              provenance.get(object_id, "tracked")) for object_id in sorted(scores)]
        return FrameResult(index, label_map, objects)


class ForwardPass:
    """The forward pass: key frames (prompts, automatic discovery with CMR) and tracking in between."""

    def __init__(self, run, key_objects):
        self.run = run
        self.key_objects = key_objects
        self.track_pass = TrackPass(run.models.tracker, run.dtype)
        self.backward = []
        self.provenance = {}  # {ID: provenance} of the objects set on the current key frame

    def step(self, index, frame, backward_results):
        """(label_map (H, W), {ID: score}) on frame ``index``: this pass merged with ``backward_results``."""
        self.run.check_frame_size(frame)
        self.backward = backward_results
        self.provenance = {}
        return self._merged(index, self._forward(index, frame))

    def _forward(self, index, frame):
        """PassResult of the forward pass alone on frame ``index``."""
        options = self.run.options
        key_objects = self.key_objects.get(index, [])
        automatic = self.run.automatic and index % options.sam_gap == 0
        if not key_objects and not automatic:
            return self._tracked(index, frame, update_memory=True)
        label_map, scores = self._tracked(index, frame, update_memory=False)[:2]
        label_map, scores = self._apply_key_objects(label_map, scores, key_objects)
        if automatic:
            label_map, scores = self._discover(index, frame, label_map, scores)
        if label_map.any():
            with self.run.stopwatch("tracking"):
                self.track_pass.add_reference(index, frame, label_map)
        return PassResult(label_map, scores, index)

    def _merged(self, index, forward_result):
        return merge_passes(index, [forward_result] + self.backward, self.run.frame_size, self.run.dtype)

    def _tracked(self, index, frame, update_memory):
        if not self.track_pass.active:
            return PassResult(np.zeros(frame.shape[:2], self.run.dtype), {}, index)
        with self.run.stopwatch("tracking"):
            label_map, scores = self.track_pass.track(frame, update_memory=update_memory)
        return PassResult(label_map, scores, self.track_pass.anchor)

    def _apply_key_objects(self, label_map, scores, key_objects):
        for key_object in key_objects:
            if key_object.correction:
                label_map[label_map == key_object.id] = 0
            label_map[key_object.mask] = key_object.id
            scores[key_object.id] = key_object.score
            self.provenance[key_object.id] = "corrected" if key_object.correction else "prompted"
        return label_map, _visible(label_map, scores)

    def _discover(self, index, frame, label_map, scores):
        """Adds CMR's new objects of SAM's segments (everything, or auto_text boxes) to label_map."""
        segments, segment_labels, segment_scores = self._segments(index, frame)
        known = self._merged(index, PassResult(label_map, scores, index))[0]
        registry = self.run.registry
        options = self.run.options
        with self.run.stopwatch("CMR"):
            new_objects = find_new_objects(known, segments, self._first_new_id(), options.min_area,
                                           options.min_new_obj_iou, options.max_obj_num)
        found = np.unique(np.stack([new_objects, segments]).reshape(2, -1)[:, new_objects.ravel() != 0], axis=1)
        for object_id, segment_id in found.T.tolist():
            if object_id >= registry.next_id:  # else seed_exact reuses the highest ID (see _first_new_id)
                registry.claim(object_id, index, segment_labels.get(segment_id), "discovered")
                self.provenance[object_id] = "discovered"
            scores[object_id] = segment_scores.get(segment_id, 1.0)
        label_map = np.where(new_objects != 0, new_objects, label_map).astype(self.run.dtype)
        return label_map, scores

    def _first_new_id(self):
        """The seed (seed_exact) numbers a later key frame's new objects from the highest ID so far, reusing it."""
        next_id = self.run.registry.next_id
        return next_id - 1 if self.run.options.seed_exact and self.track_pass.active else next_id

    def _segments(self, index, frame):
        """SAM's segment map (H, W) of frame, with {segment ID: label} and {segment ID: score}."""
        options = self.run.options
        models = self.run.models
        if options.auto_text is None:
            with self.run.stopwatch("everything-generation"):
                segments = models.segmentor.segment_everything(
                    frame, min_area=options.min_area, seed_exact=options.seed_exact,
                    max_obj_num=options.max_obj_num, **options.generator_options)
            return segments, {}, {}
        with self.run.stopwatch("Grounding-DINO"):
            detections = models.detector.detect(frame, options.auto_text, box_threshold=options.box_threshold,
                                                text_threshold=options.text_threshold)
        found = self.run.prompter.segment_boxes(frame, detections) if detections else []
        segments = np.zeros(frame.shape[:2], dtype=np.uint16)
        for segment_id, (mask, _, _) in enumerate(found, start=1):
            segments[mask] = segment_id
        labels = {segment_id: label for segment_id, (_, label, _) in enumerate(found, start=1)}
        sam_scores = {segment_id: score for segment_id, (_, _, score) in enumerate(found, start=1)}
        return segments, labels, sam_scores


def _visible(label_map, scores):
    present = set(np.unique(label_map).tolist())
    return {object_id: score for object_id, score in scores.items() if object_id in present}
