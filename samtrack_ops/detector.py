"""Grounding-DINO detector: a text prompt ("swan. water") to labelled boxes, which the segmentor turns into masks.

Behaviour follows the Segment-and-Track-Anything seed: the frame goes through Grounding-DINO's own evaluation
transform (shorter side 800, longer side at most 1333, ImageNet normalisation); a query becomes a detection when
its best token score exceeds ``box_threshold``; its phrase is made of the prompt's words whose score exceeds
``text_threshold``; boxes covering more than ``max_box_area_fraction`` of the frame are dropped (the seed's
box-size filter).

Two choices of this implementation: a detection whose tokens all stay under ``text_threshold`` is named by its
single best-scoring word (upstream would give it an empty phrase), and the special tokens ([CLS], [SEP], "."),
which name nothing, never enter a phrase. A prompt that finds nothing gives a warning and no detection.
"""

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from samtrack_ops import models
from samtrack_ops.tracker.transforms import IMAGE_MEAN as IMAGENET_MEAN  # the ImageNet statistics both models use
from samtrack_ops.tracker.transforms import IMAGE_STD as IMAGENET_STD
from samtrack_ops.video import check_frame

SHORTER_SIDE = 800
MAX_SIDE = 1333

KNOWN_EXTRA_KEYS = ("label_enc.weight", "bert.embeddings.position_ids")
"""Keys of the official checkpoints that the inference model does not have (a training-time label embedding and
a buffer newer ``transformers`` no longer saves); they are dropped before the strict key check."""


class Detection(NamedTuple):
    """One detected object: ``box_xyxy`` (4,) float pixels (x0, y0, x1, y1) inside the frame, its phrase and
    its score in [0, 1]."""

    box_xyxy: np.ndarray
    phrase: str
    score: float


def build_groundingdino(detector_model="groundingdino_swint_ogc", text_encoder="bert-base-uncased"):
    """Grounding-DINO ``detector_model`` (a registry name) with random weights, in evaluation mode.

    The architecture comes from the package's config file of that registry entry (SwinT-OGC or SwinB);
    ``text_encoder`` is a BERT folder or Hugging Face name (see :func:`samtrack_ops.models.resolve_text_encoder`).
    """
    import groundingdino
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    entry = models.get_entry(detector_model)
    if entry.family != "groundingdino":
        names = [name for name, other in models.CHECKPOINTS.items() if other.family == "groundingdino"]
        raise ValueError(f"{detector_model!r} is not a Grounding-DINO model; choose one of {names}")
    config = SLConfig.fromfile(str(Path(groundingdino.__file__).parent / "config" / entry.groundingdino_config))
    config.text_encoder_type = str(text_encoder)
    config.device = "cpu"
    config.use_checkpoint = config.use_transformer_ckpt = False  # gradient checkpointing: training only
    try:
        return build_model(config).eval()
    except OSError as error:  # transformers could neither find the folder nor download the name
        raise models.MissingCheckpointError(
            f"Grounding-DINO's text encoder {text_encoder!r} could not be loaded ({error}). On a machine without "
            f"network access, save bert-base-uncased elsewhere with transformers' save_pretrained (model and "
            f"tokenizer) and point text_encoder_path (CLI: --text-encoder) or env {models.TEXT_ENCODER_ENV} at "
            f"that folder.") from error


def load_detector(detector_model="groundingdino_swint_ogc", checkpoint=None, text_encoder_path=None, device=None,
                  **detector_options):
    """Grounding-DINO ``detector_model`` with the weights of ``checkpoint`` (path, or None for the registry file).

    The checkpoint is the official ``{"model": state_dict}`` file (a bare state dict and a ``module.`` prefix are
    accepted too); its keys and shapes must match the model. ``text_encoder_path`` is the local BERT folder
    (default: env SAMTRACK_TEXT_ENCODER, else "bert-base-uncased"). ``detector_options`` go to :class:`Detector`.
    """
    path = models.resolve_checkpoint(detector_model, checkpoint)
    model = build_groundingdino(detector_model, models.resolve_text_encoder(text_encoder_path))
    state_dict = _model_weights(models.load_checkpoint(path))
    expected = {key: value.shape for key, value in model.state_dict().items()}
    models.check_state_dict(state_dict, expected, path, f"Grounding-DINO {detector_model}")
    model.load_state_dict(state_dict)
    return Detector(model, device=device, **detector_options)


