"""Benchmark review and correct: what quality signals add to a tracking run, and what a correction costs.

1. Signals: one interactive run (a Mask prompt on frame 0, then tracking) over the video; the quality
   signals (``samtrack_ops.signals.QualityMonitor``) of every frame are computed in the same loop and
   timed apart: their share of the run's time is the overhead of signals (target: <= 5 %).
2. Corrections: the run's labels are stored in a throwaway dataset, then object 1 is re-segmented on
   frame k (``samtrack_ops.fiftyone.corrections.resegment_track``) with early stop and without it. A
   correction over n frames should cost about n tracked frames, not the whole video.

Without --tracker-checkpoint the tracker has random weights (R50-DeAOT-L, real architecture and cost); random
weights track garbage, so early stop rarely triggers here (tests/test_corrections.py pins it with labels
that agree).

    python benchmarks/review.py [--video ../shared/data/blackswan.mp4] [--frames 20] [--k 5]
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO_DIR.parent / "shared" / "data" / "blackswan.mp4"
sys.path.insert(0, str(REPO_DIR))
os.environ.setdefault("FIFTYONE_DATABASE_NAME", f"samtrack-bench-{uuid.uuid4().hex[:8]}")


def build_tracker(args):
    import torch

    from samtrack_ops.tracker import load_tracker
    from samtrack_ops.tracker.network import build_network
    from samtrack_ops.tracker.tracker import Tracker

    torch.manual_seed(0)
    if args.tracker_checkpoint:
        return load_tracker("r50_deaotl", args.tracker_checkpoint, args.device)
    return Tracker(build_network("r50_deaotl").to(args.device or "cpu"))


def centre_mask(frame):
    import numpy as np

    height, width = frame.shape[:2]
    mask = np.zeros((height, width), bool)
    mask[height // 3: 2 * height // 3, width // 3: 2 * width // 3] = True
    return mask


def signals_run(frames, tracker):
    """(results, seconds of the whole loop, seconds spent in signals)."""
    from samtrack_ops import segment_and_track
    from samtrack_ops.prompts import Mask
    from samtrack_ops.signals import QualityMonitor

    monitor, results, in_signals = QualityMonitor(), [], 0.0
    start = time.perf_counter()
    for result in segment_and_track(frames, [Mask(frame=0, mask=centre_mask(frames[0]))], tracker=tracker):
        before = time.perf_counter()
        monitor.update(result.label_map, {info.id: info.score for info in result.objects})
        in_signals += time.perf_counter() - before
        results.append(result)
    return results, time.perf_counter() - start, in_signals


def correction_runs(video, results, tracker, k):
    """[(name, CorrectionResult, seconds)] of re-segmenting object 1 on frame k with and without early stop."""
    import fiftyone as fo

    from samtrack_ops.fiftyone import corrections
    from samtrack_ops.fiftyone.runs import write_results
    from samtrack_ops.prompts import Mask

    dataset = fo.Dataset()
    try:
        sample = fo.Sample(filepath=str(video))
        dataset.add_sample(sample)
        dataset.compute_metadata()
        rows = []
        for name, early_stop in (("correction, early stop", True), ("correction, no early stop", False)):
            write_results(dataset, sample.id, results, {"bench": "Detections"}, "bench")
            mask = results[k - 1].label_map == 1
            mask[:, : mask.shape[1] // 2] = False  # "re-segment": keep the object's right half
            start = time.perf_counter()
            result = corrections.resegment_track(dataset[sample.id], "bench", k, 1, Mask(frame=k - 1, mask=mask),
                                                 tracker=tracker, early_stop=early_stop)
            rows.append((name, result, time.perf_counter() - start))
        return rows
    finally:
        dataset.delete()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--k", type=int, default=5, help="corrected frame number (1-based)")
    parser.add_argument("--tracker-checkpoint")
    parser.add_argument("--device")
    args = parser.parse_args()

    import itertools

    from samtrack_ops.video import open_frames

    frames = list(itertools.islice(open_frames(args.video), args.frames))
    tracker = build_tracker(args)
    results, seconds, in_signals = signals_run(frames, tracker)
    per_frame = seconds / len(frames)
    print(f"video {args.video}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}\n")
    print("| run | frames | seconds | s / frame |")
    print("|---|---|---|---|")
    print(f"| tracking run incl. signals | {len(frames)} | {seconds:.1f} | {per_frame:.3f} |")
    print(f"| of which quality signals | {len(frames)} | {in_signals:.2f} | {in_signals / len(frames):.4f} |")
    print(f"\nsignals overhead: {100 * in_signals / (seconds - in_signals):.2f} % of the tracking run\n")

    print("| correction on frame k | frames rewritten | frames tracked | seconds | s / tracked frame |")
    print("|---|---|---|---|---|")
    for name, result, taken in correction_runs(args.video, results, tracker, args.k):
        rewritten = result.last_frame - result.first_frame + 1
        print(f"| {name} (k={args.k}) | {result.first_frame}..{result.last_frame} ({rewritten}) | "
              f"{result.tracked_frames} | {taken:.1f} | {taken / max(result.tracked_frames, 1):.3f} |")
    print(f"| full re-track for comparison | {len(frames)} | {len(frames)} | {seconds:.1f} | {per_frame:.3f} |")


if __name__ == "__main__":
    main()
