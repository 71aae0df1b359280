"""segment_and_track end to end on real DAVIS frames with real architectures (random weights).

Frames are downscaled to 120x214 to keep the full-size R50-DeAOT-L tracker cheap on CPU; SAM is shrunk
(``small_segmentor``: real geometry, narrow and shallow) and Grounding-DINO runs on a small resize, since these
tests are about the pipeline's plumbing (full-size SAM: tests/test_segmentor.py). The random tracker never
predicts background, so tests that need untracked background start from an empty map.
"""

import json
import os
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from samtrack_ops import FrameResult, ObjectInfo, segment_and_track
from samtrack_ops.cmr import ObjectLimitWarning
from samtrack_ops.keyframes import EmptyResultWarning
from samtrack_ops.prompts import Box, Click, Mask, PromptError, Stroke, Text
from samtrack_ops.tracker import load_tracker
from samtrack_ops.video import VideoError

SIZE = (120, 214)  # (H, W)
RELAXED_GENERATOR = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0,
                     "box_nms_thresh": 1.0, "crop_n_layers": 0, "min_mask_region_area": 0}
"""Segment-everything settings under which random SAM weights keep many masks."""


def _shrink(image, interpolation=cv2.INTER_AREA):
    return cv2.resize(image, SIZE[::-1], interpolation=interpolation)


@pytest.fixture(scope="module")
def clip(davis_frames):
    """blackswan, 6 frames at 120x214: frames (6, H, W, 3) uint8, swan masks (6, H, W) bool."""
    full = davis_frames("blackswan", 6)
    frames = np.stack([_shrink(frame) for frame in full.frames])
    masks = np.stack([_shrink(mask.astype(np.uint8), cv2.INTER_NEAREST) > 0 for mask in full.masks])
    return frames, masks


@pytest.fixture(scope="module")
def tracker(r50_deaotl_ckpt):
    return load_tracker("r50_deaotl", r50_deaotl_ckpt, device="cpu")


@pytest.fixture(scope="module")
def small_segmentor():
    """SAM at its real geometry (1024 input, 64x64 embedding) but 32 channels wide and 2 blocks deep."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    from samtrack_ops.segmentor import Segmentor

    torch.manual_seed(0)
    width = 32
    encoder = ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=width, depth=2, num_heads=2, out_chans=width,
                              qkv_bias=True, use_rel_pos=True, window_size=14, global_attn_indexes=[1],
                              norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    prompt_encoder = PromptEncoder(embed_dim=width, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                   mask_in_chans=16)
    transformer = TwoWayTransformer(depth=2, embedding_dim=width, mlp_dim=64, num_heads=2)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer=transformer, transformer_dim=width,
                          iou_head_depth=3, iou_head_hidden_dim=width)
    return Segmentor(Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=decoder), device="cpu")


@pytest.fixture(scope="module")
def detector(groundingdino_random_ckpt, tiny_bert_dir):
    """Real SwinT-OGC (random weights) on a small resize: the pipeline's plumbing, not the detector, is tested."""
    from samtrack_ops.detector import load_detector

    return load_detector("groundingdino_swint_ogc", groundingdino_random_ckpt, tiny_bert_dir, device="cpu",
                         shorter_side=160, max_side=288)


def _tracker_alone(tracker, frames, reference_index, reference, indices):
    """Label maps of the tracker used directly: reference on one frame, then frames in the given order."""
    tracker.reset()
    tracker.add_reference(frames[reference_index], reference)
    return {index: tracker.track(frames[index], update_memory=True) for index in indices}


def _two_objects(masks):
    """Swan = 1, a box of water at the top-left = 2."""
    reference = masks[0].astype(np.uint8)
    reference[5:40, 5:60] = 2
    return reference


def test_pipeline_equals_tracker_alone(clip, tracker, r50_deaotl_ckpt):
    """Same weights and reference masks: every label map equals the tracker's own (model built from options)."""
    frames, masks = clip
    reference = _two_objects(masks)
    prompts = [Mask(0, reference == 1, label="swan"), Mask(0, reference == 2, label="water")]
    results = list(segment_and_track(frames[:4], prompts, tracker_model="r50_deaotl",
                                     tracker_checkpoint=str(r50_deaotl_ckpt), device="cpu"))
    expected = _tracker_alone(tracker, frames, 0, reference, range(1, 4))
    assert [result.frame_index for result in results] == [0, 1, 2, 3]
    np.testing.assert_array_equal(results[0].label_map, reference)
    for index in (1, 2, 3):
        assert isinstance(results[index], FrameResult) and results[index].label_map.dtype == np.uint8
        np.testing.assert_array_equal(results[index].label_map, expected[index])
        visible = set(np.unique(expected[index]).tolist()) - {0}
        assert [info.id for info in results[index].objects] == sorted(visible)
        labels = {info.id: info.label for info in results[index].objects}
        assert labels == {key: value for key, value in {1: "swan", 2: "water"}.items() if key in visible}
        assert all(isinstance(info, ObjectInfo) and 0 < info.score <= 1 for info in results[index].objects)
    assert [info.score for info in results[0].objects] == [1.0, 1.0]


