"""Storage throughput: label maps -> stored ``fo.Detections`` frames per second.

Builds a 854x480 video sample and N label maps with 10 moving objects each, then times the whole write
path that ``track_samples`` uses per video: conversion of each label map (``frame_documents``), staged
batched inserts and the all-or-nothing commit into the frames. Runs in a throwaway database (dropped afterwards).

    .venv/bin/python benchmarks/storage.py [--frames 1000] [--objects 10] [--seg]
"""

import argparse
import time
import uuid

from measure import use_throwaway_database

drop_database = use_throwaway_database()

import numpy as np  # noqa: E402

import fiftyone as fo  # noqa: E402

from samtrack_ops.fiftyone.staging import VideoWrite  # noqa: E402
from samtrack_ops.fiftyone.storage import frame_documents  # noqa: E402

HEIGHT, WIDTH = 480, 854


def moving_objects(num_frames, num_objects, seed=0):
    """Yields ``num_frames`` HxW uint8 label maps of ellipses drifting across the frame."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform((60, 60), (HEIGHT - 60, WIDTH - 60), size=(num_objects, 2))
    velocity = rng.uniform(-3, 3, size=(num_objects, 2))
    radii = rng.uniform(15, 55, size=(num_objects, 2))
    rows, cols = np.ogrid[:HEIGHT, :WIDTH]
    for _ in range(num_frames):
        label_map = np.zeros((HEIGHT, WIDTH), np.uint8)
        for track_id, ((cy, cx), (ry, rx)) in enumerate(zip(centers, radii), start=1):
            inside = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
            label_map[inside] = track_id
        centers = np.clip(centers + velocity, 0, (HEIGHT - 1, WIDTH - 1))
        yield label_map


def time_write(dataset, sample_id, label_maps, seg):
    """Seconds to convert and store all ``label_maps`` into ``frames.bench`` of one sample."""
    fields = {"bench": "Detections", "bench_seg": "Segmentation"}
    start = time.perf_counter()
    with VideoWrite(dataset, sample_id, fields) as write:
        for number, label_map in enumerate(label_maps, start=1):
            write.add(number, frame_documents(label_map, None, "bench", "bench_seg" if seg else None))
        write.commit()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--seg", action="store_true", help="also store the full-frame <field>_seg")
    args = parser.parse_args()

    label_maps = list(moving_objects(args.frames, args.objects))
    dataset = fo.Dataset(f"bench-{uuid.uuid4().hex[:8]}")
    try:
        sample = fo.Sample(filepath="/nonexistent/bench.mp4")  # storage never reads the video
        dataset.add_sample(sample)
        seconds = time_write(dataset, sample.id, label_maps, args.seg)
        stored = dataset.count("frames.bench.detections")
        assert stored == sum(len(np.unique(m)) - 1 for m in label_maps), "stored detections are incomplete"
        print(
            f"{args.frames} frames x {args.objects} objects at {WIDTH}x{HEIGHT}"
            f"{' (+ _seg)' if args.seg else ''}: {seconds:.2f} s = {args.frames / seconds:.0f} frames/s"
        )
    finally:
        dataset.delete()
        drop_database()


if __name__ == "__main__":
    main()
