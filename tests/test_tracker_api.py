"""DeAOT tracker behaviour beyond the parity fixture: sizes, memory rules, many objects, loading, errors.

Most tests run the full-size R50-DeAOT-L architecture (the parity checkpoint's random weights) on
small frames, which keeps them fast; numerical parity itself is in test_tracker_parity.py.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samtrack_ops.models import CheckpointError
from samtrack_ops.tracker import Tracker, load_tracker
from samtrack_ops.tracker.aggregation import label_map_from_logits
from samtrack_ops.tracker.config import get_config
from samtrack_ops.tracker.local_attention import local_window_attention
from samtrack_ops.tracker.network import build_network
from samtrack_ops.tracker.transforms import network_input_size, resize_label_map

SMALL = (120, 200)  # H, W of the synthetic frames: input 113 x 193 -> 8 x 13 tokens


@pytest.fixture(scope="module")
def state_dict(r50_deaotl_ckpt):
    return torch.load(r50_deaotl_ckpt, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def network(state_dict):
    return load_tracker("r50_deaotl", state_dict, device="cpu").network


def frames(count, size=SMALL, seed=0):
    """Smoothly moving random texture: count frames (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(size[0] + count * 2, size[1] + count * 2, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i * 2 : i * 2 + size[0], i : i + size[1]]) for i in range(count)]


def boxes(ids, size=SMALL, seed=0, dtype=np.uint8):
    """Label map (H, W) with one random rectangle per id (later ids on top)."""
    rng = np.random.default_rng(seed)
    label_map = np.zeros(size, dtype)
    for object_id in ids:
        y, x = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        label_map[y : y + rng.integers(10, 40), x : x + rng.integers(10, 60)] = object_id
    return label_map


# --- input transform --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, frame_size, expected",
    [
        ("r50_deaotl", (1080, 1920), (577, 1041)),  # 585 -> 577: round half to even
        ("r50_deaotl", (480, 854), (481, 849)),  # only snapped, not downscaled
        ("r50_deaotl", (1280, 720), (1041, 577)),  # portrait
        ("r50_deaotl", (240, 427), (241, 433)),
        ("r50_deaotl", (481, 849), (481, 849)),  # already valid: unchanged
        ("swinb_deaotl", (480, 854), (480, 848)),  # multiples of 16 without align_corners
        ("swinb_deaotl", (1080, 1920), (592, 1040)),
    ],
)
def test_network_input_size(name, frame_size, expected):
    assert network_input_size(frame_size, get_config(name)) == expected


def test_label_map_resize_uses_legacy_nearest_rule():
    label_map = np.arange(7 * 5, dtype=np.int64).reshape(7, 5)
    resized = resize_label_map(label_map, (4, 9))
    expected = F.interpolate(torch.from_numpy(label_map)[None, None].float(), size=(4, 9), mode="nearest")
    assert np.array_equal(resized, expected[0, 0].long().numpy())


# --- local attention -----------------------------------------------------------------------------


def dense_window_attention(query, key, value, bias, size_2d, radius):
    """Straightforward reference: full score matrix with everything outside the window removed."""
    height, width = size_2d
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy, dx = ys[None, :] - ys[:, None], xs[None, :] - xs[:, None]
    inside = (dy.abs() <= radius) & (dx.abs() <= radius)
    window = 2 * radius + 1
    offset = ((dy + radius) * window + (dx + radius)).clamp(0, window * window - 1)
    scores = query @ key.transpose(-1, -2) + bias.gather(-1, offset.expand(query.shape[0], -1, -1))
    return torch.softmax(scores.masked_fill(~inside, float("-inf")), dim=-1) @ value


