"""Export throughput: one 854x480 video with N frames and M tracked objects, exported in each format.

Builds the video (ffmpeg, frames painted from the label maps) and its ``frames.tracks`` field with the
same moving-ellipse label maps as ``benchmarks/storage.py``, then times ``export_coco`` (JPEG frames),
``export_davis`` and ``export_ytvis`` end to end: reading the labels, decoding the video, writing every
frame and every annotation. Runs in a throwaway database (dropped afterwards) and temporary folders. "cpu s" is this
process's CPU time (MongoDB's share is not included); on a busy machine wall time exceeds it.

    .venv/bin/python benchmarks/export.py [--frames 1000] [--objects 10]
"""

import argparse
import pathlib
import tempfile
import time

from measure import use_throwaway_database

drop_database = use_throwaway_database()

import numpy as np  # noqa: E402

import fiftyone as fo  # noqa: E402

from samtrack_ops.export import EXPORTERS  # noqa: E402
from samtrack_ops.export._mp4 import write_mp4  # noqa: E402
from samtrack_ops.fiftyone.staging import VideoWrite  # noqa: E402
from samtrack_ops.fiftyone.storage import frame_documents  # noqa: E402
from storage import moving_objects  # noqa: E402  (benchmarks/storage.py, this script's folder)


def painted_frames(label_maps, seed=0):
    """Yields a BGR frame per label map: a fixed textured background with each object in its colour."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 120, size=(*label_maps[0].shape, 3), dtype=np.uint8)
    colours = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    for label_map in label_maps:
        frame = background.copy()
        frame[label_map > 0] = colours[label_map[label_map > 0]]
        yield frame


def build_dataset(folder, num_frames, num_objects):
    label_maps = list(moving_objects(num_frames, num_objects))
    video = folder / "bench.mp4"
    write_mp4(painted_frames(label_maps), video)
    dataset = fo.Dataset()
    sample = fo.Sample(filepath=str(video))
    dataset.add_sample(sample)
    with VideoWrite(dataset, sample.id, {"tracks": "Detections"}) as write:
        for number, label_map in enumerate(label_maps, start=1):
            write.add(number, frame_documents(label_map, None, "tracks"))
        write.commit()
    return dataset


def folder_megabytes(folder):
    return sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*") if p.is_file()) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="samtrack-export-bench-") as scratch:
        scratch = pathlib.Path(scratch)
        start = time.perf_counter()
        dataset = build_dataset(scratch, args.frames, args.objects)
        num_labels = dataset.count("frames.tracks.detections")
        print(f"setup: {args.frames} frames, {num_labels} objects-in-frames, {time.perf_counter() - start:.1f} s")
        print(f"{'format':<7}{'frames':>8}{'objects':>9}{'wall s':>8}{'cpu s':>7}{'frames/s':>10}{'MB':>6}")
        try:
            for name, exporter in EXPORTERS.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                exporter(dataset, "tracks", scratch / name)
                seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
                print(
                    f"{name:<7}{args.frames:>8}{args.objects:>9}{seconds:>8.1f}{cpu:>7.1f}"
                    f"{args.frames / seconds:>10.0f}{folder_megabytes(scratch / name):>6.0f}"
                )
        finally:
            dataset.delete()
            drop_database()


if __name__ == "__main__":
    main()
