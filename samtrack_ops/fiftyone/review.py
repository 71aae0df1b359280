"""The review queue: the frame ranges of a label field most likely wrong, worst first.

Every frame that samtrack writes carries its quality signals (``samtrack_ops.signals``) on the
Detections: ``frames.<field>.suspicion`` (0..1) and ``frames.<field>.reason``, and per Detection the
object's signals. :func:`build_review_queue` groups the frames whose suspicion reaches ``threshold`` into
ranges of consecutive frames, stores them on each video as ``<field>_review`` (``fo.TemporalDetections``:
label = the worst frame's reason, ``confidence`` = the worst suspicion, ``support`` = [first, last]) and
saves the clips view of them, worst first, as ``samtrack_review_<field>``. It also stores per video
``<field>_suspicion`` (the worst unreviewed frame) and ``<field>_flagged`` (flagged unreviewed frames), so
samples sort and filter by them too.

A frame is *reviewed* when its Detections carry ``reviewed=True`` (:func:`mark_reviewed`) or any of its
Detection labels is tagged :data:`REVIEWED_TAG` (the App's label tagging); reviewed frames leave the queue
when it is built again.
"""

import fiftyone as fo

REVIEWED_TAG = "reviewed"
DEFAULT_THRESHOLD = 0.6


def review_view_name(label_field):
    """The saved view holding the review queue of ``frames.<label_field>``."""
    return f"samtrack_review_{label_field}"


def review_ranges(suspicions, threshold=DEFAULT_THRESHOLD):
    """``[(first, last, worst suspicion, reason of the worst frame)]`` of runs of consecutive flagged frames.

    suspicions: ``[(frame_number, suspicion, reason)]`` of the unreviewed frames, in frame order.
    """
    ranges = []
    for number, suspicion, reason in suspicions:
        if suspicion < threshold:
            continue
        if ranges and ranges[-1][1] == number - 1:
            first, _, worst, worst_reason = ranges[-1]
            ranges[-1] = (first, number, *max((worst, worst_reason), (suspicion, reason)))
        else:
            ranges.append((number, number, suspicion, reason))
    return ranges


def frame_suspicions(sample_collection, label_field):
    """``{sample_id: [(frame_number, suspicion, reason)]}`` of the frames not yet reviewed."""
    prefix = f"frames.{label_field}"
    ids, numbers, suspicions, reasons, reviewed, tags = sample_collection.values(
        ["id", "frames.frame_number", f"{prefix}.suspicion", f"{prefix}.reason", f"{prefix}.reviewed",
         f"{prefix}.detections.tags"])
    result = {}
    for sample_id, *per_frame in zip(ids, numbers, suspicions, reasons, reviewed, tags):
        result[sample_id] = [(number, suspicion or 0.0, reason or "")
                             for number, suspicion, reason, done, frame_tags in zip(*per_frame)
                             if not done and not any(REVIEWED_TAG in (t or ()) for t in frame_tags or ())]
    return result


def store_video_summaries(sample_collection, label_field, threshold=DEFAULT_THRESHOLD):
    """Stores ``<label_field>_suspicion`` (worst unreviewed frame) and ``<label_field>_flagged`` (unreviewed
    frames with suspicion >= threshold) on every video; returns :func:`frame_suspicions`."""
    suspicions = frame_suspicions(sample_collection, label_field)
    samples = sample_collection._dataset.select(list(suspicions), ordered=True)
    samples.set_values(f"{label_field}_suspicion",
                       [max((s for _, s, _ in frames), default=0.0) for frames in suspicions.values()])
    samples.set_values(f"{label_field}_flagged",
                       [sum(s >= threshold for _, s, _ in frames) for frames in suspicions.values()])
    return suspicions


def build_review_queue(sample_collection, label_field, threshold=DEFAULT_THRESHOLD, save=True):
    """Stores the review ranges of every video and returns (and saves) the clips view of them, worst first.

    Args:
        sample_collection: video samples whose ``frames.<label_field>`` samtrack wrote
        label_field: the tracked frame field to review
        threshold: frames with ``suspicion >= threshold`` are flagged
        save: save the view on the dataset as :func:`review_view_name` (replacing the previous queue)

    Returns:
        the clips view (one clip per range, field ``<label_field>_review`` with the reason as label and
        the worst suspicion as confidence), sorted by suspicion, highest first
    """
    dataset = sample_collection._dataset
    review_field, suspicions = f"{label_field}_review", store_video_summaries(sample_collection, label_field, threshold)
    ids = list(suspicions)
    queues = [fo.TemporalDetections(detections=[
        fo.TemporalDetection(label=reason or "suspicious", support=[first, last], confidence=suspicion)
        for first, last, suspicion, reason in review_ranges(suspicions[sample_id], threshold)]) for sample_id in ids]
    dataset.select(ids, ordered=True).set_values(review_field, queues)
    view = dataset.select(ids).to_clips(review_field).sort_by(f"{review_field}.confidence", reverse=True)
    if save:
        dataset.save_view(review_view_name(label_field), view, overwrite=True)
    return view


def mark_reviewed(sample, label_field, frame_numbers):
    """Marks frames of one video sample as reviewed (``frames.<label_field>.reviewed = True``)."""
    for number in frame_numbers:
        detections = sample.frames[int(number)][label_field]
        if detections is not None:
            detections["reviewed"] = True
    sample.save()
