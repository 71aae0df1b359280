"""SAM segmentor: object masks from clicks, boxes, strokes or masks, and "segment everything".

One :class:`Segmentor` wraps one ``segment_anything`` model. The image embedding (the expensive part) is computed
once per frame by :meth:`Segmentor.set_frame` and shared by every prompt on that frame. Embeddings are kept in a
small LRU keyed by the frame's content (a frame source may reuse one buffer for every frame), so returning to a
frame costs nothing; :meth:`Segmentor.prefetch` computes one ahead of the first click. One Segmentor may serve
several threads: each thread has its own current frame, and SAM runs one call at a time.

Behaviour follows the Segment-and-Track-Anything seed:

- clicks and boxes run SAM twice: a first multi-mask pass, then a second pass that feeds the best first-pass
  low-resolution logits back as a mask prompt; the mask with the best predicted IoU wins (``refine=False``
  keeps only the first pass);
- a stroke becomes its bounding box (``Stroke.use_points=True`` adds stroke points as positive clicks);
- a :class:`~samtrack_ops.prompts.Mask` prompt *is* the object's mask: it is returned as given with score 1.0.
  ``refine_masks=True`` instead hands it to SAM (its box plus the mask as low-resolution logits) and returns
  SAM's mask;
- "segment everything" uses SAM's automatic mask generator with the seed's settings
  (:data:`SEED_GENERATOR_OPTIONS`), every one overridable.

Frames are HxWx3 uint8 RGB arrays; masks are HxW bool.
"""

import hashlib
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry

from samtrack_ops import models
from samtrack_ops.prompts import Box, Click, Mask, PromptError, Stroke
from samtrack_ops.video import check_frame

SAM_MODELS = models.SAM_MODELS

SEED_GENERATOR_OPTIONS = {
    "points_per_side": 16,
    "pred_iou_thresh": 0.8,
    "stability_score_thresh": 0.9,
    "crop_n_layers": 1,
    "crop_n_points_downscale_factor": 2,
    "min_mask_region_area": 200,
}

MAX_STROKE_POINTS = 16
"""A stroke with ``use_points=True`` gives SAM at most this many positive clicks, evenly spaced along it."""

EMBEDDING_CACHE_SIZE = 4
"""Frame embeddings a Segmentor keeps (about 4 MiB each: 256x64x64 float32), least recently used dropped first."""

MASK_PROMPT_LOGIT = 10.0
"""Magnitude of the low-resolution logits a refined Mask prompt is turned into (inside +, outside -)."""

BOX_BATCH_SIZE = 32
"""Boxes per SAM pass in predict_boxes: bounds memory (Grounding-DINO can return up to 900 boxes)."""


def load_segmentor(sam_model="vit_b", checkpoint=None, device=None, **segmentor_options):
    """Build SAM ``sam_model`` ("vit_b", "vit_l" or "vit_h") with the weights of ``checkpoint``.

    ``checkpoint`` is a path, or None for the registry file ``sam_<sam_model>`` (see
    :func:`samtrack_ops.models.resolve_checkpoint`). ``segmentor_options`` go to :class:`Segmentor`.
    """
    if sam_model not in SAM_MODELS:
        raise ValueError(f"unknown SAM model {sam_model!r}; choose one of {', '.join(SAM_MODELS)}")
    path = models.resolve_checkpoint(f"sam_{sam_model}", checkpoint)
    sam = sam_model_registry[sam_model]()
    state_dict = models.load_checkpoint(path)
    models.check_state_dict(state_dict, {key: value.shape for key, value in sam.state_dict().items()}, path,
                            f"SAM {sam_model}")
    sam.load_state_dict(state_dict)
    return Segmentor(sam, device=device, **segmentor_options)


class FrameEmbedding(NamedTuple):
    """SAM's image embedding of one frame: ``features`` 1xCx64x64, ``original_size`` (H, W) of the frame,
    ``input_size`` (h, w) of the frame resized for the encoder."""

    features: torch.Tensor
    original_size: tuple
    input_size: tuple