def test_key_frame_in_the_middle_propagates_both_ways(clip, tracker):
    frames, masks = clip
    results = list(segment_and_track(frames[:5], [Mask(2, masks[2], label="swan")], tracker=tracker))
    backward = _tracker_alone(tracker, frames, 2, masks[2].astype(np.uint8), [1, 0])
    forward = _tracker_alone(tracker, frames, 2, masks[2].astype(np.uint8), [3, 4])
    np.testing.assert_array_equal(results[2].label_map, masks[2])
    for index, expected in {**backward, **forward}.items():
        np.testing.assert_array_equal(results[index].label_map, expected)
        assert [info.label for info in results[index].objects] == ["swan"]


def test_later_key_frame_merges_with_earlier_pass_by_nearer_anchor(clip, tracker):
    """Object 1 from frame 0 forward, object 2 from frame 3 backward: on frames 1-2 the nearer anchor wins."""
    frames, masks = clip
    water = np.zeros(SIZE, bool)
    water[5:40, 5:60] = True
    results = list(segment_and_track(frames[:4], [Mask(0, masks[0]), Mask(3, water)], tracker=tracker))
    forward = _tracker_alone(tracker, frames, 0, masks[0].astype(np.uint8), [1, 2])
    backward = _tracker_alone(tracker, frames, 3, water.astype(np.uint8), [2, 1])  # the pass's own ID 1 ...
    backward = {index: label_map * 2 for index, label_map in backward.items()}  # ... is track ID 2
    for index, nearer, farther in ((1, forward, backward), (2, backward, forward)):
        expected = np.where(nearer[index] != 0, nearer[index], farther[index])
        np.testing.assert_array_equal(results[index].label_map, expected)
    assert (results[3].label_map[water] == 2).all()


def test_correction_reanchors_the_object_from_its_frame(clip, tracker):
    frames, masks = clip
    corrected = np.zeros(SIZE, bool)
    corrected[60:100, 100:180] = True
    prompts = [Mask(0, masks[0], label="swan"), Mask(3, corrected, object_id=1)]
    results = list(segment_and_track(frames[:5], prompts, tracker=tracker))
    before = _tracker_alone(tracker, frames, 0, masks[0].astype(np.uint8), [1, 2])
    tracked = tracker.track(frames[3], update_memory=False)
    tracked[tracked == 1] = 0
    tracked[corrected] = 1
    tracker.add_reference(frames[3], tracked)
    after = tracker.track(frames[4])
    for index in (1, 2):
        np.testing.assert_array_equal(results[index].label_map, before[index])
    np.testing.assert_array_equal(results[3].label_map, tracked)
    np.testing.assert_array_equal(results[4].label_map, after)
    assert results[4].objects[0].label == "swan"  # a correction without a label keeps the object's label
    assert [results[index].objects[0].provenance for index in range(5)] == [
        "prompted", "tracked", "tracked", "corrected", "tracked"]


def test_click_box_and_stroke_prompts(clip, tracker, small_segmentor):
    segmentor = small_segmentor
    frames, masks = clip
    rows, cols = np.nonzero(masks[0])
    swan_box = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    prompts = [Click(0, [[cols.mean(), rows.mean()], [10, 10]], [1, 0], label="swan"),
               Box(1, swan_box, label="boxed"),
               Stroke(1, [[20, 100], [60, 110], [90, 105]], label="shore")]
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyResultWarning)
        results = list(segment_and_track(frames[:2], prompts, tracker=tracker, segmentor=segmentor))
    labels = {info.id: info.label for info in results[1].objects}
    assert labels == {1: "swan", 2: "boxed", 3: "shore"}
    assert all(0 < info.score <= 1 for info in results[1].objects)
    # frame 0: the click's mask (forward pass, anchored there) over what the box and stroke objects of
    # frame 1 give when tracked backward
    assert {info.id for info in results[0].objects} <= {1, 2, 3}
    segmentor.set_frame(frames[0])
    click_mask, click_score = segmentor.predict(prompts[0])
    np.testing.assert_array_equal(results[0].label_map == 1, click_mask)
    assert results[0].objects[0].score == pytest.approx(click_score)


