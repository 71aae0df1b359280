"""Pieces of the COCO-style records shared by the COCO and YouTube-VIS exporters, and file writers."""

import json

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from samtrack_ops.export._atomic import ExportError

DEFAULT_LABEL = "object"


def category_ids(sample_collection, label_field):
    """Returns ``{label: category_id}``: the field's labels in sorted order, numbered from 1."""
    labels = sample_collection.distinct(f"frames.{label_field}.detections.label")
    names = sorted({label or DEFAULT_LABEL for label in labels})
    return {name: index for index, name in enumerate(names, 1)}


def categories_json(category_ids_by_label):
    """The ``categories`` list of a COCO-style file."""
    return [{"id": i, "name": name, "supercategory": ""} for name, i in category_ids_by_label.items()]


def mask_json(mask):
    """Returns ``(rle, area, bbox)`` of an HxW 0/1 mask (fastest as Fortran-order uint8): compressed
    RLE (``counts`` as text), pixel count and ``[x, y, w, h]`` in pixels, all JSON-serialisable."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    area, bbox = int(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, area, bbox


def write_json(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(content, f)


def write_image(path, image):
    """Writes an image with OpenCV (format from the suffix), raising :class:`ExportError` on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image)):
        raise ExportError(f"could not write {path}")
