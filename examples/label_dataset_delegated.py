"""Label every video of a folder from a text prompt with delegated FiftyOne workers (automatic mode).

    python examples/label_dataset_delegated.py VIDEO_DIR --text "swan. duck" [--workers 2]

Queues one delegated ``track_objects`` operation per video (Grounding-DINO finds the --text objects every
--sam-gap frames, SAM segments them, DeAOT tracks them); --workers N starts N local workers and waits.
Workers on other machines join with ``fiftyone delegated launch`` and the same FIFTYONE_DATABASE_URI;
each video is processed exactly once.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import fiftyone as fo
from bson import ObjectId
from fiftyone.operators.delegated import DelegatedOperationService

from samtrack_ops.fiftyone import call_to_params, queue_videos

FIELD = "auto_tracks"
MODEL_FILES = ("sam_checkpoint", "tracker_checkpoint", "detector_checkpoint", "text_encoder_path")

PARSER = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
PARSER.add_argument("video_dir", help="folder of videos")
PARSER.add_argument("--text", required=True, help="object classes for Grounding-DINO, e.g. 'swan. duck'")
PARSER.add_argument("--dataset", default="samtrack-auto", help="FiftyOne dataset (created if missing)")
PARSER.add_argument("--sam-gap", type=int, default=10, help="look for new objects every N frames")
PARSER.add_argument("--box-threshold", type=float, default=0.25, help="Grounding-DINO box score threshold")
PARSER.add_argument("--max-objects", type=int, default=255, help="most objects tracked per video")
PARSER.add_argument("--workers", type=int, default=0, help="local workers to start (0: only queue)")
for name in MODEL_FILES:
    PARSER.add_argument("--" + name.replace("_", "-"), help="file or folder (default: the model cache)")


def wait_for(operations, workers, service):
    """Final states of the operations, once every one completed or failed."""
    while True:
        states = [service.get(op).run_state for op in operations]
        if all(state in ("completed", "failed") for state in states):
            return states
        if all(worker.poll() is not None for worker in workers):
            sys.exit("every worker exited before the videos were done (out of memory?)")
        time.sleep(2)


def main():
    args = PARSER.parse_args()
    dataset = (fo.load_dataset(args.dataset) if fo.dataset_exists(args.dataset) else fo.Dataset.from_dir(
        args.video_dir, fo.types.VideoDirectory, name=args.dataset, persistent=True))
    model_files = {name: getattr(args, name) for name in MODEL_FILES if getattr(args, name)}
    run = call_to_params(None, FIELD, "automatic", auto_text=args.text, sam_gap=args.sam_gap,
                         box_threshold=args.box_threshold, max_obj_num=args.max_objects, **model_files)
    queued = [ObjectId(op) for op in queue_videos(dataset, run)]
    print(f"queued {len(queued)} delegated operation(s) on dataset {dataset.name!r}")
    if not args.workers:
        return print("now start workers: fiftyone delegated launch   (same FIFTYONE_DATABASE_URI everywhere)")
    launch = [str(Path(sys.executable).with_name("fiftyone")), "delegated", "launch"]
    workers = [subprocess.Popen(launch) for _ in range(args.workers)]
    try:
        states = wait_for(queued, workers, DelegatedOperationService())
    finally:
        for worker in workers:
            worker.terminate()
    print(f"{states.count('completed')} video(s) labelled into frames.{FIELD}, {states.count('failed')} failed")
    sys.exit(1 if "failed" in states else 0)


if __name__ == "__main__":
    main()