@pytest.mark.parametrize("size_2d", [(8, 14), (37, 66), (3, 5), (17, 9), (1, 1)])
def test_tiled_local_attention_equals_dense_window_attention(size_2d):
    generator = torch.Generator().manual_seed(0)
    length, radius = size_2d[0] * size_2d[1], 7
    query, key = (torch.randn(2, length, 16, generator=generator) for _ in range(2))
    value = torch.randn(2, length, 24, generator=generator)
    bias = torch.randn(2, length, (2 * radius + 1) ** 2, generator=generator)
    tiled = local_window_attention(query, key, value, bias, size_2d, radius)
    assert torch.allclose(tiled, dense_window_attention(query, key, value, bias, size_2d, radius), atol=1e-5)


# --- tracking behaviour --------------------------------------------------------------------------


def test_snapped_only_resolution_tracks_at_full_output_size(network):
    clip = frames(3, size=(480, 854))
    tracker = Tracker(network)
    tracker.add_reference(clip[0], boxes([1, 2, 3], size=(480, 854)))
    labels, logits = tracker.track(clip[1], return_logits=True)
    assert labels.shape == (480, 854) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    assert logits.shape == (11, 121, 213)  # stride-4 grid of the 481 x 849 input
    assert (logits[4:] == -1e10).all() and (logits[:4] > -1e9).all()


def test_update_memory_flag_equals_explicit_update(network):
    clip, reference = frames(4), boxes([1, 2])
    automatic, explicit = Tracker(network), Tracker(network)
    for tracker in (automatic, explicit):
        tracker.add_reference(clip[0], reference)
    for frame in clip[1:]:
        expected = explicit.track(frame, update_memory=False)
        explicit.update_memory(expected)
        assert np.array_equal(automatic.track(frame), expected)


def long_term_schedule(gap, max_len, steps):
    """Long-term frame counts after each tracked step under the reference's rule."""
    counts, frames_held, last = [], 1, 0
    for step in range(1, steps + 1):
        if step - last >= gap:
            frames_held, last = min(frames_held + 1, max_len), step
        counts.append(frames_held)
    return counts


@pytest.mark.parametrize("gap, max_len", [(1, 3), (3, 9999), (2, 2)])
def test_long_term_memory_gap_and_cap(network, gap, max_len):
    clip = frames(8)
    tracker = Tracker(network, long_term_mem_gap=gap, max_len_long_term=max_len)
    tracker.add_reference(clip[0], boxes([1, 2]))
    held = []
    for frame in clip[1:]:
        tracker.track(frame)
        held.append(tracker.long_term_frames[0])
    assert held == long_term_schedule(gap, max_len, len(clip) - 1)


