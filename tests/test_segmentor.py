"""Segmentor over SAM: real architectures with random weights, on a real DAVIS frame.

Random weights give arbitrary masks, so these tests check plumbing and contracts: shapes, one embedding per
frame, which prompts reach SAM and how, and that options change what SAM is asked.
"""

import threading
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from samtrack_ops import models
from samtrack_ops.prompts import Box, Click, Mask, PromptError, Stroke, Text
from samtrack_ops.segmentor import SEED_GENERATOR_OPTIONS, Segmentor, load_segmentor


@pytest.fixture(scope="module")
def frame(shared_dir):
    """480x854x3 uint8 RGB: first blackswan frame."""
    return np.asarray(Image.open(shared_dir / "data/davis2016/JPEGImages/480p/blackswan/00000.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def tiny_sam():
    """SAM's architecture at its real geometry (1024 input, 64x64 embedding, 256x256 low-res masks), 32 wide."""
    torch.manual_seed(0)
    width = 32
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=1024, patch_size=16, embed_dim=width, depth=2, num_heads=2, out_chans=width, qkv_bias=True,
            use_rel_pos=True, window_size=14, global_attn_indexes=[1],
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=width, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=width, mlp_dim=64, num_heads=2),
            transformer_dim=width, iou_head_depth=3, iou_head_hidden_dim=width,
        ),
    )


@pytest.fixture(scope="module")
def segmentor(tiny_sam, frame):
    segmentor = Segmentor(tiny_sam, device="cpu")
    segmentor.set_frame(frame)
    return segmentor


@pytest.fixture
def encoder_calls(tiny_sam):
    """Counts forward calls of the image encoder while the test runs."""
    calls = []
    handle = tiny_sam.image_encoder.register_forward_hook(lambda module, inputs, output: calls.append(1))
    yield calls
    handle.remove()


@pytest.fixture
def prompt_encoder_points(tiny_sam):
    """The point coordinates (BxNx2, or None) of each prompt-encoder call while the test runs."""
    seen = []

    def record(module, args, kwargs):
        seen.append(None if kwargs["points"] is None else kwargs["points"][0])

    handle = tiny_sam.prompt_encoder.register_forward_pre_hook(record, with_kwargs=True)
    yield seen
    handle.remove()


@pytest.fixture
def prompt_encoder_masks(tiny_sam):
    """The `masks` argument (low-resolution logits or None) of each prompt-encoder call while the test runs."""
    seen = []

    def record(module, args, kwargs):
        seen.append(kwargs["masks"])

    handle = tiny_sam.prompt_encoder.register_forward_pre_hook(record, with_kwargs=True)
    yield seen
    handle.remove()


def test_one_embedding_per_frame_shared_by_all_prompts(tiny_sam, frame, encoder_calls):
    segmentor = Segmentor(tiny_sam, device="cpu")
    segmentor.set_frame(frame)
    segmentor.set_frame(frame)
    segmentor.predict(Click(0, [[400, 200]], [1]))
    segmentor.predict(Box(0, [300, 100, 500, 300]))
    segmentor.predict_boxes([[10, 10, 100, 100], [200, 200, 400, 400]])
    assert len(encoder_calls) == 1
    segmentor.set_frame(frame.copy())  # same pixels, another array: the cached embedding
    assert len(encoder_calls) == 1
    segmentor.set_frame(frame[::-1].copy())
    assert len(encoder_calls) == 2


def test_reused_buffer_with_new_content_gets_a_new_embedding(tiny_sam, frame, encoder_calls):
    """Frame sources may decode every frame into one buffer: the embedding follows the pixels, not the array."""
    click = Click(0, [[400, 200]], [1])
    buffer = frame.copy()
    segmentor = Segmentor(tiny_sam, device="cpu")
    segmentor.set_frame(buffer)
    segmentor.predict(click)
    buffer[:] = frame[::-1]
    segmentor.set_frame(buffer)
    mask, score = segmentor.predict(click)
    assert len(encoder_calls) == 2
    fresh = Segmentor(tiny_sam, device="cpu")
    fresh.set_frame(frame[::-1].copy())
    expected_mask, expected_score = fresh.predict(click)
    np.testing.assert_array_equal(mask, expected_mask)
    assert score == expected_score


def test_embeddings_are_kept_for_a_few_frames_least_recently_used_first_out(tiny_sam, frame, encoder_calls):
    first, second, third = frame, frame[::-1].copy(), frame[:, ::-1].copy()
    segmentor = Segmentor(tiny_sam, device="cpu", embedding_cache_size=2)
    for shown in (first, second, first, second):
        segmentor.set_frame(shown)
    assert len(encoder_calls) == 2
    segmentor.set_frame(third)  # drops `first`, the least recently used
    segmentor.set_frame(second)
    assert len(encoder_calls) == 3
    segmentor.set_frame(first)
    assert len(encoder_calls) == 4


