"""Import DAVIS sequences, track their objects from the first-frame ground truth, and score J&F.

    python examples/davis_evaluate.py DAVIS_ROOT --sequences blackswan bmx-trees [--videos-dir davis_videos]

DAVIS_ROOT holds JPEGImages/480p/ and Annotations/480p/ (DAVIS 2016 or 2017). Each sequence becomes an mp4
video in a FiftyOne dataset with frames.ground_truth; the first frame's masks are the only prompts; the
tracks go to frames.tracks and the DAVIS metrics (J, F, their recall and decay) are stored as evaluation
"davis" on the dataset and printed.
"""

import argparse

import numpy as np

from samtrack_ops.export import import_davis
from samtrack_ops.fiftyone import track_samples
from samtrack_ops.fiftyone.evaluation_runs import evaluate_tracks
from samtrack_ops.prompts import Mask


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("davis_root", help="DAVIS folder with JPEGImages/ and Annotations/")
    parser.add_argument("--sequences", nargs="+", help="sequence names (default: all)")
    parser.add_argument("--videos-dir", default="davis_videos", help="where the sequence mp4 files go")
    parser.add_argument("--dataset", default="davis-eval", help="name of the new FiftyOne dataset")
    parser.add_argument("--sam-checkpoint", help="SAM ViT-B checkpoint file (default: the cache)")
    parser.add_argument("--tracker-checkpoint", help="R50-DeAOT-L checkpoint file (default: the cache)")
    return parser.parse_args()


def first_frame_masks(sample):
    """One Mask prompt per ground-truth object of the video's first frame."""
    label_map = sample.frames[1]["ground_truth_seg"].get_mask()
    return [Mask(frame=0, mask=label_map == k, label=f"object {k}") for k in np.unique(label_map) if k]


def main():
    args = parse_args()
    dataset = import_davis(args.davis_root, args.videos_dir, dataset_name=args.dataset, sequences=args.sequences)
    dataset.persistent = True
    prompts = {sample.id: first_frame_masks(sample) for sample in dataset}
    model_files = {"sam_checkpoint": args.sam_checkpoint, "tracker_checkpoint": args.tracker_checkpoint}
    track_samples(dataset, prompts, "tracks", **{k: v for k, v in model_files.items() if v})
    results = evaluate_tracks(dataset, "tracks", "ground_truth", eval_key="davis", overwrite=True)
    print(f"dataset {dataset.name!r}: {len(dataset)} sequence(s) tracked into frames.tracks")
    results.print_metrics()


if __name__ == "__main__":
    main()
