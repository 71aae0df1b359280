"""Click on an object in one frame of a video and track it through the whole video (Python API).

    python examples/click_to_track.py VIDEO --click X,Y [--click X,Y ...] [--frame 0] [--out masks/]

Writes one PNG label map per frame (0 = background, 1 = the clicked object; 8-bit for up to 255 objects,
16-bit beyond) and prints the object's area per frame. Models come from the checkpoint cache
(~/.cache/samtrack, downloaded on first use) unless --sam-checkpoint / --tracker-checkpoint name files.
"""

import argparse
from pathlib import Path

import cv2

from samtrack_ops import segment_and_track
from samtrack_ops.prompts import Click


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", help="video file or folder of frames")
    parser.add_argument("--click", action="append", required=True, metavar="X,Y",
                        help="a positive click in pixels of the key frame (repeat for more)")
    parser.add_argument("--frame", type=int, default=0, help="0-based index of the clicked frame")
    parser.add_argument("--label", default="object", help="name of the object")
    parser.add_argument("--out", default="masks", help="folder for the per-frame label maps")
    parser.add_argument("--sam-checkpoint", help="SAM ViT-B checkpoint file (default: the cache)")
    parser.add_argument("--tracker-checkpoint", help="R50-DeAOT-L checkpoint file (default: the cache)")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    return parser.parse_args()


def main():
    args = parse_args()
    points = [[float(v) for v in click.split(",")] for click in args.click]
    prompt = Click(frame=args.frame, points=points, labels=[1] * len(points), label=args.label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = segment_and_track(
        args.video, [prompt], mode="interactive", device=args.device,
        sam_checkpoint=args.sam_checkpoint, tracker_checkpoint=args.tracker_checkpoint,
    )
    for result in results:
        label_map = result.label_map.astype("uint16" if result.label_map.max() > 255 else "uint8")
        cv2.imwrite(str(out / f"{result.frame_index:05d}.png"), label_map)
        areas = ", ".join(f"{obj.label} #{obj.id}: {int((label_map == obj.id).sum())} px" for obj in result.objects)
        print(f"frame {result.frame_index}: {areas or 'no object visible'}")
    print(f"label maps written to {out}/")


if __name__ == "__main__":
    main()