def test_automatic_mode_discovers_objects_with_cmr(clip, tracker, small_segmentor):
    frames, _ = clip
    timings = {}
    progress = []
    results = list(segment_and_track(frames[:3], mode="automatic", tracker=tracker, segmentor=small_segmentor,
                                     sam_gap=2, min_area=20, generator_options=RELAXED_GENERATOR,
                                     timings=timings, progress=lambda index, total: progress.append((index, total))))
    segments = small_segmentor.segment_everything(frames[0], min_area=20, **RELAXED_GENERATOR)
    count = int(segments.max())
    assert count >= 2
    np.testing.assert_array_equal(results[0].label_map, segments)  # empty track map: every segment is new
    assert [info.id for info in results[0].objects] == list(range(1, count + 1))
    assert {info.label for info in results[0].objects} == {"object"}
    assert set(np.unique(results[1].label_map)) <= set(range(count + 1))
    assert progress == [(0, 3), (1, 3), (2, 3)]
    assert {"decode", "everything-generation", "tracking", "CMR"} <= set(timings)


def test_max_obj_num_caps_discovered_objects(clip, tracker, small_segmentor):
    frames, _ = clip
    with pytest.warns(ObjectLimitWarning, match="max_obj_num=2"):
        results = list(segment_and_track(frames[:1], mode="automatic", tracker=tracker, segmentor=small_segmentor,
                                         max_obj_num=2, min_area=20, generator_options=RELAXED_GENERATOR))
    assert [info.id for info in results[0].objects] == [1, 2]


