"""Grounding-DINO detector: real SwinT-OGC architecture with random weights and a tiny offline BERT.

Random weights give arbitrary boxes, so these tests check the contract: the seed's input transform, thresholds,
phrases, the box-size filter, loading official-format checkpoints, and clear failures. Most forwards run on a
small resize (shorter side 160) to stay fast; one runs at the seed's 800/1333.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from samtrack_ops import models
from samtrack_ops.detector import (
    IMAGENET_MEAN, IMAGENET_STD, KNOWN_EXTRA_KEYS, Detection, Detector, build_groundingdino, load_detector,
)

TEXT = "Black swan. water"
QUERIES = 900  # Grounding-DINO's num_queries


@pytest.fixture(scope="module")
def frame(shared_dir):
    """480x854x3 uint8 RGB: first blackswan frame."""
    return np.asarray(Image.open(shared_dir / "data/davis2016/JPEGImages/480p/blackswan/00000.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def official_layout_checkpoint(groundingdino_random_ckpt, tmp_path_factory):
    """The random checkpoint as released files can look: ``module.`` prefixes and the known extra keys."""
    state_dict = torch.load(groundingdino_random_ckpt, weights_only=True)["model"]
    state_dict = {f"module.{key}": value for key, value in state_dict.items()}
    state_dict.update({key: torch.zeros(3) for key in KNOWN_EXTRA_KEYS})
    path = tmp_path_factory.mktemp("gdino") / "groundingdino_swint_ogc.pth"
    torch.save({"model": state_dict}, path)
    return path


@pytest.fixture(scope="module")
def detector(official_layout_checkpoint, tiny_bert_dir):
    return load_detector(checkpoint=official_layout_checkpoint, text_encoder_path=tiny_bert_dir, device="cpu",
                         shorter_side=160, max_side=288)


@pytest.fixture(scope="module")
def every_query(detector, frame):
    """All 900 queries as detections (no threshold, every word in the phrase)."""
    return detector.detect(frame, TEXT, box_threshold=0, text_threshold=0)


def test_loading_matches_the_saved_weights(detector, groundingdino_random_ckpt):
    saved = torch.load(groundingdino_random_ckpt, weights_only=True)["model"]
    loaded = detector.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)


def test_seed_transform_shorter_side_800_longer_at_most_1333(detector, frame):
    seed = Detector(detector.model, device="cpu")
    assert tuple(seed.transform(frame).shape) == (3, 749, 1332)  # 854/480*800 > 1333: the longer side caps it
    assert tuple(seed.transform(np.ascontiguousarray(frame[:300, :400])).shape) == (3, 800, 1066)
    grey = np.full((60, 40, 3), (200, 100, 50), dtype=np.uint8)
    normalised = seed.transform(grey)
    assert tuple(normalised.shape) == (3, 1200, 800)
    expected = (np.array([200, 100, 50]) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(normalised.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)


def test_zero_threshold_keeps_every_query_with_phrases_and_frame_boxes(every_query, frame):
    assert len(every_query) == QUERIES
    assert all(isinstance(detection, Detection) for detection in every_query)
    assert {detection.phrase for detection in every_query} == {"black swan water"}
    scores = [detection.score for detection in every_query]
    assert scores == sorted(scores, reverse=True) and all(0 <= score <= 1 for score in scores)
    boxes = np.stack([detection.box_xyxy for detection in every_query])
    height, width = frame.shape[:2]
    assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
    assert boxes.min() >= 0 and (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()


def test_full_threshold_finds_nothing_with_a_warning(detector, frame):
    with pytest.warns(UserWarning, match="found nothing for 'Black swan. water'.*box_threshold"):
        assert detector.detect(frame, TEXT, box_threshold=1.0) == []


def test_phrase_falls_back_to_the_best_word(detector, frame):
    detections = detector.detect(frame, TEXT, box_threshold=0, text_threshold=1.0)
    phrases = {detection.phrase for detection in detections}
    assert phrases and phrases <= {"black", "swan", "water"}


def test_box_size_filter_drops_boxes_larger_than_the_fraction(detector, frame, every_query):
    frame_area = frame.shape[0] * frame.shape[1]
    fractions = np.array([_area(d.box_xyxy) / frame_area for d in every_query])
    limit = float(np.median(fractions))
    kept = detector.detect(frame, TEXT, box_threshold=0, text_threshold=0, max_box_area_fraction=limit)
    expected = [d for d, fraction in zip(every_query, fractions) if fraction <= limit]
    assert 0 < len(kept) == len(expected) < QUERIES
    np.testing.assert_allclose(np.stack([d.box_xyxy for d in kept]), np.stack([d.box_xyxy for d in expected]))


def test_seed_size_forward(detector, frame):
    seed = Detector(detector.model, device="cpu")
    detections = seed.detect(frame, "swan", box_threshold=0.0)
    assert len(detections) == QUERIES and {d.phrase for d in detections} == {"swan"}


def test_bad_input_gives_clear_errors(detector, frame):
    with pytest.raises(ValueError, match="text prompt must name something"):
        detector.detect(frame, " . ")
    with pytest.raises(ValueError, match="box_threshold must lie in"):
        detector.detect(frame, TEXT, box_threshold=1.5)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect(frame[..., 0], TEXT)
    with pytest.raises(ValueError, match="not a Grounding-DINO model"):
        build_groundingdino("sam_vit_b")


def test_wrong_checkpoint_names_file_and_expected_model(tiny_bert_dir, tmp_path):
    wrong = tmp_path / "not_groundingdino.pth"
    torch.save({"model": {"image_encoder.weight": torch.zeros(2)}}, wrong)
    with pytest.raises(models.CheckpointError, match="not_groundingdino.pth.*Grounding-DINO groundingdino_swint_ogc"):
        load_detector(checkpoint=wrong, text_encoder_path=tiny_bert_dir, device="cpu")


def test_swinb_config_is_selectable(tiny_bert_dir):
    swinb = build_groundingdino("groundingdino_swinb", tiny_bert_dir)
    assert swinb.backbone[0].num_features == [128, 256, 512, 1024]  # Swin-B widths (Swin-T: 96..768)


def _area(box):
    return (box[2] - box[0]) * (box[3] - box[1])


def test_unreachable_text_encoder_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(models.MissingCheckpointError, match="text_encoder_path") as raised:
        build_groundingdino("groundingdino_swint_ogc", "bert-base-uncased")
    assert models.TEXT_ENCODER_ENV in str(raised.value)
