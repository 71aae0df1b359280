"""seed_exact: samtrack's segment-everything label map equals the Segment-and-Track-Anything seed's, pixel for pixel.

The reference map (tests/data/seed_everything_blackswan_00000_half.png, made by running the seed's own
``SegTracker.seg``; tests/data/seed_everything_README.md says how) comes from a shrunk SAM (the real
architecture with a small ViT) whose random weights and arithmetic are CPU-independent: float32 results differ
between CPUs and random weights amplify that, so predicted-IoU and stability thresholds could flip. Here the
weights come from NumPy's ``RandomState`` (the same stream on every machine) and the model runs in float64.
``build_shrunk_sam(modeling)`` takes a ``segment_anything.modeling``-like module so the seed run can build the
same model from the seed's vendored copy of SAM.
"""

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from samtrack_ops.pipeline import segment_and_track
from samtrack_ops.segmentor import Segmentor

SEED_MAP = Path(__file__).parent / "data" / "seed_everything_blackswan_00000_half.png"
GENERATOR_OPTIONS = {"points_per_side": 8, "crop_n_layers": 0, "box_nms_thresh": 1.0}
"""Over the seed's defaults (both runs): one 8x8 grid of points and no crops keep the test short; box NMS
off keeps the many full-frame-box masks of the random model, so that paint order matters."""

IMAGE_SIZE = 256
PATCH_SIZE = 16
PROMPT_DIM = 32
UPSCALING_BIAS = (1.8, 0.13, 0.06, 0.78)
HYPERNETWORK_GAIN = -500.0
IOU_SHIFT = (0.47, 0.47, 0.0, 1.0)


def build_shrunk_sam(modeling, seed=0):
    """Shrunk SAM of ``modeling`` (2-block 64-wide ViT, 256-pixel input), float64, RandomState weights."""
    embedding_size = IMAGE_SIZE // PATCH_SIZE
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=2, embed_dim=64, img_size=IMAGE_SIZE, mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2, patch_size=PATCH_SIZE, qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1,),
            window_size=4, out_chans=PROMPT_DIM),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=PROMPT_DIM, image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE), mask_in_chans=16),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3, transformer_dim=PROMPT_DIM, iou_head_depth=3, iou_head_hidden_dim=64,
            transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM, mlp_dim=64, num_heads=4)),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    )
    _fill_random(sam, seed)
    _varied_masks(sam.mask_decoder)
    _float64_position_encoding(sam.prompt_encoder.pe_layer)
    sam.mask_decoder.register_forward_hook(_float32_iou_predictions)
    return sam.double().eval()


def _fill_random(sam, seed):
    """Every parameter and buffer from RandomState(seed): uniform(-1, 1) / sqrt(fan-in); norms keep 1 and 0."""
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        for name, tensor in sam.state_dict().items():
            if name.startswith(("pixel_mean", "pixel_std")):
                continue
            fan_in = int(np.prod(tensor.shape[1:])) if tensor.dim() > 1 else tensor.numel()
            values = rng.uniform(-1, 1, size=tuple(tensor.shape)) / np.sqrt(max(fan_in, 1))
            if "norm" in name and tensor.dim() == 1:
                values = np.ones(tensor.shape) if name.endswith("weight") else np.zeros(tensor.shape)
            tensor.copy_(torch.from_numpy(values))


def _varied_masks(decoder):
    """Rescales a few decoder weights so that random SAM's masks depend on the point and pass the thresholds.

    With plain random weights every point gives the same nearly uniform logits. Here the output tokens start at
    zero (so the point's embedding dominates them), the last upscaling layer is steep and roughly centred on the
    blackswan frame (so masks follow the image), the hypernetwork outputs are scaled up (steep logits, hence
    stable masks; the sign flip makes the masks the IoU head ranks lower the smaller ones, so the seed's map keeps
    many segments) and the IoU head is shifted so that the predictions of two of the three multimask outputs
    straddle the seed's 0.8 threshold.
    """
    with torch.no_grad():
        decoder.mask_tokens.weight.zero_()
        decoder.iou_token.weight.zero_()
        upscaling = decoder.output_upscaling[3]
        upscaling.weight *= 30
        upscaling.bias.copy_(torch.tensor(UPSCALING_BIAS))
        for mlp in decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight *= HYPERNETWORK_GAIN
            mlp.layers[-1].bias.zero_()
        decoder.iou_prediction_head.layers[-1].bias += torch.tensor(IOU_SHIFT)