def test_fusion_adds_objects_only_where_prompts_left_background(clip, tracker, small_segmentor):
    frames, _ = clip
    left = np.zeros(SIZE, bool)
    left[:, : SIZE[1] // 2] = True
    results = list(segment_and_track(frames[:2], [Mask(0, left, label="left")], mode="fusion", tracker=tracker,
                                     segmentor=small_segmentor, min_area=20, min_new_obj_iou=0.5, sam_gap=5,
                                     generator_options=RELAXED_GENERATOR))
    first = results[0].label_map
    assert (first[left] == 1).all()
    assert first[~left].any() and (first[~left] != 1).all()
    assert [info.id for info in results[0].objects][:1] == [1] and len(results[0].objects) >= 2
    assert results[0].objects[0].label == "left"
    assert len(results) == 2


def test_fusion_discovers_on_a_later_key_frame_but_not_what_a_backward_pass_covers(clip, tracker,
                                                                                   small_segmentor):
    """Frame 2 prompts the left half: frames 0-1 are covered by its backward pass, so automatic discovery on
    frame 0 finds nothing new; on frame 2 the right half is untracked and CMR adds objects there."""
    frames, _ = clip
    left = np.zeros(SIZE, bool)
    left[:, : SIZE[1] // 2] = True
    results = list(segment_and_track(frames[:3], [Mask(2, left)], mode="fusion", tracker=tracker,
                                     segmentor=small_segmentor, min_area=20, min_new_obj_iou=0.5, sam_gap=2,
                                     generator_options=RELAXED_GENERATOR))
    assert [info.id for info in results[0].objects] == [1]
    assert [info.id for info in results[1].objects] == [1]
    key_frame = results[2]
    assert (key_frame.label_map[left] == 1).all()
    assert len(key_frame.objects) >= 2 and (key_frame.label_map[~left] >= 2).any()


def test_video_file_input(clip, tracker, tmp_path):
    frames, masks = clip
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, SIZE[::-1])
    for frame in frames[:3]:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    progress = []
    results = list(segment_and_track(path, [Mask(0, masks[0], label="swan")], tracker=tracker,
                                     progress=lambda index, total: progress.append((index, total))))
    assert progress == [(0, 3), (1, 3), (2, 3)]
    np.testing.assert_array_equal(results[0].label_map, masks[0])
    assert all(result.label_map.shape == SIZE for result in results)


def test_text_prompts(clip, tracker, small_segmentor, detector, monkeypatch):
    """A low threshold finds many boxes (all 900 queries): only the 3 best (max_obj_num) reach SAM and the rest
    are reported; an impossible threshold finds nothing."""
    frames, _ = clip
    boxes_to_sam = []
    predict_boxes = small_segmentor.predict_boxes
    monkeypatch.setattr(small_segmentor, "predict_boxes", lambda boxes: boxes_to_sam.append(len(boxes))
                        or predict_boxes(boxes))
    many = Text(0, "swan.", box_threshold=0.0, text_threshold=0.0)
    nothing = Text(0, "swan.", box_threshold=1.0)
    with pytest.warns(ObjectLimitWarning, match="897 lower-scoring detection.*max_obj_num=3"), \
            pytest.warns(EmptyResultWarning, match="nothing"):
        results = list(segment_and_track(frames[:2], [many, nothing], tracker=tracker, segmentor=small_segmentor,
                                         detector=detector, max_obj_num=3))
    assert sum(boxes_to_sam) == 3, boxes_to_sam
    assert [info.id for info in results[0].objects] == [1, 2, 3]
    assert {info.label for info in results[0].objects} == {"swan"}  # the phrase Grounding-DINO matched
    assert all(0 < info.score <= 1 for info in results[0].objects)

FLAT_MEMORY_SCRIPT = """
import json, sys
import numpy as np, torch
from samtrack_ops import segment_and_track
from samtrack_ops.prompts import Mask

class EchoTracker:
    # Stand-in with the Tracker API that returns its last reference: the pipeline's own memory is
    # measured, not the tracker's activations (tests/test_tracker_api.py checks the tracker's bound).
    def reset(self):
        self.reference = None
    def add_reference(self, frame, label_map):
        self.reference = label_map.copy()
    def update_memory(self, label_map):
        pass
    def track(self, frame, update_memory=True, return_logits=False):
        logits = torch.zeros((int(self.reference.max()) + 1, 4, 4))
        return (self.reference.copy(), logits) if return_logits else self.reference.copy()

def peak_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

def run(count, key_frame, decoded):
    rng = np.random.default_rng(0)
    def frames():
        for index in range(count):
            decoded.append(index)
            yield rng.integers(0, 256, (480, 854, 3), dtype=np.uint8)
    mask = np.zeros((480, 854), bool)
    mask[100:300, 200:500] = True
    for _ in segment_and_track(frames(), [Mask(key_frame, mask)], tracker=EchoTracker()):
        pass

run(4, 2, [])  # warm-up: imports, first allocations
warm = peak_mib()
decoded = []
run(int(sys.argv[1]), int(sys.argv[2]), decoded)
print(json.dumps({"warm_mib": warm, "peak_mib": peak_mib(), "decoded": decoded}))
"""


def test_streams_each_frame_once_with_flat_memory():
    """100 frames of 480x854 (123 MB decoded), key frame 60 (frames 0..60 spilled to disk, the rest streamed):
    each frame is decoded once and the process's peak memory (VmHWM, fresh subprocess) grows by less than a
    quarter of the clip after warm-up, so neither the spilled nor the streamed frames are kept."""
    count, key_frame = 100, 60
    clip_mib = count * 480 * 854 * 3 / 2**20
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = subprocess.run([sys.executable, "-c", FLAT_MEMORY_SCRIPT, str(count), str(key_frame)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.splitlines()[-1])
    assert measured["decoded"] == list(range(count))
    growth = measured["peak_mib"] - measured["warm_mib"]
    assert growth < clip_mib / 4, f"peak grew by {growth:.0f} MiB over a {clip_mib:.0f} MiB clip"


def test_uint16_label_maps_when_ids_may_exceed_255(clip, tracker):
    frames, masks = clip
    results = list(segment_and_track(frames[:2], [Mask(0, masks[0])], tracker=tracker, max_obj_num=300))
    assert all(result.label_map.dtype == np.uint16 for result in results)


def test_bad_input_is_reported_before_any_work(clip, tracker, tmp_path):
    frames, masks = clip
    with pytest.raises(PromptError, match="frame 9, but the video has 3 frames"):
        segment_and_track(frames[:3], [Mask(9, masks[0])], tracker=tracker)
    with pytest.raises(PromptError, match="only 2 frames"):
        list(segment_and_track(iter(frames[:2]), [Box(4, [1, 1, 20, 20])], tracker=tracker))
    with pytest.raises(PromptError, match="outside"):
        next(segment_and_track(frames[:2], [Box(0, [10, 10, 500, 50])], tracker=tracker))
    with pytest.raises(PromptError, match="positive"):
        Click(0, [[5, 5]], [0])
    with pytest.raises(PromptError, match="corrects object 4"):
        next(segment_and_track(frames[:2], [Mask(0, masks[0], object_id=4)], tracker=tracker))
    with pytest.raises(VideoError, match="no frames"):
        next(segment_and_track([], mode="automatic", tracker=tracker))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="broken.mp4"):
        next(segment_and_track(broken, mode="automatic", tracker=tracker))
    with pytest.raises(TypeError, match="unknown option.*sam_gapp"):
        segment_and_track(frames, mode="automatic", sam_gapp=5)
    with pytest.raises(ValueError, match="fusion"):
        segment_and_track(frames, [Mask(0, masks[0])], mode="automatic")
    with pytest.raises(ValueError, match="mode must be"):
        segment_and_track(frames, [Mask(0, masks[0])], mode="auto")