def frame_key(frame):
    """Cache key of a frame's embedding: its shape and a digest of its pixels (HxWx3 uint8)."""
    digest = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).hexdigest()
    return frame.shape, digest


class Segmentor:
    """Masks of one frame at a time from a SAM model (``segment_anything.modeling.Sam``).

    ``device`` None picks cuda when available, else cpu. ``refine`` runs the seed's second pass for clicks,
    boxes and strokes; ``multimask`` lets SAM propose three masks per pass (the best-scored is kept);
    ``refine_masks`` sends Mask prompts through SAM instead of returning them as given. ``embedding_cache_size``
    frame embeddings are kept (least recently used dropped first).

    Thread-safe: the current frame (:meth:`set_frame`) is per thread, and calls into SAM are serialised.
    """

    def __init__(self, sam, device=None, refine=True, multimask=True, refine_masks=False,
                 embedding_cache_size=EMBEDDING_CACHE_SIZE):
        self.sam = sam.to(models.resolve_device(device)).eval()
        self.predictor = SamPredictor(self.sam)
        self.refine = refine
        self.multimask = multimask
        self.refine_masks = refine_masks
        self.embedding_cache_size = max(1, embedding_cache_size)
        self._embeddings = OrderedDict()  # frame_key -> FrameEmbedding, most recently used last
        self._lock = threading.RLock()
        self._current = threading.local()

    @property
    def device(self):
        return self.predictor.device

    def set_frame(self, frame):
        """Make ``frame`` (HxWx3 uint8 RGB) this thread's current frame, computing its image embedding unless a
        frame with the same pixels is in the cache."""
        self._current.embedding = self.prefetch(frame)

    def prefetch(self, frame):
        """The :class:`FrameEmbedding` of ``frame``, computed now unless cached; the current frame is unchanged.

        Call it when a user opens a frame (e.g. from a background thread) so that the first click only runs
        SAM's prompt encoder and mask decoder.
        """
        check_frame(frame)
        key = frame_key(frame)
        with self._lock:
            embedding = self._embeddings.get(key)
            if embedding is None:
                embedding = self._embed(frame)
                self._embeddings[key] = embedding
                while len(self._embeddings) > self.embedding_cache_size:
                    self._embeddings.popitem(last=False)
            self._embeddings.move_to_end(key)
            return embedding

    def is_cached(self, frame):
        """Whether the embedding of ``frame`` is in the cache (a click on it runs only the mask decoder)."""
        with self._lock:
            return frame_key(frame) in self._embeddings

    def _embed(self, frame):
        self.predictor.set_image(frame, image_format="RGB")
        return FrameEmbedding(self.predictor.features, tuple(self.predictor.original_size),
                              tuple(self.predictor.input_size))

    def _embedding(self):
        embedding = getattr(self._current, "embedding", None)
        if embedding is None:
            raise RuntimeError("no frame set: call Segmentor.set_frame(frame) before predicting")
        return embedding

    def _use_current_embedding(self):
        """Point SAM's predictor at this thread's current frame (call with the lock held)."""
        embedding = self._embedding()
        predictor = self.predictor
        predictor.features, predictor.original_size, predictor.input_size = embedding
        predictor.is_image_set = True

    @property
    def frame_size(self):
        """(H, W) of this thread's current frame."""
        return self._embedding().original_size

    def predict(self, prompt):
        """Mask of one object on the current frame: ``(mask HxW bool, score float)``.

        ``prompt`` is a Click, Box, Stroke or Mask (see the module docstring for how each is used); it must
        lie inside the frame.
        """
        if not isinstance(prompt, (Click, Box, Stroke, Mask)):
            raise PromptError(
                f"the segmentor takes Click, Box, Stroke or Mask prompts, got {type(prompt).__name__}; "
                "text prompts go through the detector first"
            )
        prompt.validate(self.frame_size)
        with self._lock:
            self._use_current_embedding()
            if isinstance(prompt, Mask):
                return self._predict_mask(prompt.mask)
            masks, scores = self._predict_batch(*_sam_inputs(prompt), None)
        return masks[0], scores[0]

    def predict_boxes(self, boxes_xyxy):
        """One mask per box on the current frame, in batches of BOX_BATCH_SIZE: ``[(mask HxW bool, score float), ...]``.

        ``boxes_xyxy`` is Nx4 pixel boxes (x0, y0, x1, y1) inside the frame.
        """
        boxes = [Box(frame=0, box_xyxy=box) for box in np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)]
        for box in boxes:
            box.validate(self.frame_size)
        results = []
        with self._lock:
            self._use_current_embedding()
            for start in range(0, len(boxes), BOX_BATCH_SIZE):
                batch = np.stack([box.box_xyxy for box in boxes[start:start + BOX_BATCH_SIZE]])
                results.extend(zip(*self._predict_batch(None, None, batch, None)))
        return results

    def segment_everything(self, frame, min_area=200, seed_exact=False, max_obj_num=255, **generator_options):
        """Segment every object of ``frame``: HxW uint16 map of segment IDs 1..K (0 = nothing).

        ``generator_options`` override :data:`SEED_GENERATOR_OPTIONS` (any argument of
        ``segment_anything.SamAutomaticMaskGenerator``). By default the generator sees the frame as RGB (what
        SAM was trained on) and masks are painted largest first, so a smaller mask stays visible over a larger
        one; segments left with fewer than ``min_area`` visible pixels are dropped and the rest numbered 1..K
        from the top-left. ``seed_exact=True`` gives the seed's map instead (:func:`_seed_segments`).
        """
        check_frame(frame)
        generator = _MaskGenerator(self.sam, **{**SEED_GENERATOR_OPTIONS, **generator_options})
        if seed_exact:
            return _seed_segments(generator.generate(frame[:, :, ::-1]), frame.shape[:2], min_area, max_obj_num)
        annotations = sorted(generator.generate(frame), key=lambda annotation: -annotation["area"])
        painted = np.zeros(frame.shape[:2], dtype=np.int64)
        for index, annotation in enumerate(annotations, start=1):
            painted[annotation["segmentation"]] = index
        return _renumber_segments(painted, min_area)

    def _predict_mask(self, mask):
        if not self.refine_masks:
            return mask.copy(), 1.0
        masks, scores = self._predict_batch(None, None, _mask_box(mask)[None], self._mask_to_logits(mask))
        return masks[0], scores[0]

    @torch.inference_mode()
    def _predict_batch(self, points, point_labels, boxes_xyxy, mask_logits):
        """Run SAM for B objects (one per box, or one for the points); returns B masks HxW bool and B scores.

        points: Nx2 pixel (x, y) shared by the batch, point_labels: N; boxes_xyxy: Bx4 pixels;
        mask_logits: Bx1x256x256 low-resolution logits or None.
        """
        size = self.frame_size
        coords = labels = boxes = None
        if points is not None:
            coords = self._as_tensor(self.predictor.transform.apply_coords(points, size))[None]
            labels = torch.as_tensor(point_labels, dtype=torch.int, device=self.device)[None]
        if boxes_xyxy is not None:
            boxes = self._as_tensor(self.predictor.transform.apply_boxes(boxes_xyxy, size))
            if coords is not None:
                coords, labels = coords.expand(len(boxes), -1, -1), labels.expand(len(boxes), -1)
        masks, scores, logits = self._best_of(coords, labels, boxes, mask_logits)
        if self.refine and mask_logits is None:
            masks, scores, _ = self._best_of(coords, labels, boxes, logits)
        return list(masks.cpu().numpy()), scores.cpu().tolist()

    def _best_of(self, coords, labels, boxes, mask_logits):
        """One SAM pass; per object the proposal with the best predicted IoU: B masks, B scores, Bx1x256x256."""
        masks, scores, logits = self.predictor.predict_torch(
            coords, labels, boxes=boxes, mask_input=mask_logits, multimask_output=self.multimask
        )
        best = scores.argmax(dim=1)
        rows = torch.arange(len(best), device=best.device)
        return masks[rows, best], scores[rows, best], logits[rows, best][:, None]

    def _mask_to_logits(self, mask):
        """HxW bool mask -> 1x1x256x256 logits in SAM's low-resolution frame (resized, padded, downsampled)."""
        resized_h, resized_w = self.predictor.input_size
        encoder_size = self.sam.image_encoder.img_size
        full = torch.as_tensor(mask, dtype=torch.float32, device=self.device)[None, None]
        resized = F.interpolate(full, (resized_h, resized_w), mode="bilinear", align_corners=False)
        padded = F.pad(resized, (0, encoder_size - resized_w, 0, encoder_size - resized_h))
        low_res = F.interpolate(padded, self.sam.prompt_encoder.mask_input_size, mode="area")
        return (low_res * 2 - 1) * MASK_PROMPT_LOGIT

    def _as_tensor(self, array):
        return torch.as_tensor(array, dtype=torch.float, device=self.device)


