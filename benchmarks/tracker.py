"""DeAOT tracker benchmark: per-frame time for 1, 5 and 20 objects, and peak RSS vs video length.

    .venv/bin/python benchmarks/tracker.py [--size 1080x1920] [--frames 4] [--rss-frames 100 500 2000]

Frames are synthetic (a textured pattern moving a few pixels per frame); weights are random unless
--checkpoint is given (speed does not depend on them). Each tracked frame runs the full SAM-Track
step: preprocess, propagate, decode to full size, argmax, memory update. The RSS part runs in
fresh processes so that each peak belongs to one video length only (VmHWM); it prints the growth of each
peak over the shortest video's, against the 5% target (memory must stay flat as the video grows).
"""

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from samtrack_ops.tracker import Tracker, load_tracker
from samtrack_ops.tracker.network import build_network
from samtrack_ops.tracker.transforms import network_input_size

from measure import peak_rss_mib, resolve_device, synchronize

RSS_GROWTH_TARGET = 0.05


def parse_size(text):
    height, width = (int(part) for part in text.lower().split("x"))
    return height, width


def synthetic_frames(count, size, seed=0, period=64):
    """Yields count (H, W, 3) uint8 frames of a smooth random texture drifting right and down.

    The texture is fixed-size (the drift wraps every ``period`` pixels), so producing frames uses
    the same memory for any count.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=((size[0] + period) // 8 + 1, (size[1] + period) // 8 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    for index in range(count):
        shift = (index * 8 // 3) % period
        yield np.ascontiguousarray(texture[shift : shift + size[0], shift : shift + size[1]])


def object_map(size, count):
    """(H, W) uint8 label map with count rectangular objects on a grid (ids 1..count)."""
    label_map = np.zeros(size, np.uint8)
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    cell_h, cell_w = size[0] // rows, size[1] // columns
    for index in range(count):
        y, x = (index // columns) * cell_h, (index % columns) * cell_w
        label_map[y + cell_h // 4 : y + 3 * cell_h // 4, x + cell_w // 4 : x + 3 * cell_w // 4] = index + 1
    return label_map


def build_tracker(args, **memory_options):
    if args.checkpoint:
        return load_tracker(args.model, args.checkpoint, device=args.device, **memory_options)
    torch.manual_seed(0)
    return Tracker(build_network(args.model).to(args.device), **memory_options)


def time_objects(args, count):
    """Median wall and CPU seconds per tracked frame with count objects."""
    tracker = build_tracker(args)
    frames = synthetic_frames(args.frames + 2, args.size)
    tracker.add_reference(next(frames), object_map(args.size, count))
    tracker.track(next(frames))  # warm-up
    wall, cpu = [], []
    for frame in frames:
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        tracker.track(frame)
        synchronize(args.device)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    return statistics.median(wall), statistics.median(cpu), len(tracker.long_term_frames)



def rss_child(args):
    """Tracks --rss-length frames and prints 'peak_rss_mib memory_bytes' (run in a fresh process)."""
    tracker = build_tracker(args)
    frames = synthetic_frames(args.rss_length + 1, args.rss_size)
    tracker.add_reference(next(frames), object_map(args.rss_size, 5))
    for frame in frames:
        tracker.track(frame)
    print(f"{peak_rss_mib():.1f} {tracker.memory_bytes}")


def measure_rss(args, length):
    command = [sys.executable, __file__, "--rss-child", "--rss-length", str(length),
               "--rss-size", f"{args.rss_size[0]}x{args.rss_size[1]}", "--model", args.model]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    command += ["--device", str(args.device)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    return float(output[0]), int(output[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="r50_deaotl")
    parser.add_argument("--checkpoint", help="official checkpoint file (default: random weights)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available, else cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--size", type=parse_size, default=(1080, 1920), help="frame size HxW (default 1080x1920)")
    parser.add_argument("--objects", type=int, nargs="*", default=[1, 5, 20])
    parser.add_argument("--frames", type=int, default=4, help="timed frames per object count")
    parser.add_argument("--rss-frames", type=int, nargs="*", default=[100, 500, 2000],
                        help="video lengths for peak RSS (default 100 500 2000)")
    parser.add_argument("--rss-size", type=parse_size, default=(240, 427), help="frame size for the RSS runs")
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-length", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return

    input_size = network_input_size(args.size, build_network(args.model).config)
    print(f"DeAOT {args.model}, device {args.device}, torch threads {torch.get_num_threads()}, "
          f"frames {args.size[0]}x{args.size[1]} -> network input {input_size[0]}x{input_size[1]}")
    if args.objects:
        print(f"{'objects':>8} {'groups':>7} {'wall s/frame':>13} {'cpu s/frame':>12}")
    for count in args.objects:
        wall, cpu, groups = time_objects(args, count)
        print(f"{count:>8} {groups:>7} {wall:>13.2f} {cpu:>12.2f}")
    if args.rss_frames:
        print(f"\npeak RSS (5 objects, frames {args.rss_size[0]}x{args.rss_size[1]}, SAM-Track memory settings)")
        print(f"{'frames':>8} {'peak RSS MiB':>13} {'tracker memory MiB':>19} {'growth':>8}")
        first = None
        for length in args.rss_frames:
            rss, held = measure_rss(args, length)
            first = first or rss
            growth = rss / first - 1
            verdict = "ok" if growth <= RSS_GROWTH_TARGET else f"over the {RSS_GROWTH_TARGET:.0%} target"
            print(f"{length:>8} {rss:>13.1f} {held / 2**20:>19.2f} {growth:>7.1%} {verdict}")


if __name__ == "__main__":
    main()
