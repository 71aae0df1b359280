"""DAVIS semi-supervised video object segmentation metrics: J (region) and F (boundary).

The definitions follow the official DAVIS 2017 evaluation code
(https://github.com/davisvideochallenge/davis2017-evaluation, ``davis2017/metrics.py`` and
``davis2017/utils.py``):

- J of one object in one frame is the IoU of the predicted and ground-truth masks; 1 when both are empty.
- F is the F-measure of boundary precision and recall. Boundaries are one-pixel maps (a pixel is on the
  boundary when it differs from its right, lower or lower-right neighbour); a boundary pixel matches
  when the other boundary has a pixel within ``ceil(0.008 * image diagonal)`` pixels (a disk).
  Empty boundaries: both empty -> 1, exactly one empty -> 0.
- Semi-supervised protocol: the first frame (given to the method) and the last frame are not scored.
- Per object: mean, recall (fraction of frames scoring above 0.5) and decay (mean of the first quarter
  minus mean of the last quarter, with the official overlapping quarter bounds).
- Per video: each statistic averaged over the ground-truth objects; ``JF_mean = (J_mean + F_mean) / 2``.
- Ground-truth objects are the IDs 1..N, N the largest ID in the first ground-truth frame: an ID below N
  that is absent from the first frame is still an object (scored 1 on frames where both the ground truth
  and the prediction lack it). A ground-truth object absent from the prediction scores as an empty
  prediction (0 wherever the ground truth is non-empty).
- Void pixels (ID 255 in DAVIS annotations) are background in the ground truth and never an object. The
  official semi-supervised evaluation zeroes them and passes no void mask to the J and F functions
  (``davis2017/evaluation.py`` calls ``_evaluate_semisupervised(..., None, ...)``), so they are not
  excluded from the scores; only its unsupervised task excludes them.

Two deliberate differences from the official script, neither of which changes a DAVIS score: predicted
IDs that are not ground-truth objects are ignored (the official script exits), and the decay bin indices
are plain integers (the official script stores them as uint8, which wraps for videos over 257 frames).
"""

import math

import cv2
import numpy as np

BOUND_THRESHOLD = 0.008
RECALL_THRESHOLD = 0.5
VOID_ID = 255
DECAY_BINS = 4
METRIC_KEYS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean")


class EvaluationError(ValueError):
    """The inputs cannot be evaluated (shapes, lengths, empty ground truth)."""


def region_similarity(gt_mask, pred_mask):
    """J: IoU of two HxW bool masks; 1.0 when both are empty."""
    union = np.count_nonzero(gt_mask | pred_mask)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt_mask & pred_mask) / union


def boundary_map(mask):
    """Returns the HxW bool one-pixel boundary of an HxW bool mask.

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour; outside
    the image counts as background, except that the last row compares only with the right neighbour, the
    last column only with the lower neighbour, and the bottom-right pixel is never on the boundary.
    """
    right = np.zeros_like(mask)
    right[:, :-1] = mask[:, 1:]
    below = np.zeros_like(mask)
    below[:-1, :] = mask[1:, :]
    below_right = np.zeros_like(mask)
    below_right[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ right) | (mask ^ below) | (mask ^ below_right)
    boundary[-1, :] = mask[-1, :] ^ right[-1, :]
    boundary[:, -1] = mask[:, -1] ^ below[:, -1]
    boundary[-1, -1] = False
    return boundary


def boundary_tolerance(frame_size, bound_th=BOUND_THRESHOLD):
    """Match distance in pixels: ``ceil(bound_th * diagonal)`` for a fraction, ``bound_th`` itself if >= 1."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(*frame_size)))


def _disk(radius):
    """(2r+1)x(2r+1) uint8 kernel of the pixels within Euclidean distance ``radius`` of the centre."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_f_measure(gt_mask, pred_mask, bound_th=BOUND_THRESHOLD):
    """F: boundary F-measure of two HxW bool masks (see the module docstring)."""
    gt_boundary = boundary_map(gt_mask)
    pred_boundary = boundary_map(pred_mask)
    n_gt, n_pred = np.count_nonzero(gt_boundary), np.count_nonzero(pred_boundary)
    if n_gt == 0 or n_pred == 0:
        return 1.0 if n_gt == n_pred else 0.0
    disk = _disk(boundary_tolerance(gt_mask.shape, bound_th))
    gt_near = cv2.dilate(gt_boundary.astype(np.uint8), disk).astype(bool)
    pred_near = cv2.dilate(pred_boundary.astype(np.uint8), disk).astype(bool)
    precision = np.count_nonzero(pred_boundary & gt_near) / n_pred
    recall = np.count_nonzero(gt_boundary & pred_near) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def decay_bins(num_frames, num_bins=DECAY_BINS):
    """Returns the official ``(start, stop)`` slices of the decay bins; neighbouring bins share a frame."""
    bounds = (np.round(np.linspace(1, num_frames, num_bins + 1) + 1e-10) - 1).astype(int)
    return [(bounds[i], bounds[i + 1] + 1) for i in range(num_bins)]