class _MaskGenerator(SamAutomaticMaskGenerator):
    """SAM's automatic mask generator, safe on frames where no crop keeps any mask.

    Upstream stores the crop boxes of an empty crop as a 1-D tensor, so with crops (``crop_n_layers`` > 0) a
    frame without a single kept mask fails in ``box_area``; the boxes are reshaped to Nx4 here.
    """

    def _process_crop(self, *args, **kwargs):
        data = super()._process_crop(*args, **kwargs)
        data["crop_boxes"] = data["crop_boxes"].reshape(-1, 4)
        return data


def _sam_inputs(prompt):
    """SAM's inputs for a Click, Box or Stroke: points Nx2 or None, point labels N or None, boxes 1x4 or None.

    A stroke is its bounding box, plus (``use_points``) at most MAX_STROKE_POINTS of its points, evenly spaced
    along it, as positive clicks.
    """
    if isinstance(prompt, Click):
        return prompt.points, prompt.labels, None
    if isinstance(prompt, Stroke) and prompt.use_points:
        keep = np.unique(np.linspace(0, len(prompt.points) - 1, MAX_STROKE_POINTS).round().astype(int))
        return prompt.points[keep], np.ones(len(keep), dtype=np.int64), prompt.box_xyxy[None]
    return None, None, prompt.box_xyxy[None]


