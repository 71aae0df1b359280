"""One command for a CUDA machine: tracker parity, R50-DeAOT-L FPS next to the paper's, tracker and pipeline benchmarks.

    .venv/bin/python benchmarks/gpu_check.py            # on a CUDA machine: at most 8 minutes
    .venv/bin/python benchmarks/gpu_check.py --quick    # tiny workloads: checks every step runs (any machine)

Steps, each under its own time limit (a step that overruns is reported and the next one runs):

1. ``tests/test_tracker_parity.py``: the DeAOT tracker against the reference implementation's numbers
   (float64 and float32);
2. R50-DeAOT-L frames per second at the paper's setting, printed next to the paper's 22.4 FPS (AOT model zoo,
   YouTube-VOS 2018 val on one V100: 1.3 x 480p input, i.e. a 624-pixel short edge, float32 inference,
   multi-object FPS). Here: random weights (speed does not depend on them), 624x1109 frames, 2 objects,
   float32, one frame at a time, CUDA synchronised after each; samtrack caps the network input's long edge
   at 1040 as SAM-Track does, so the network sees slightly fewer pixels than the paper's (printed);
3. ``benchmarks/tracker.py``: seconds per frame for 1, 5, 20 objects at 1080x1920 and peak RSS at 100, 500
   and 2000 frames;
4. ``benchmarks/pipeline.py``: segment_and_track end to end (interactive and automatic) on blackswan.

Without CUDA it says so and runs on the CPU (use --quick there: the full steps take hours on a CPU).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_DIR = BENCHMARKS.parent
PAPER_FPS = 22.4
PAPER_FRAME_SIZE = (624, 1109)
PAPER_OBJECTS = 2


def step(title, command, limit_s):
    """Runs command (a list) in the repository, streaming its output; returns its exit status (124: timed out)."""
    print(f"\n=== {title} (limit {limit_s} s) ===", flush=True)
    start = time.perf_counter()
    try:
        status = subprocess.run(command, cwd=REPO_DIR, timeout=limit_s).returncode
    except subprocess.TimeoutExpired:
        status = 124
    print(f"--- {title}: {'ok' if status == 0 else f'FAILED (exit {status})'} in {time.perf_counter() - start:.0f} s",
          flush=True)
    return status


def paper_fps(device, frames, size):
    """Prints R50-DeAOT-L frames per second at the paper's setting (run in a child process)."""
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    import tracker as tracker_benchmark
    from samtrack_ops.tracker.network import build_network
    from samtrack_ops.tracker.transforms import network_input_size

    args = argparse.Namespace(model="r50_deaotl", checkpoint=None, device=torch.device(device), size=size,
                              frames=frames)
    wall, _, _ = tracker_benchmark.time_objects(args, PAPER_OBJECTS)
    input_size = network_input_size(size, build_network("r50_deaotl").config)
    print(f"R50-DeAOT-L, {size[0]}x{size[1]} frames -> network input {input_size[0]}x{input_size[1]}, "
          f"{PAPER_OBJECTS} objects, float32, {device} ({_device_name(device)}):")
    print(f"{'':<10}{'FPS':>8}")
    print(f"{'samtrack':<10}{1 / wall:>8.2f}   (median of {frames} frames)")
    print(f"{'paper':<10}{PAPER_FPS:>8.2f}   (V100, YouTube-VOS 2018 val, 624-pixel short edge)")


def _device_name(device):
    import torch

    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny workloads (checks that every step runs)")
    parser.add_argument("--paper-fps-child", metavar="DEVICE", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--size", default="624x1109", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paper_fps_child:
        paper_fps(args.paper_fps_child, args.frames, tuple(int(side) for side in args.size.split("x")))
        return 0

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, device {device} ({_device_name(device)})")
    if device == "cpu":
        print("no CUDA device: running on the CPU" + ("" if args.quick else " (slow; --quick for a dry run)"))
    python = sys.executable
    quick = args.quick
    tracker_size, tracker_frames = ("96x160", "1") if quick else ("1080x1920", "10")
    rss_frames = ["3", "6"] if quick else ["100", "500", "2000"]
    failures = 0
    failures += step("1. tracker parity (float64, float32)",
                     [python, "-m", "pytest", "tests/test_tracker_parity.py", "-q", "-x"], 150 if not quick else 900) != 0
    failures += step("2. R50-DeAOT-L FPS at the paper's setting",
                     [python, __file__, "--paper-fps-child", device, "--frames", "2" if quick else "50",
                      "--size", "96x160" if quick else "x".join(map(str, PAPER_FRAME_SIZE))], 60 if not quick else 300) != 0
    failures += step("3. tracker benchmark",
                     [python, str(BENCHMARKS / "tracker.py"), "--device", device, "--size", tracker_size,
                      "--frames", tracker_frames, "--rss-size", "96x160" if quick else "240x427",
                      "--rss-frames", *rss_frames], 150 if not quick else 300) != 0
    failures += step("4. pipeline benchmark",
                     [python, str(BENCHMARKS / "pipeline.py"), "--device", device, "--frames", "2" if quick else "50"],
                     120 if not quick else 900) != 0
    print(f"\n{failures} step(s) failed" if failures else "\nall steps passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