def sequence_statistics(per_frame_values):
    """Returns ``(mean, recall, decay)`` of one object's per-frame J or F values (a 1-D sequence)."""
    values = np.asarray(per_frame_values, dtype=float)
    bins = decay_bins(len(values))
    first, last = values[slice(*bins[0])], values[slice(*bins[-1])]
    return values.mean(), np.mean(values > RECALL_THRESHOLD), first.mean() - last.mean()


def _as_label_maps(label_maps, name):
    """Returns a list of HxW integer arrays, checking they are 2-D integer arrays of one size."""
    maps = [np.asarray(m) for m in label_maps]
    if not maps:
        raise EvaluationError(f"{name} is empty: pass one HxW label map per frame")
    for index, label_map in enumerate(maps):
        if label_map.ndim != 2 or not np.issubdtype(label_map.dtype, np.integer):
            raise EvaluationError(
                f"{name}[{index}] must be an HxW integer label map, got dtype {label_map.dtype} and "
                f"shape {label_map.shape}"
            )
        if label_map.shape != maps[0].shape:
            raise EvaluationError(
                f"{name}[{index}] has size {label_map.shape} but {name}[0] has {maps[0].shape}: all "
                "frames of a video must have one size"
            )
    return maps


def _check_pair(pred_maps, gt_maps):
    if len(pred_maps) != len(gt_maps):
        raise EvaluationError(
            f"prediction has {len(pred_maps)} frames but ground truth has {len(gt_maps)}: pass one label "
            "map per frame of the same video for both"
        )
    if pred_maps[0].shape != gt_maps[0].shape:
        raise EvaluationError(
            f"prediction frames are {pred_maps[0].shape} but ground-truth frames are {gt_maps[0].shape}: "
            "resize the prediction to the ground-truth size (nearest neighbour) first"
        )
    if len(gt_maps) < 3:
        raise EvaluationError(
            f"the video has {len(gt_maps)} frames; semi-supervised evaluation drops the first and the last "
            "frame, so it needs at least 3"
        )


def _object_scores(pred_maps, gt_maps, object_id):
    """Returns this object's (J per frame, F per frame) over the given frames."""
    j_values, f_values = [], []
    for pred_map, gt_map in zip(pred_maps, gt_maps):
        gt_mask, pred_mask = gt_map == object_id, pred_map == object_id
        j_values.append(region_similarity(gt_mask, pred_mask))
        f_values.append(boundary_f_measure(gt_mask, pred_mask))
    return np.array(j_values), np.array(f_values)


def _summary(j_values, f_values):
    j_mean, j_recall, j_decay = sequence_statistics(j_values)
    f_mean, f_recall, f_decay = sequence_statistics(f_values)
    values = (j_mean, j_recall, j_decay, f_mean, f_recall, f_decay, (j_mean + f_mean) / 2)
    return {key: float(value) for key, value in zip(METRIC_KEYS, values)}


def evaluate_davis(pred_label_maps, gt_label_maps):
    """Scores one video's predicted label maps against its ground truth (DAVIS semi-supervised).

    Args:
        pred_label_maps: sequence of T HxW integer label maps (object IDs as in the ground truth, 0 =
            background), one per frame
        gt_label_maps: sequence of T HxW integer ground-truth label maps (255 = void, read as background)

    Returns:
        dict with the float keys ``J_mean``, ``J_recall``, ``J_decay``, ``F_mean``, ``F_recall``,
        ``F_decay`` and ``JF_mean`` (0-1 scale, averaged over the ground-truth objects 1..N, N the
        largest ID in the first ground-truth frame), ``per_object`` (``{object_id: the same keys}``) and ``per_frame`` (``{"frame_indices": scored 0-based frames,
        "J": ..., "F": ...}``, each frame's value averaged over the objects)

    Raises:
        EvaluationError: different frame counts or sizes, fewer than 3 frames, non-integer maps, or no
            object in the first ground-truth frame
    """
    pred_maps = _as_label_maps(pred_label_maps, "pred_label_maps")
    gt_maps = _as_label_maps(gt_label_maps, "gt_label_maps")
    _check_pair(pred_maps, gt_maps)
    gt_maps = [np.where(m == VOID_ID, 0, m) for m in gt_maps]
    object_ids = list(range(1, int(gt_maps[0].max()) + 1))
    if not object_ids:
        raise EvaluationError(
            "the first ground-truth frame has no object: semi-supervised evaluation scores the objects "
            "given in the first frame"
        )
    scored = slice(1, len(gt_maps) - 1)
    scores = {i: _object_scores(pred_maps[scored], gt_maps[scored], i) for i in object_ids}
    per_object = {i: _summary(j, f) for i, (j, f) in scores.items()}
    result = {key: float(np.mean([s[key] for s in per_object.values()])) for key in METRIC_KEYS}
    result["per_object"] = per_object
    result["per_frame"] = {
        "frame_indices": list(range(1, len(gt_maps) - 1)),
        "J": np.mean([j for j, _ in scores.values()], axis=0).tolist(),
        "F": np.mean([f for _, f in scores.values()], axis=0).tolist(),
    }
    return result