def _float64_position_encoding(pe_layer):
    """SAM casts point coordinates to float32 before its random Fourier features; keep the layer's dtype."""
    encode = pe_layer._pe_encoding
    pe_layer._pe_encoding = lambda coords: encode(coords.to(pe_layer.positional_encoding_gaussian_matrix.dtype))


def _float32_iou_predictions(module, inputs, outputs):
    """The generator's NMS takes float32 boxes and needs scores of the same dtype: round the IoU predictions."""
    masks, iou_predictions = outputs
    return masks, iou_predictions.float()


def blackswan_half(davis_dir):
    """Frame 0 of blackswan (decoded by PIL, as in the seed run), every second row and column: (240, 427, 3)."""
    image = Image.open(davis_dir / "JPEGImages" / "480p" / "blackswan" / "00000.jpg").convert("RGB")
    return np.ascontiguousarray(np.array(image)[::2, ::2])


@pytest.fixture(scope="module")
def shrunk_segmentor():
    from segment_anything import modeling

    return Segmentor(build_shrunk_sam(modeling), device="cpu")


def test_seed_exact_reproduces_the_seeds_everything_map(davis_dir, shrunk_segmentor):
    frame = blackswan_half(davis_dir)
    seed_map = np.array(Image.open(SEED_MAP))
    assert seed_map.max() == 27  # the seed found 27 segments: the comparison is not vacuous

    exact = shrunk_segmentor.segment_everything(frame, seed_exact=True, **GENERATOR_OPTIONS)
    assert exact.shape == seed_map.shape
    assert int((exact != seed_map).sum()) == 0

    default = shrunk_segmentor.segment_everything(frame, **GENERATOR_OPTIONS)
    assert int((default != seed_map).sum()) > 10_000  # RGB input and largest-first numbering differ


def test_seed_exact_needs_plain_automatic_mode():
    frames = [np.zeros((32, 32, 3), np.uint8)]
    with pytest.raises(ValueError, match="seed_exact"):
        segment_and_track(frames, mode="automatic", auto_text="swan", seed_exact=True)
    with pytest.raises(ValueError, match="seed_exact"):
        segment_and_track(frames, mode="fusion", seed_exact=True)


class ForgetfulTracker:
    """A tracker with the Tracker API that never follows anything (its maps are all background).

    Every segment of a later key frame is then new to CMR, which isolates how new objects are numbered.
    """

    def reset(self):
        pass

    def add_reference(self, frame, label_map):
        pass

    def track(self, frame, update_memory=True, return_logits=False):
        label_map = np.zeros(frame.shape[:2], np.uint8)
        return (label_map, torch.zeros(1, *frame.shape[:2])) if return_logits else label_map


def test_later_key_frame_numbers_new_objects_like_the_seed(davis_dir, shrunk_segmentor):
    frame = np.ascontiguousarray(blackswan_half(davis_dir)[::2, ::2])  # (120, 214, 3): short
    offsets = {}
    for seed_exact in (True, False):
        results = list(segment_and_track([frame, frame], mode="automatic", sam_gap=1, min_area=50,
                                         seed_exact=seed_exact, generator_options=GENERATOR_OPTIONS,
                                         segmentor=shrunk_segmentor, tracker=ForgetfulTracker()))
        first = np.unique(results[0].label_map[results[0].label_map > 0])
        later = np.unique(results[1].label_map[results[1].label_map > 0])
        assert len(first) > 1 and first.tolist() == list(range(1, len(first) + 1))
        assert len(later) == len(first) and later.tolist() == list(range(later[0], later[0] + len(later)))
        offsets[seed_exact] = int(later[0]) - len(first)
    # the seed starts a later key frame's new objects at the highest ID so far (reusing it); samtrack after it
    assert offsets == {True: 0, False: 1}
