"""The DeAOT family beyond R50-DeAOT-L: DeAOT-T/S/B/L (MobileNetV2) and SwinB-DeAOT-L (Swin-B).

- State-dict names, dtypes and shapes equal the official models' (tests/data/deaot_keys/*.json,
  dumped from the reference implementation; names and shapes only).
- Encoders return maps with the configured channels at strides 4, 8, 16, 16.
- A random-weight checkpoint saved in the official format ({"state_dict": ...}) loads strictly into a
  fresh tracker (also with a ``module.`` prefix) and gives identical outputs; a checkpoint of another
  variant is refused with an error naming the file.
- DeAOT-T tracks two frames end to end.
- Every variant runs in float64 (MobileNetV2 and Swin-B encoders included) and agrees with float32.

Nothing here compares numbers made on another machine: names and shapes come from the reference,
and every numerical comparison is between two runs in the same process.
"""

import copy
import json
import math
import pathlib
import re

import numpy as np
import pytest
import torch

from samtrack_ops.models import CheckpointError
from samtrack_ops.tracker import Tracker, load_tracker
from samtrack_ops.tracker.config import get_config
from samtrack_ops.tracker.network import build_network

KEYS_DIR = pathlib.Path(__file__).parent / "data" / "deaot_keys"
ALL_VARIANTS = ("deaott", "deaots", "deaotb", "deaotl", "swinb_deaotl", "r50_deaotl")
OTHER_VARIANTS = ("deaott", "deaots", "deaotb", "deaotl", "swinb_deaotl")
FRAME_SIZE = (240, 432)


@pytest.fixture(scope="module")
def networks():
    """One random-weight network per variant, built on first use (Swin-B takes a few seconds)."""
    built = {}

    def get(name):
        if name not in built:
            torch.manual_seed(len(built))
            built[name] = build_network(name)
        return built[name]

    return get


def official_entries(name):
    """[(key, dtype, shape)] of the official model, in state-dict order."""
    entries = json.loads((KEYS_DIR / f"{name}.json").read_text())["state_dict"]
    return [(key, dtype, tuple(shape)) for key, dtype, shape in entries]


def entries_of(state_dict):
    return [(key, str(value.dtype).removeprefix("torch."), tuple(value.shape)) for key, value in state_dict.items()]


def save_official(state_dict, path, prefix=""):
    torch.save({"state_dict": {prefix + key: value for key, value in state_dict.items()}}, path)
    return path


