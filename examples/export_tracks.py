"""Export a tracked frame field of a FiftyOne dataset to COCO and to DAVIS (and YouTube-VIS).

    python examples/export_tracks.py DATASET FIELD OUT_DIR [--formats coco davis ytvis] [--overwrite]

Writes OUT_DIR/coco/ (images + labels.json with RLE masks and track IDs), OUT_DIR/davis/ (JPEGImages +
indexed-PNG Annotations in the DAVIS 2017 layout) and OUT_DIR/ytvis/ when asked. Each export is built
in a hidden folder and moved into place only when complete.
"""

import argparse
from pathlib import Path

import fiftyone as fo

from samtrack_ops.export import EXPORTERS


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="name of a FiftyOne video dataset")
    parser.add_argument("field", help="frame field with the tracks (fo.Detections with index and mask)")
    parser.add_argument("out_dir", help="folder receiving one sub-folder per format")
    parser.add_argument("--formats", nargs="+", choices=sorted(EXPORTERS), default=["coco", "davis"])
    parser.add_argument("--overwrite", action="store_true", help="replace existing exports")
    args = parser.parse_args()
    dataset = fo.load_dataset(args.dataset)
    for name in args.formats:
        written = EXPORTERS[name](dataset, args.field, Path(args.out_dir) / name, overwrite=args.overwrite)
        print(f"{name}: {written}")


if __name__ == "__main__":
    main()
