"""Benchmark the click-to-track panel's click -> mask preview path at 854x480 (blackswan).

What a click costs in the panel (frame read, SAM, overlay drawn and encoded for the App), for:

- first click on a new frame: SAM's image embedding of the frame, then the prompt encoder + mask decoder;
- later clicks on the same frame: the cached embedding, so only the prompt encoder + mask decoder;
- first click on a frame whose embedding the panel prefetched when the frame was opened;
- a click after returning to a frame seen before (the embedding LRU).

SAM ViT-B with random weights (real architecture, real cost) unless --sam-checkpoint is given.

    python benchmarks/click_preview.py [--video ../shared/data/blackswan.mp4] [--clicks 5] [--device cpu]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = Path(os.environ.get("SAMTRACK_SHARED_DIR", REPO_DIR.parent / "shared")) / "data" / "blackswan.mp4"
sys.path.insert(0, str(REPO_DIR))  # the plugin's own package, as FiftyOne loads it


def build_segmentor(args):
    import torch
    from segment_anything import sam_model_registry

    from samtrack_ops.segmentor import Segmentor, load_segmentor

    torch.manual_seed(0)
    if args.sam_checkpoint:
        return load_segmentor("vit_b", args.sam_checkpoint, args.device)
    return Segmentor(sam_model_registry["vit_b"](), device=args.device)


def click_seconds(segmentor, video, frame_number, point):
    """Seconds from a click to the encoded preview image, as the panel's compute_preview does it."""
    from plugin import frame_canvas
    from samtrack_ops.prompts import Click

    started = time.perf_counter()
    frame = frame_canvas.read_frame(video, frame_number)
    segmentor.set_frame(frame)
    mask, _ = segmentor.predict(Click(frame_number - 1, [point], [1]))
    image = frame_canvas.draw_overlay(frame, [mask], [point])
    frame_canvas.figure(image, frame.shape[:2])
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--clicks", type=int, default=5, help="later clicks measured per frame")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sam-checkpoint")
    args = parser.parse_args(argv)

    from plugin import frame_canvas

    segmentor = build_segmentor(args)
    frame = frame_canvas.read_frame(args.video, 1)
    height, width = frame.shape[:2]
    points = [(width * (0.3 + 0.4 * i / max(1, args.clicks - 1)), height * 0.55) for i in range(args.clicks)]
    click_seconds(segmentor, args.video, 5, points[0])  # warm-up: allocator, kernels (frame 5 is not measured)

    rows = [("first click on a new frame (embedding + decoder)", [click_seconds(segmentor, args.video, 1, points[0])])]
    rows.append(("later clicks on the same frame (decoder only)",
                 [click_seconds(segmentor, args.video, 1, point) for point in points]))
    segmentor.prefetch(frame_canvas.read_frame(args.video, 10))  # what the panel starts when a frame is opened
    rows.append(("first click on a prefetched frame", [click_seconds(segmentor, args.video, 10, points[0])]))
    rows.append(("click on a frame seen before (embedding LRU)", [click_seconds(segmentor, args.video, 1, points[1])]))

    print(f"click -> preview, SAM ViT-B {'checkpoint' if args.sam_checkpoint else 'random weights'}, "
          f"{width}x{height}, device {segmentor.device}, torch threads {__import__('torch').get_num_threads()}, "
          f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    print(f"{'case':<52} {'n':>3} {'median s':>9} {'max s':>7}")
    for name, seconds in rows:
        print(f"{name:<52} {len(seconds):>3} {statistics.median(seconds):>9.3f} {max(seconds):>7.3f}")
    later = statistics.median(rows[1][1])
    print(f"target: later clicks <= 0.5 s -> {'met' if later <= 0.5 else 'NOT met'} ({later:.3f} s)")


if __name__ == "__main__":
    main()