def _mask_box(mask):
    """Tight pixel box (x0, y0, x1, y1) around the nonzero pixels of an HxW mask."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)


def _seed_segments(annotations, frame_size, min_area, max_obj_num):
    """The seed's segment map (H, W) uint16 of the generator's annotations, computed the way the seed does.

    The seed hands SAM the frame with its channels reversed (BGR; the caller does that), paints the masks with
    more than ``min_area`` pixels in the generator's order (later over earlier) into a uint8 map, numbering
    them 1, 2, ... in paint order (so a 256th mask wraps to 0 and a 257th to 1, as NumPy 1 did), then drops
    segments left with fewer than ``min_area`` visible pixels and renumbers the rest 1, 2, ... in paint
    order, keeping at most ``max_obj_num``.
    """
    painted = np.zeros(frame_size, dtype=np.uint8)
    large = [annotation for annotation in annotations if annotation["area"] > min_area]
    for index, annotation in enumerate(large, start=1):
        painted[annotation["segmentation"]] = index % 256
    ids, areas = np.unique(painted, return_counts=True)
    kept = ids[(ids > 0) & (areas >= min_area)][:max_obj_num]
    lookup = np.zeros(256, dtype=np.uint16)
    lookup[kept] = np.arange(1, len(kept) + 1, dtype=np.uint16)
    return lookup[painted]


def _renumber_segments(painted, min_area):
    """HxW map of arbitrary positive IDs -> uint16 IDs 1..K in order of first appearance, small ones dropped."""
    ids, first_seen, areas = np.unique(painted.ravel(), return_index=True, return_counts=True)
    keep = (ids > 0) & (areas >= min_area)
    lookup = np.zeros(ids.max() + 1, dtype=np.uint16)
    lookup[ids[keep][np.argsort(first_seen[keep])]] = np.arange(1, keep.sum() + 1, dtype=np.uint16)
    return lookup[painted]
