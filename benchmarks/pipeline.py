"""Benchmark segment_and_track: seconds per frame, peak RSS and time per stage over a video.

Two runs, each in its own process (so each peak RSS is its own):

- interactive: one Click on frame 0, then tracking;
- automatic: sam_gap 10, SAM segment-everything + CMR on frames 0, 10, 20, ...

Without checkpoint options the models have random weights (SAM ViT-B, R50-DeAOT-L: real architectures, real
cost). Random SAM weights predict IoUs no threshold trusts, so automatic mode uses the seed's generator
settings with ``pred_iou_thresh`` and ``stability_score_thresh`` set to 0 (kept masks, and so the amount of
work, then resemble a real video's); give --sam-checkpoint to use real weights and the seed's thresholds.

    python benchmarks/pipeline.py [--video ../shared/data/blackswan.mp4] [--frames 50] [--json out.json]
"""

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

from measure import peak_rss_mib

REPO_DIR = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO_DIR.parent / "shared" / "data" / "blackswan.mp4"
MODES = ("interactive", "automatic")
RANDOM_WEIGHT_GENERATOR = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}



def build_models(args):
    import torch
    from segment_anything import sam_model_registry

    from samtrack_ops.models import resolve_device
    from samtrack_ops.segmentor import Segmentor, load_segmentor
    from samtrack_ops.tracker import load_tracker
    from samtrack_ops.tracker.tracker import Tracker
    from samtrack_ops.tracker.network import build_network

    torch.manual_seed(0)
    device = resolve_device(args.device)
    if args.sam_checkpoint:
        segmentor = load_segmentor("vit_b", args.sam_checkpoint, device)
    else:
        segmentor = Segmentor(sam_model_registry["vit_b"](), device=device)
    if args.tracker_checkpoint:
        tracker = load_tracker("r50_deaotl", args.tracker_checkpoint, device)
    else:
        tracker = Tracker(build_network("r50_deaotl").to(device))
    return segmentor, tracker


def run_mode(args):
    """One mode in this process: returns the measurements as a dict."""
    from samtrack_ops import segment_and_track
    from samtrack_ops.prompts import Click
    from samtrack_ops.video import open_frames

    segmentor, tracker = build_models(args)
    rss_models = peak_rss_mib()
    frames = itertools.islice(iter(open_frames(args.video)), args.frames)
    timings = {}
    if args.mode == "interactive":
        prompts, options = [Click(0, [[336, 294]], [1], label="swan")], {}
    else:
        generator = {} if args.sam_checkpoint else RANDOM_WEIGHT_GENERATOR
        prompts, options = [], {"sam_gap": 10, "generator_options": generator}
    start = time.perf_counter()
    count, objects = 0, set()
    for result in segment_and_track(frames, prompts, mode=args.mode, segmentor=segmentor, tracker=tracker,
                                    timings=timings, **options):
        count += 1
        objects.update(info.id for info in result.objects)
        print(f"{args.mode} frame {result.frame_index}: {len(result.objects)} objects, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    timings["other"] = seconds - sum(timings.values())
    return {"mode": args.mode, "frames": count, "objects": len(objects), "seconds": seconds,
            "seconds_per_frame": seconds / count, "stage_seconds": timings,
            "peak_rss_mib": peak_rss_mib(), "rss_after_model_load_mib": rss_models}


def print_table(results):
    stages = sorted({stage for result in results for stage in result["stage_seconds"]})
    print(f"{'mode':<12}{'frames':>7}{'objects':>8}{'s/frame':>9}{'peak RSS MiB':>14}{'(models)':>10}")
    for result in results:
        print(f"{result['mode']:<12}{result['frames']:>7}{result['objects']:>8}{result['seconds_per_frame']:>9.2f}"
              f"{result['peak_rss_mib']:>14.0f}{result['rss_after_model_load_mib']:>10.0f}")
    print("\nseconds per stage (total over the run)")
    print(f"{'stage':<24}" + "".join(f"{result['mode']:>14}" for result in results))
    for stage in stages:
        print(f"{stage:<24}" + "".join(f"{result['stage_seconds'].get(stage, 0.0):>14.1f}" for result in results))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--sam-checkpoint", help="real SAM ViT-B weights (default: random)")
    parser.add_argument("--tracker-checkpoint", help="real R50-DeAOT-L weights (default: random)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one mode, in this process
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.mode:
        print(json.dumps(run_mode(args)))
        return
    results = []
    for mode in MODES:
        command = [sys.executable, __file__, "--mode", mode, *(argv if argv is not None else sys.argv[1:])]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
