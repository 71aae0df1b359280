"""J&F evaluation (samtrack_ops.evaluation) on the real DAVIS-2016 frames in ../shared/data/davis2016.

Expected values are derived by hand or by pixel-coordinate set arithmetic, not by calling the code under
test. For these 854x480 frames the boundary tolerance is ceil(0.008 * hypot(480, 854)) = ceil(7.84) = 8 px.
With 25 frames, 23 are scored (the first and last are dropped) and the official decay bins over those 23
are round(linspace(1, 23, 5)) - 1 = [0, 6, 11, 17, 22]: first quarter = scored frames 0..6, last = 17..22.
"""

import numpy as np
import pytest
from PIL import Image

from samtrack_ops.evaluation import (
    EvaluationError,
    boundary_map,
    boundary_tolerance,
    decay_bins,
    evaluate_davis,
)

ALL_KEYS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean")


@pytest.fixture(scope="module")
def blackswan(davis_dir):
    folder = davis_dir / "Annotations" / "480p" / "blackswan"
    return [(np.array(Image.open(p)) > 0).astype(np.uint8) for p in sorted(folder.glob("*.png"))]


def official_case(davis_dir):
    """Prediction and ground truth for the comparison with the official DAVIS 2017 code, built from the
    real blackswan and car-shadow annotations (25 frames, 480x854): ``(pred_maps, gt_maps)`` uint8 lists.

    Ground truth: object 2 = the swan; object 1 = the car, but only from frame 6 on (absent from the first
    frame although numbered below its maximum); void (255) = a 4 px band around the swan. Prediction: the
    swan shifted 5 px right (so it covers part of the void band); the car eroded by 2 px and only from
    frame 9 on.
    """
    import cv2

    def masks(seq):
        folder = davis_dir / "Annotations" / "480p" / seq
        return [np.array(Image.open(p)) > 0 for p in sorted(folder.glob("*.png"))]

    swans, cars = masks("blackswan"), masks("car-shadow")
    ring = np.ones((9, 9), np.uint8)
    gt_maps, pred_maps = [], []
    for index, (swan, car) in enumerate(zip(swans, cars)):
        gt = np.zeros(swan.shape, np.uint8)
        gt[car & (index >= 6)] = 1
        gt[cv2.dilate(swan.astype(np.uint8), ring).astype(bool)] = 255
        gt[swan] = 2
        pred = np.zeros(swan.shape, np.uint8)
        pred[cv2.erode(car.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & (index >= 9)] = 1
        pred[np.roll(swan, 5, axis=1)] = 2
        gt_maps.append(gt)
        pred_maps.append(pred)
    return pred_maps, gt_maps


# The official davis2017-evaluation code (commit ac7c43f, run from a copy outside this repository) on
# official_case() written as a DAVIS folder (Annotations/480p/blackswan/*.png and results/blackswan/*.png):
# DAVISEvaluation(root, "semi-supervised", "val", sequences=["blackswan"]).evaluate(results) gave these
# per-object [mean, recall, decay] of J and F (printed with repr, rounded here to 12 decimals).
OFFICIAL_CASE_SCORES = {
    1: {"J": (0.7872935217982964, 0.8695652173913043, -0.15748094087121367),
        "F": (0.7889503421787843, 0.8695652173913043, -0.17047989650646378)},
    2: {"J": (0.8985673882646025, 1.0, 0.00120129829169624), "F": (1.0, 1.0, 0.0)},
}


def official_video_scores():
    """The official case's video-level J, F and J&F means (averages over its two objects)."""
    j_mean = np.mean([scores["J"][0] for scores in OFFICIAL_CASE_SCORES.values()])
    f_mean = np.mean([scores["F"][0] for scores in OFFICIAL_CASE_SCORES.values()])
    return {"J_mean": j_mean, "F_mean": f_mean, "JF_mean": (j_mean + f_mean) / 2}


def _pixels(mask):
    return set(map(tuple, np.argwhere(mask)))


def _iou_of_sets(a, b):
    return len(a & b) / len(a | b)


def test_constants_derived_by_hand():
    assert boundary_tolerance((480, 854)) == 8
    assert decay_bins(23) == [(0, 7), (6, 12), (11, 18), (17, 23)]


def test_boundary_map_of_a_square():
    mask = np.zeros((5, 5), bool)
    mask[1:3, 1:3] = True
    # On the boundary: pixels whose right, lower or lower-right neighbour differs. Inside the square
    # that is all but (1, 1), whose three neighbours are inside; outside it, the background pixels just
    # above or left of it (including the corner (0, 0), via its lower-right neighbour).
    expected = {(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (1, 2), (2, 1), (2, 2)}
    assert _pixels(boundary_map(mask)) == expected


def test_ground_truth_against_itself_is_perfect(blackswan):
    result = evaluate_davis(blackswan, blackswan)
    assert result["J_mean"] == result["F_mean"] == result["JF_mean"] == 1.0
    assert result["J_recall"] == result["F_recall"] == 1.0
    assert result["J_decay"] == result["F_decay"] == 0.0
    assert list(result["per_object"]) == [1]
    assert result["per_frame"]["frame_indices"] == list(range(1, 24))


def test_emptied_prediction_scores_zero(blackswan):
    result = evaluate_davis([np.zeros_like(m) for m in blackswan], blackswan)
    assert all(result[key] == 0.0 for key in ALL_KEYS)


def test_emptied_last_frames_give_full_decay(blackswan):
    # Scored frames 17..22 (video frames 18..23) emptied: 17 of 23 scored frames are perfect.
    pred = [m if i < 18 else np.zeros_like(m) for i, m in enumerate(blackswan)]
    result = evaluate_davis(pred, blackswan)
    for metric in "JF":
        assert result[f"{metric}_mean"] == pytest.approx(17 / 23)
        assert result[f"{metric}_recall"] == pytest.approx(17 / 23)
        assert result[f"{metric}_decay"] == pytest.approx(1.0)
    # Emptying the early frames instead makes the decay negative: first quarter 0, last quarter 1.
    early = [m if i > 7 else np.zeros_like(m) for i, m in enumerate(blackswan)]
    assert evaluate_davis(early, blackswan)["J_decay"] == pytest.approx(-1.0)


def test_shift_within_the_boundary_tolerance(blackswan):
    shift = 8
    assert all(not m[:, -shift:].any() for m in blackswan), "object must stay inside the frame"
    pred = [np.roll(m, shift, axis=1) for m in blackswan]
    expected_j = []
    for mask in blackswan[1:-1]:
        gt = _pixels(mask)
        expected_j.append(_iou_of_sets(gt, {(y, x + shift) for y, x in gt}))
    result = evaluate_davis(pred, blackswan)
    # Every shifted boundary pixel lies exactly 8 px from its source: all boundary pixels match.
    assert result["F_mean"] == 1.0
    assert result["per_frame"]["J"] == pytest.approx(expected_j)
    assert result["J_mean"] == pytest.approx(np.mean(expected_j))
    assert 0.5 < result["J_mean"] < 0.95


def test_one_pixel_erosion(blackswan):
    import cv2

    pred = [cv2.erode(m, np.ones((3, 3), np.uint8)) for m in blackswan]
    # The eroded mask lies inside the ground truth, so J = |eroded| / |gt|; every boundary moves by at
    # most one pixel (within the 8 px tolerance), so F = 1.
    expected_j = [len(_pixels(p)) / len(_pixels(g)) for p, g in zip(pred[1:-1], blackswan[1:-1])]
    result = evaluate_davis(pred, blackswan)
    assert result["per_frame"]["J"] == pytest.approx(expected_j)
    assert result["F_mean"] == 1.0
    assert result["J_recall"] == 1.0


def test_missing_object_scores_zero_and_halves_the_mean(blackswan):
    gt = [m.copy() for m in blackswan]
    for m in gt:
        m[400:460, 20:80] = 2
    result = evaluate_davis(blackswan, gt)
    assert sorted(result["per_object"]) == [1, 2]
    assert result["per_object"][1]["J_mean"] == 1.0
    assert all(result["per_object"][2][key] == 0.0 for key in ALL_KEYS)
    assert result["J_mean"] == result["F_mean"] == result["JF_mean"] == 0.5


def test_equals_the_official_davis2017_code(davis_dir):
    result = evaluate_davis(*official_case(davis_dir))
    assert sorted(result["per_object"]) == [1, 2], "objects are 1..max ID of the first frame; 255 is void"
    for object_id, expected in OFFICIAL_CASE_SCORES.items():
        scores = result["per_object"][object_id]
        for metric in "JF":
            got = [scores[f"{metric}_{stat}"] for stat in ("mean", "recall", "decay")]
            assert got == pytest.approx(expected[metric], rel=1e-12, abs=1e-12), (object_id, metric)
    assert {k: result[k] for k in ("J_mean", "F_mean", "JF_mean")} == pytest.approx(official_video_scores())


def test_object_missing_from_the_first_frame_is_scored(blackswan):
    # Ground truth numbers the swan 2 and has no object 1 at all: object 1 is still scored, as 1 (both
    # empty) where the prediction lacks it and 0 on the 5 scored frames where the prediction has it.
    gt = [m * 2 for m in blackswan]
    perfect = dict.fromkeys(ALL_KEYS, 1.0) | {"J_decay": 0.0, "F_decay": 0.0}
    assert evaluate_davis(gt, gt)["per_object"] == {1: perfect, 2: perfect}
    pred = [g.copy() for g in gt]
    for m in pred[19:24]:  # video frames 19..23 = scored frames 18..22
        m[400:460, 20:80] = 1
    object_1 = evaluate_davis(pred, gt)["per_object"][1]
    assert object_1["J_mean"] == object_1["F_mean"] == pytest.approx(18 / 23)
    # first quarter (scored 0..6) all 1; last quarter (scored 17..22) has 1 right of 6
    assert object_1["J_decay"] == pytest.approx(1 - 1 / 6)


def test_void_pixels_are_background_not_an_object(blackswan):
    # 255 marks void. The official semi-supervised evaluation zeroes it and excludes nothing: a prediction
    # covering the void band loses exactly the band's pixels from J, and 255 is never an object.
    import cv2

    band = [cv2.dilate(m, np.ones((7, 7), np.uint8)).astype(bool) & ~m.astype(bool) for m in blackswan]
    gt = [np.where(b, 255, m).astype(np.uint8) for m, b in zip(blackswan, band)]
    pred = [(m.astype(bool) | b).astype(np.uint8) for m, b in zip(blackswan, band)]
    result = evaluate_davis(pred, gt)
    assert list(result["per_object"]) == [1]
    expected_j = [len(_pixels(m)) / len(_pixels(m) | _pixels(b)) for m, b in zip(blackswan[1:-1], band[1:-1])]
    assert result["per_frame"]["J"] == pytest.approx(expected_j)
    assert max(expected_j) < 0.97


def test_unknown_predicted_ids_are_ignored(blackswan):
    pred = [m.copy() for m in blackswan]
    for m in pred:
        m[400:460, 20:80] = 7
    assert evaluate_davis(pred, blackswan)["JF_mean"] == 1.0


@pytest.mark.parametrize(
    "pred, gt, message",
    [
        ([np.zeros((4, 4), int)] * 4, [np.ones((4, 4), int)] * 5, "4 frames but ground truth has 5"),
        ([np.zeros((4, 5), int)] * 4, [np.ones((4, 4), int)] * 4, "resize the prediction"),
        ([np.zeros((4, 4), int)] * 2, [np.ones((4, 4), int)] * 2, "at least 3"),
        ([np.zeros((4, 4))] * 3, [np.ones((4, 4), int)] * 3, "integer label map"),
        ([np.zeros((4, 4), int)] * 3, [np.zeros((4, 4), int)] * 3, "first ground-truth frame has no object"),
        ([], [], "pred_label_maps is empty"),
        ([np.zeros((4, 4), int)] * 3, [np.ones((4, 4), int)] * 2 + [np.ones((5, 4), int)], "one size"),
    ],
)
def test_bad_input_is_rejected(pred, gt, message):
    with pytest.raises(EvaluationError, match=message):
        evaluate_davis(pred, gt)


# --- stored as a FiftyOne evaluation run -----------------------------------------------------------


@pytest.fixture(scope="module")
def davis_dataset(davis_dir, tmp_path_factory):
    """blackswan and libby imported from DAVIS (25 frames each) with frames.ground_truth(_seg)."""
    import fiftyone as fo

    from samtrack_ops.export import import_davis

    dataset = import_davis(davis_dir, tmp_path_factory.mktemp("videos"), sequences=["blackswan", "libby"])
    yield dataset
    if fo.dataset_exists(dataset.name):
        dataset.delete()


@pytest.fixture
def scored_dataset(davis_dataset):
    """A clone whose frames.tracks equals the ground truth on blackswan and is emptied on libby from
    frame 19 on (scored frames 17..22, as in test_emptied_last_frames_give_full_decay)."""
    import fiftyone as fo

    dataset = davis_dataset.clone()
    for sample in dataset.iter_samples(autosave=True):
        for frame_number, frame in sample.frames.items():
            keep = sample.filepath.endswith("blackswan.mp4") or frame_number < 19
            frame["tracks"] = frame["ground_truth"] if keep else fo.Detections()
    yield dataset
    dataset.delete()


def test_evaluation_run_fields_and_results(scored_dataset):
    from samtrack_ops.fiftyone.evaluation_runs import DavisEvaluationResults, evaluate_tracks

    results = evaluate_tracks(scored_dataset, "tracks", "ground_truth", eval_key="davis")
    assert scored_dataset.list_evaluations() == ["davis"]
    by_video = dict(zip(scored_dataset.values("filepath"), scored_dataset.values("davis_JF")))
    blackswan_jf = next(v for k, v in by_video.items() if k.endswith("blackswan.mp4"))
    libby_jf = next(v for k, v in by_video.items() if k.endswith("libby.mp4"))
    assert blackswan_jf == 1.0 and libby_jf == pytest.approx(17 / 23)
    # Sortable in the App: the worst video first.
    assert scored_dataset.sort_by("davis_JF").first().filepath.endswith("libby.mp4")
    libby = scored_dataset.sort_by("davis_JF").first()
    frame_j = [libby.frames[n]["davis_J"] for n in range(1, 26)]
    assert frame_j[0] is None and frame_j[-1] is None
    assert frame_j[1:18] == [1.0] * 17 and frame_j[18:24] == [0.0] * 6
    assert results.metrics()["J_decay"] == pytest.approx(0.5)  # mean over the two objects: 0 and 1
    loaded = scored_dataset.load_evaluation_results("davis")
    assert isinstance(loaded, DavisEvaluationResults)
    assert loaded.metrics() == pytest.approx(results.metrics())


def test_evaluation_run_bad_input_overwrites_nothing(scored_dataset):
    import fiftyone as fo

    from samtrack_ops.fiftyone.evaluation_runs import evaluate_tracks

    evaluate_tracks(scored_dataset, "tracks", "ground_truth", eval_key="davis")
    before = scored_dataset.values("davis_JF")
    with pytest.raises(EvaluationError, match="already exists"):
        evaluate_tracks(scored_dataset, "ground_truth", "ground_truth", eval_key="davis")
    with pytest.raises(EvaluationError, match="'nope' is not a frame field.*tracks"):
        evaluate_tracks(scored_dataset, "nope", "ground_truth", eval_key="other")
    with pytest.raises(EvaluationError, match="must be a valid identifier"):
        evaluate_tracks(scored_dataset, "tracks", "ground_truth", eval_key="bad key")
    scored_dataset.add_frame_field("empty", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    with pytest.raises(EvaluationError, match="frames.empty has no labels"):
        evaluate_tracks(scored_dataset, "tracks", "empty", eval_key="other")
    assert scored_dataset.values("davis_JF") == before
    assert scored_dataset.list_evaluations() == ["davis"]
    assert not scored_dataset.has_field("other_J")

    libby = scored_dataset.match(fo.ViewField("filepath").ends_with("libby.mp4")).first()
    libby.frames[3]["small"] = fo.Segmentation(mask=np.ones((48, 85), np.uint8))
    libby.save()
    with pytest.raises(EvaluationError, match=r"libby.mp4.*\(48, 85\).*\(480, 854\)"):
        evaluate_tracks(scored_dataset, "small", "ground_truth", eval_key="other")
    with pytest.raises(ValueError, match="pred_field=tracks"):
        evaluate_tracks(scored_dataset, "ground_truth_seg", "ground_truth", eval_key="davis", overwrite=True)
    assert scored_dataset.values("davis_JF") == before


def test_segmentation_fields_score_like_detections(scored_dataset):
    from samtrack_ops.fiftyone.evaluation_runs import evaluate_tracks

    evaluate_tracks(scored_dataset, "tracks", "ground_truth", eval_key="dets")
    evaluate_tracks(scored_dataset, "tracks", "ground_truth_seg", eval_key="seg")
    assert scored_dataset.values("seg_JF") == scored_dataset.values("dets_JF")
    scored_dataset.delete_evaluation("seg")
    assert not scored_dataset.has_field("seg_JF") and not scored_dataset.has_frame_field("seg_J")
    assert scored_dataset.has_field("dets_JF")


def test_evaluation_run_passes_void_and_unseen_ids_through(davis_dataset, davis_dir):
    # official_case() stored on blackswan as Segmentation and as Detections (void = a detection with
    # index 255): both fields give the official code's scores, with objects "1" and "2" and no "255".
    from samtrack_ops.fiftyone.evaluation_runs import evaluate_tracks
    from samtrack_ops.fiftyone.storage import label_map_to_detections, label_map_to_segmentation

    pred_maps, gt_maps = official_case(davis_dir)
    dataset = davis_dataset.select_by("filepath", [f for f in davis_dataset.values("filepath")
                                                   if f.endswith("blackswan.mp4")]).clone()
    sample = dataset.first()
    for number, (pred, gt) in enumerate(zip(pred_maps, gt_maps), start=1):
        sample.frames[number]["case_pred"] = label_map_to_segmentation(pred)
        sample.frames[number]["case_gt_seg"] = label_map_to_segmentation(gt)
        sample.frames[number]["case_gt"] = label_map_to_detections(gt)
    sample.save()
    assert [d.index for d in sample.frames[1]["case_gt"].detections] == [2, 255]
    expected = official_video_scores()
    for gt_field in ("case_gt_seg", "case_gt"):
        results = evaluate_tracks(dataset, "case_pred", gt_field, eval_key=f"official_{gt_field}")
        video = next(iter(results.videos.values()))
        assert sorted(video["per_object"]) == ["1", "2"], gt_field
        assert {k: video[k] for k in expected} == pytest.approx(expected, rel=1e-12), gt_field
        assert dataset.values(f"official_{gt_field}_JF") == pytest.approx([expected["JF_mean"]], rel=1e-12)
    dataset.delete()