class Detector:
    """Text-prompted boxes from a Grounding-DINO model (as built by :func:`build_groundingdino`).

    ``device`` None picks cuda when available, else cpu. ``shorter_side`` / ``max_side`` set the input
    resize (the seed's 800 / 1333 by default).
    """

    def __init__(self, model, device=None, shorter_side=SHORTER_SIDE, max_side=MAX_SIDE):
        import groundingdino.datasets.transforms as T

        self.device = models.resolve_device(device)
        self.model = model.to(self.device).eval()
        self._transform = T.Compose([
            T.RandomResize([shorter_side], max_size=max_side),  # one size: a deterministic resize
            T.ToTensor(),
            T.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD)),
        ])

    def transform(self, frame):
        """HxWx3 uint8 RGB frame -> 3xH'xW' float tensor: resized (shorter side, capped longer side), normalised."""
        check_frame(frame)
        image, _ = self._transform(Image.fromarray(frame), None)
        return image

    @torch.inference_mode()
    def detect(self, frame, text, box_threshold=0.25, text_threshold=0.25, max_box_area_fraction=1.0):
        """Objects named by ``text`` in ``frame`` (HxWx3 uint8 RGB), best score first: ``[Detection, ...]``.

        ``text`` lists classes separated by dots ("person. car"). Boxes larger than ``max_box_area_fraction``
        of the frame are dropped. Finding nothing warns and returns [].
        """
        caption = _caption(text)
        for name, value in [("box_threshold", box_threshold), ("text_threshold", text_threshold),
                            ("max_box_area_fraction", max_box_area_fraction)]:
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        outputs = self.model(self.transform(frame)[None].to(self.device), captions=[caption])
        token_scores = outputs["pred_logits"][0].sigmoid().cpu()  # queries x max_text_len
        boxes = _to_pixel_xyxy(outputs["pred_boxes"][0].cpu(), frame.shape[:2])  # queries x 4
        scores = token_scores.max(dim=1).values
        keep = scores > box_threshold
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        too_large = keep & (areas > max_box_area_fraction * frame.shape[0] * frame.shape[1])
        keep &= ~too_large
        if not keep.any():
            warnings.warn(_nothing_found_message(text, box_threshold, int(too_large.sum()), max_box_area_fraction))
            return []
        word_positions, tokens = self._word_tokens(caption)
        order = [index for index in scores.argsort(descending=True).tolist() if keep[index]]
        return [
            Detection(boxes[index].numpy(), self._phrase(token_scores[index], word_positions, tokens,
                                                         text_threshold), float(scores[index]))
            for index in order
        ]

    def _word_tokens(self, caption):
        """Positions (tensor) and ids of the caption's tokens that are words (not [CLS], [SEP], '.', '?')."""
        token_ids = self.model.tokenizer(caption)["input_ids"][: self.model.max_text_len]
        special = set(self.model.specical_tokens)
        positions = [position for position, token in enumerate(token_ids) if token not in special]
        return torch.tensor(positions, dtype=torch.long), [token_ids[position] for position in positions]

    def _phrase(self, token_scores, word_positions, word_token_ids, text_threshold):
        """The words scoring above ``text_threshold`` (or the single best word), decoded: e.g. "black swan"."""
        word_scores = token_scores[word_positions]
        chosen = (word_scores > text_threshold).nonzero().flatten().tolist() or [int(word_scores.argmax())]
        return self.model.tokenizer.decode([word_token_ids[index] for index in chosen]).strip()


def _caption(text):
    """Grounding-DINO's caption form: lower case, stripped, ending with '.'."""
    if not isinstance(text, str) or not text.strip(" ."):
        raise ValueError(f"text prompt must name something, e.g. 'person. car'; got {text!r}")
    caption = text.lower().strip()
    return caption if caption.endswith(".") else caption + "."


def _to_pixel_xyxy(boxes_cxcywh, frame_size):
    """Qx4 relative (cx, cy, w, h) -> Qx4 pixel (x0, y0, x1, y1), clipped to the frame."""
    height, width = frame_size
    centre, size = boxes_cxcywh[:, :2], boxes_cxcywh[:, 2:]
    relative = torch.cat([centre - size / 2, centre + size / 2], dim=1).clamp(0, 1)
    return relative * torch.tensor([width, height, width, height], dtype=relative.dtype)


def _nothing_found_message(text, box_threshold, too_large, max_box_area_fraction):
    message = f"Grounding-DINO found nothing for {text!r} above box_threshold={box_threshold}"
    if too_large:
        message += f" ({too_large} boxes covered more than max_box_area_fraction={max_box_area_fraction} of the frame)"
    return message + "; lower box_threshold or rephrase the prompt."


def _model_weights(checkpoint):
    """The model state dict inside an official checkpoint, without ``module.`` prefixes or known extra keys."""
    state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state_dict, dict):
        return {}
    unprefixed = {key.removeprefix("module."): value for key, value in state_dict.items()}
    return {key: value for key, value in unprefixed.items() if key not in KNOWN_EXTRA_KEYS}