def moving_square_frames(count, size=FRAME_SIZE):
    """Synthetic RGB frames of size (H, W): textured background, a red square moving right 8 px a frame."""
    rng = np.random.default_rng(0)
    background = rng.integers(40, 120, size=(*size, 3), dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = background.copy()
        frame[80:160, 100 + 8 * index : 180 + 8 * index] = (220, 30, 30)
        frames.append(frame)
    return frames


def reference_label_map(size=FRAME_SIZE):
    """Ids 1 (the square), 2 and 3 (background patches) on the first synthetic frame."""
    label_map = np.zeros(size, np.uint8)
    label_map[80:160, 100:180] = 1
    label_map[:50, :60] = 2
    label_map[-40:, -70:] = 3
    return label_map


@pytest.mark.parametrize("name", ALL_VARIANTS)
def test_state_dict_entries_equal_the_official_model(name, networks):
    assert entries_of(networks(name).state_dict()) == official_entries(name)


@pytest.mark.parametrize("name", OTHER_VARIANTS)
def test_state_dict_structure_follows_the_config(name, networks):
    config = get_config(name)
    state_dict = networks(name).state_dict()
    lstt_layers = {int(match.group(1)) for key in state_dict if (match := re.match(r"LSTT\.layers\.(\d+)\.", key))}
    assert lstt_layers == set(range(config.lstt_layers))
    assert state_dict["encoder_projector.weight"].shape[1] == config.encoder_dims[-1]
    id_bank_kernel = 17 if config.align_corners else 16
    assert state_dict["patch_wise_id_bank.weight"].shape == (
        config.embed_dim, config.num_identities, id_bank_kernel, id_bank_kernel)
    assert not any(key.endswith("num_batches_tracked") for key in state_dict)


@pytest.mark.parametrize("name,height,width", [("deaott", 129, 161), ("swinb_deaotl", 97, 50)])
def test_encoder_returns_configured_maps_at_strides_4_8_16_16(name, height, width, networks):
    config = get_config(name)
    with torch.inference_mode():
        features = networks(name).encoder(torch.randn(2, 3, height, width))
    expected = [(2, channels, math.ceil(height / stride), math.ceil(width / stride))
                for channels, stride in zip(config.encoder_dims, (4, 8, 16, 16))]
    assert [tuple(feature.shape) for feature in features] == expected
    assert all(torch.isfinite(feature).all() for feature in features)


def track(tracker, frames):
    """Reference on frames[0] with reference_label_map, then track the rest -> [(labels, logits)]."""
    tracker.add_reference(frames[0], reference_label_map(frames[0].shape[:2]))
    return [tracker.track(frame, return_logits=True) for frame in frames[1:]]


@pytest.mark.parametrize("name,prefix", [(name, "") for name in OTHER_VARIANTS] + [("deaott", "module.")],
                         ids=[*OTHER_VARIANTS, "deaott-module-prefix"])
def test_official_format_checkpoint_round_trips(name, prefix, networks, tmp_path):
    original = networks(name)
    path = save_official(original.state_dict(), tmp_path / f"{name}.pth", prefix)

    tracker = load_tracker(name, checkpoint=path, device="cpu")

    loaded = tracker.network.state_dict()
    assert loaded.keys() == original.state_dict().keys()
    assert all(torch.equal(value, loaded[key]) for key, value in original.state_dict().items())
    frames = moving_square_frames(2, (64, 96))
    for (labels, logits), (expected_labels, expected_logits) in zip(track(tracker, frames),
                                                                    track(Tracker(original), frames)):
        np.testing.assert_array_equal(labels, expected_labels)
        assert torch.equal(logits, expected_logits)


def test_fresh_network_differs_before_loading(networks):
    """The round trip is meaningful: a freshly built network does not already hold the same weights."""
    torch.manual_seed(12345)
    fresh = build_network("deaott").state_dict()
    saved = networks("deaott").state_dict()
    assert any(not torch.equal(fresh[key], saved[key]) for key in saved)


@pytest.mark.parametrize("saved,requested", [("deaott", "deaots"), ("deaotb", "deaott"), ("swinb_deaotl", "deaotl"),
                                             ("deaotl", "swinb_deaotl"), ("deaotl", "r50_deaotl")])
def test_checkpoint_of_another_variant_is_refused(saved, requested, networks, tmp_path):
    path = save_official(networks(saved).state_dict(), tmp_path / f"{saved}_weights.pth")
    with pytest.raises(CheckpointError) as error:
        load_tracker(requested, checkpoint=path, device="cpu")
    assert str(path) in str(error.value)
    assert requested in str(error.value)


def test_deaott_tracks_two_frames(networks):
    frames = moving_square_frames(3)
    results = track(Tracker(networks("deaott")), frames)
    config = get_config("deaott")
    for labels, logits in results:
        assert labels.shape == FRAME_SIZE and labels.dtype == np.uint8
        # 240 x 432 is snapped to 241 x 433 (16k + 1); the logits grid is its stride-4 size.
        assert tuple(logits.shape) == (config.num_identities, 61, 109)
        assert set(np.unique(labels)) <= {0, 1, 2, 3}
        assert torch.isfinite(logits[:4]).all()


@pytest.mark.parametrize("name", OTHER_VARIANTS)
def test_float64_variant_tracks_in_float64_and_agrees_with_float32(name, networks):
    network32 = networks(name)
    network64 = copy.deepcopy(network32).to(torch.float64)
    frames = moving_square_frames(3, (64, 96))
    for (labels32, logits32), (labels64, logits64) in zip(track(Tracker(network32), frames),
                                                          track(Tracker(network64), frames)):
        assert logits32.dtype == torch.float32 and logits64.dtype == torch.float64
        assert (logits64[:4] - logits32[:4].double()).abs().max() < 1e-3
        upsampled = torch.nn.functional.interpolate(logits64[None, :4], size=(64, 96), mode="bilinear",
                                                    align_corners=get_config(name).align_corners)[0]
        top2 = upsampled.topk(2, dim=0).values
        decided = (top2[0] - top2[1]).numpy() >= 2e-3
        np.testing.assert_array_equal(labels32[decided], labels64[decided])