def test_memory_stays_bounded_with_video_length(network):
    clip = frames(12)
    tracker = Tracker(network, long_term_mem_gap=1, max_len_long_term=3)
    tracker.add_reference(clip[0], boxes([1, 2, 3]))
    sizes = []
    for frame in clip[1:]:
        tracker.track(frame)
        sizes.append(tracker.memory_bytes)
    assert sizes[3:] == [sizes[3]] * len(sizes[3:])  # flat once the long-term memory is full
    tokens = math.prod((side - 1) // 16 + 1 for side in network_input_size(SMALL, network.config))
    per_frame = sum(4 * tokens * (128 + 1024) for _ in range(3))  # key + value, 3 layers, float32
    assert sizes[-1] == (3 + 1) * per_frame  # 3 long-term frames + the short-term frame


def test_more_than_ten_objects_use_soft_aggregation(network):
    clip, reference = frames(3), boxes(range(1, 13))
    tracker = Tracker(network)
    tracker.add_reference(clip[0], reference)
    labels, logits = tracker.track(clip[1], return_logits=True)
    assert tracker.object_count == 12 and len(tracker.long_term_frames) == 2
    assert logits.shape[0] == 21
    assert np.allclose(logits[13:].numpy(), math.log(1e-5 / (1 - 1e-5)), atol=1e-4)  # unused ids 13..20
    assert set(np.unique(labels)) <= set(range(13))


@pytest.mark.parametrize("counts", [[10, 2], [10, 10, 7], [10, 10]])
def test_label_map_follows_the_soft_aggregation_recipe(counts):
    """Upsample each engine's masked logits, softmax, background = product, clamp, logit, argmax."""
    generator = torch.Generator().manual_seed(len(counts))
    engine_logits = [torch.randn(1, 11, 9, 13, generator=generator) * 3 for _ in counts]
    for logits, count in zip(engine_logits, counts):
        logits[:, count + 1 :] = -1e10
    size = (33, 49)
    probabilities = [torch.softmax(F.interpolate(x, size=size, mode="bilinear", align_corners=True), dim=1)
                     for x in engine_logits]
    background = torch.stack([p[0, 0] for p in probabilities]).prod(dim=0)[None]
    merged = torch.cat([background] + [p[0, 1:] for p in probabilities])
    expected = torch.logit(merged.clamp(1e-5, 1 - 1e-5)).argmax(dim=0)
    assert torch.equal(label_map_from_logits(engine_logits, counts, size, align_corners=True), expected)


def test_non_contiguous_ids_up_to_255(network):
    clip, reference = frames(3), boxes([3, 17, 200, 255])
    tracker = Tracker(network)
    tracker.add_reference(clip[0], reference)
    labels, logits = tracker.track(clip[1], return_logits=True)
    assert tracker.object_count == 255 and len(tracker.long_term_frames) == 26
    assert logits.shape[0] == 1 + 10 * 26
    assert labels.dtype == np.uint8 and labels.max() <= 255
    tracker.update_memory(reference)


def test_ids_above_255_give_uint16_label_maps(network):
    clip, reference = frames(2), boxes([1, 300], dtype=np.uint16)
    tracker = Tracker(network)
    tracker.add_reference(clip[0], reference)
    labels = tracker.track(clip[1])
    assert tracker.object_count == 300 and labels.dtype == np.uint16 and labels.max() <= 300


def test_incremental_reference_adds_objects_and_groups_mid_video(network):
    clip = frames(4)
    tracker = Tracker(network)
    tracker.add_reference(clip[0], boxes([1, 2]))
    labels = tracker.track(clip[1], update_memory=False)
    merged = labels.copy()
    merged[5:30, 5:40] = 3  # a new object: the group's count grows -> new reference pass
    tracker.add_reference(clip[1], merged)
    assert tracker.object_count == 3 and tracker.long_term_frames == [2]
    labels = tracker.track(clip[2], update_memory=False)
    merged = labels.copy()
    merged[60:90, 100:150] = 11  # a second object group appears mid-video
    tracker.add_reference(clip[2], merged)
    # ids 1..11 split as [10, 1]: the first group grows from 3 to 10 too, so it gets a reference pass
    assert tracker.object_count == 11 and tracker.long_term_frames == [3, 1]
    assert set(np.unique(tracker.track(clip[3]))) <= set(range(12))


def test_reset_forgets_everything(network):
    clip = frames(3)
    fresh = Tracker(network)
    fresh.add_reference(clip[0], boxes([1, 2]))
    expected = fresh.track(clip[1])
    reused = Tracker(network)
    reused.add_reference(frames(2, size=(64, 64))[0], boxes([5], size=(64, 64)))
    reused.reset()
    with pytest.raises(RuntimeError, match="add_reference"):
        reused.track(clip[1])
    reused.add_reference(clip[0], boxes([1, 2]))
    assert reused.object_count == 2
    assert np.array_equal(reused.track(clip[1]), expected)


# --- errors ----------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(network):
    clip = frames(2)
    tracker = Tracker(network)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        tracker.add_reference(clip[0].astype(np.float32), boxes([1]))
    with pytest.raises(ValueError, match="shape"):
        tracker.add_reference(clip[0], np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="0 \\(background\\) to 65535"):
        tracker.add_reference(clip[0], boxes([1]).astype(np.int32) * 70000)
    with pytest.raises(ValueError, match="0 \\(background\\) to 65535"):
        tracker.add_reference(clip[0], boxes([1]).astype(np.int32) * -1)
    tracker.add_reference(clip[0], boxes([1, 2]))
    with pytest.raises(ValueError, match="reset"):
        tracker.track(frames(1, size=(64, 64))[0])
    tracker.track(clip[1])
    with pytest.raises(ValueError, match="add_reference"):
        tracker.update_memory(boxes([1, 7]))
    with pytest.raises(ValueError, match="long_term_mem_gap"):
        Tracker(network, long_term_mem_gap=0)


# --- checkpoints -----------------------------------------------------------------------------------


def test_official_checkpoint_loads_strictly_from_file(r50_deaotl_ckpt, state_dict):
    loaded = load_tracker("r50_deaotl", r50_deaotl_ckpt, device="cpu").network.state_dict()
    assert loaded.keys() == state_dict.keys() and len(loaded) == 354
    assert all(torch.equal(loaded[key], state_dict[key]) for key in state_dict)
    build_network("r50_deaotl").load_state_dict(state_dict, strict=True)


def test_module_prefix_and_model_key_are_accepted(state_dict):
    wrapped = {"model": {f"module.{key}": value for key, value in state_dict.items()}}
    loaded = load_tracker("r50_deaotl", wrapped, device="cpu").network.state_dict()
    assert torch.equal(loaded["id_norm.weight"], state_dict["id_norm.weight"])


def test_wrong_architecture_is_refused(state_dict, tmp_path):
    foreign = {"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}
    with pytest.raises(CheckpointError, match="different kind of model"):
        load_tracker("r50_deaotl", foreign, device="cpu")
    resized = dict(state_dict, **{"decoder.conv_out.weight": torch.zeros(21, 128, 1, 1)})
    with pytest.raises(CheckpointError, match="shape mismatches.*conv_out"):
        load_tracker("r50_deaotl", resized, device="cpu")
    missing = {key: value for key, value in state_dict.items() if not key.startswith("decoder.")}
    with pytest.raises(CheckpointError, match="missing keys"):
        load_tracker("r50_deaotl", {"state_dict": missing}, device="cpu")
    truncated = tmp_path / "truncated.pth"
    torch.save({"state_dict": state_dict}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_tracker("r50_deaotl", truncated, device="cpu")


# --- dtype -------------------------------------------------------------------------------------------


def test_float64_tracker_computes_in_float64_and_agrees_with_float32(state_dict, network):
    """Everything the float64 tracker makes is float64 (a float32 tensor anywhere would raise in the
    float64 convolutions or leave float32 logits / memory); its labels match float32 away from ties."""
    tracker64 = load_tracker("r50_deaotl", state_dict, device="cpu", dtype=torch.float64)
    assert tracker64.dtype == torch.float64
    assert all(value.dtype == torch.float64 for value in tracker64.network.state_dict().values()
               if value.is_floating_point())
    clip, reference = frames(3), boxes([1, 2, 3])
    tracker32 = Tracker(network)
    for tracker in (tracker32, tracker64):
        tracker.add_reference(clip[0], reference)
    for frame in clip[1:]:
        labels32, logits32 = tracker32.track(frame, return_logits=True)
        labels64, logits64 = tracker64.track(frame, return_logits=True)
        assert logits64.dtype == torch.float64 and logits32.dtype == torch.float32
        assert all(logits.dtype == torch.float64 for logits in tracker64.last_group_logits)
        assert (logits64.double() - logits32.double()).abs().max() < 1e-2
        upsampled = F.interpolate(logits64[None], size=SMALL, mode="bilinear", align_corners=True)[0]
        top2 = upsampled.topk(2, dim=0).values
        near_tie = (top2[0] - top2[1]).numpy() < 2e-2
        assert np.array_equal(labels32[~near_tie], labels64[~near_tie])
    assert tracker64.memory_bytes == 2 * tracker32.memory_bytes
    assert tracker64.last_lstt_outputs[0].dtype == torch.float64


def test_unsupported_dtype_is_refused(state_dict):
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_tracker("r50_deaotl", state_dict, device="cpu", dtype=torch.float16)