def test_prefetch_computes_the_embedding_ahead_of_the_first_click(tiny_sam, frame, encoder_calls):
    segmentor = Segmentor(tiny_sam, device="cpu")
    worker = threading.Thread(target=segmentor.prefetch, args=(frame,))
    worker.start()
    worker.join()
    assert segmentor.is_cached(frame) and len(encoder_calls) == 1
    with pytest.raises(RuntimeError, match="set_frame"):  # prefetching does not choose the current frame
        segmentor.predict(Click(0, [[1, 1]], [1]))
    segmentor.set_frame(frame)
    segmentor.predict(Click(0, [[400, 200]], [1]))
    assert len(encoder_calls) == 1


def test_threads_predicting_on_different_frames_get_the_same_masks_as_one_thread(tiny_sam, frame):
    """One Segmentor serving concurrent events (the App's thread pool): each thread's masks are of its own frame."""
    frames = [frame, np.ascontiguousarray(frame[::-1])]
    clicks = [Click(0, [[x, 240]], [1]) for x in (100, 400, 700)]
    sequential = Segmentor(tiny_sam, device="cpu")
    expected = []
    for shown in frames:
        sequential.set_frame(shown)
        expected.append([sequential.predict(click)[0] for click in clicks])

    shared = Segmentor(tiny_sam, device="cpu")
    start = threading.Barrier(len(frames))
    results, failures = {}, []

    def predict_on(index):
        try:
            start.wait()
            for round_number in range(4):
                shared.set_frame(frames[index])
                results[index, round_number] = [shared.predict(click)[0] for click in clicks]
        except Exception as error:  # surfaced below, with the thread's frame
            failures.append((index, error))

    threads = [threading.Thread(target=predict_on, args=(index,)) for index in range(len(frames))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    for (index, _), masks in results.items():
        for mask, expected_mask in zip(masks, expected[index]):
            np.testing.assert_array_equal(mask, expected_mask)


def test_click_gives_frame_sized_bool_mask_and_float_score(segmentor, frame):
    mask, score = segmentor.predict(Click(0, [[400, 200], [420, 220]], [1, 1]))
    assert mask.shape == frame.shape[:2] and mask.dtype == bool
    assert isinstance(score, float)


def test_negative_clicks_change_the_result(segmentor):
    positive_only, score_positive = segmentor.predict(Click(0, [[400, 200]], [1]))
    with_negative, score_negative = segmentor.predict(Click(0, [[400, 200], [600, 300]], [1, 0]))
    assert (positive_only != with_negative).any() or score_positive != score_negative


def test_refinement_feeds_best_low_res_logits_back(segmentor, prompt_encoder_masks):
    click = Click(0, [[400, 200]], [1])
    refined, _ = segmentor.predict(click)
    assert prompt_encoder_masks[0] is None
    assert prompt_encoder_masks[1].shape == (1, 1, 256, 256)
    segmentor.refine = False
    try:
        single_pass, _ = segmentor.predict(click)
    finally:
        segmentor.refine = True
    assert len(prompt_encoder_masks) == 3 and prompt_encoder_masks[2] is None
    assert (refined != single_pass).any()


def test_stroke_is_its_bounding_box_by_default(segmentor):
    stroke = Stroke(0, [[300, 150], [350, 260], [420, 180], [480, 240]])
    stroke_mask, stroke_score = segmentor.predict(stroke)
    box_mask, box_score = segmentor.predict(Box(0, [300, 150, 480, 260]))
    np.testing.assert_array_equal(stroke_mask, box_mask)
    assert stroke_score == box_score
    with_points, points_score = segmentor.predict(
        Stroke(0, stroke.points, use_points=True)
    )
    assert (with_points != box_mask).any() or points_score != box_score


def test_long_stroke_gives_at_most_16_evenly_spaced_clicks(segmentor, prompt_encoder_points):
    along = np.linspace(0, 1, 200)[:, None]
    stroke = Stroke(0, np.hstack([300 + 200 * along, 150 + 100 * along]), use_points=True)
    segmentor.predict(stroke)
    points = prompt_encoder_points[0]
    assert points.shape == (1, 16, 2)
    assert prompt_encoder_points[1].shape == (1, 16, 2)  # the refinement pass sees the same clicks


def test_mask_prompt_is_taken_as_the_objects_mask(segmentor, frame):
    given = np.zeros(frame.shape[:2], dtype=np.uint8)
    given[100:200, 300:450] = 7
    mask, score = segmentor.predict(Mask(0, given))
    np.testing.assert_array_equal(mask, given > 0)
    assert score == 1.0


def test_refined_mask_prompt_goes_to_sam_as_box_and_logits(tiny_sam, segmentor, frame, prompt_encoder_masks):
    given = np.zeros(frame.shape[:2], dtype=bool)
    given[100:200, 300:450] = True
    segmentor.refine_masks = True
    try:
        mask, score = segmentor.predict(Mask(0, given))
    finally:
        segmentor.refine_masks = False
    assert mask.shape == given.shape and mask.dtype == bool and isinstance(score, float)
    (logits,) = prompt_encoder_masks
    assert logits.shape == (1, 1, 256, 256)
    # 480x854 -> 575x1024 inside SAM's 1024 square -> a quarter of that in the 256 low-res grid.
    inside = logits[0, 0, 100 * 575 // 480 // 4 + 2, 375 * 1024 // 854 // 4]
    outside = logits[0, 0, 200, 10]
    assert inside > 0 > outside


def test_predict_boxes_matches_one_box_at_a_time(segmentor):
    boxes = np.array([[300, 100, 500, 300], [20, 30, 200, 400], [600, 50, 850, 470]])
    batched = segmentor.predict_boxes(boxes)
    assert len(batched) == 3
    for box, (mask, score) in zip(boxes, batched):
        single_mask, single_score = segmentor.predict(Box(0, box))
        assert (mask != single_mask).mean() < 1e-3
        assert score == pytest.approx(single_score, abs=1e-4)
    assert segmentor.predict_boxes(np.zeros((0, 4))) == []


def test_bad_prompts_give_clear_errors(tiny_sam, segmentor, frame):
    with pytest.raises(PromptError, match="outside the 854x480 frame"):
        segmentor.predict(Click(0, [[900, 10]], [1]))
    with pytest.raises(PromptError, match="outside"):
        segmentor.predict_boxes([[10, 10, 100, 500]])
    with pytest.raises(PromptError, match="only negatives"):
        Click(0, [[10, 10]], [0])
    with pytest.raises(PromptError, match="detector"):
        segmentor.predict(Text(0, "swan"))
    with pytest.raises(PromptError, match="shape"):
        segmentor.predict(Mask(0, np.ones((10, 10))))
    with pytest.raises(RuntimeError, match="set_frame"):
        Segmentor(tiny_sam, device="cpu").predict(Click(0, [[1, 1]], [1]))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        segmentor.set_frame(frame.astype(np.float32))


def _check_segment_map(segments, frame_size, min_area):
    assert segments.shape == frame_size and segments.dtype == np.uint16
    ids, areas = np.unique(segments[segments > 0], return_counts=True)
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    assert (areas >= min_area).all()
    return len(ids)


def test_segment_everything_gives_contiguous_ids_of_large_enough_segments(segmentor, frame, encoder_calls):
    options = dict(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0, crop_n_layers=0)
    segments = segmentor.segment_everything(frame, min_area=500, **options)
    assert _check_segment_map(segments, frame.shape[:2], 500) >= 1
    assert len(encoder_calls) == 1


def test_segment_everything_uses_the_seeds_generator_settings_by_default(segmentor, frame, encoder_calls):
    """Random weights: the seed's quality thresholds may keep nothing, which must give an empty map, not a crash."""
    small = np.ascontiguousarray(frame[::4, ::4])
    segments = segmentor.segment_everything(small)
    _check_segment_map(segments, small.shape[:2], 200)
    assert SEED_GENERATOR_OPTIONS["crop_n_layers"] == 1
    assert len(encoder_calls) == 1 + 4  # the full frame and its four layer-1 crops


def test_full_size_vit_b_loads_from_checkpoint_and_segments(sam_vit_b_random_ckpt, frame):
    segmentor = load_segmentor("vit_b", checkpoint=sam_vit_b_random_ckpt, device="cpu")
    assert sum(p.numel() for p in segmentor.sam.image_encoder.parameters()) > 85_000_000
    saved = torch.load(sam_vit_b_random_ckpt, weights_only=True)
    loaded = segmentor.sam.state_dict()
    assert all(torch.equal(saved[name], loaded[name].cpu()) for name in saved)
    segmentor.set_frame(frame)
    mask, score = segmentor.predict(Click(0, [[400, 200]], [1]))
    assert mask.shape == frame.shape[:2] and isinstance(score, float)


def test_wrong_checkpoint_names_file_and_expected_model(tiny_sam, tmp_path):
    """Also shows vit_l is selectable: its architecture is built and the file checked against it."""
    wrong = tmp_path / "not_vit_l.pth"
    torch.save(tiny_sam.state_dict(), wrong)
    with pytest.raises(models.CheckpointError, match="not_vit_l.pth.*SAM vit_l"):
        load_segmentor("vit_l", checkpoint=wrong, device="cpu")
    with pytest.raises(ValueError, match="vit_b, vit_l, vit_h"):
        load_segmentor("vit_xl", checkpoint=wrong)
