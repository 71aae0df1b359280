"""Export a tracked frame field as COCO instance segmentation.

Layout of ``export_dir``::

    data/<video>/<frame_number - 1:05d>.<jpg|png>   every frame, original size
    labels.json                                     COCO: images, annotations, categories (+ videos)

Each image record carries ``video_id``, ``video`` (the export name), ``sample_id`` and ``frame_number``
(1-based, as in FiftyOne). Each annotation is one object in one frame: compressed-RLE ``segmentation``,
``bbox`` and ``area`` of that mask in pixels, ``iscrowd`` 0, ``category_id`` from the label (categories
are the field's labels in sorted order), ``track_id`` (the ``index`` of the detection), ``video_id``,
``frame_number`` and ``score`` when the detection has a confidence.
"""

from samtrack_ops.export._atomic import ExportError, atomic_directory, inside
from samtrack_ops.export._frames import (
    check_tracked_field,
    frame_file_name,
    iter_frames,
    iter_videos,
    object_masks,
)
from samtrack_ops.export._records import (
    DEFAULT_LABEL,
    categories_json,
    category_ids,
    mask_json,
    write_image,
    write_json,
)

IMAGE_FORMATS = ("jpg", "png")


def check_image_format(image_format):
    if image_format not in IMAGE_FORMATS:
        raise ExportError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")


def _annotation(annotation_id, image, detection, mask, categories):
    rle, area, bbox = mask_json(mask)
    record = {
        "id": annotation_id,
        "image_id": image["id"],
        "category_id": categories[detection.label or DEFAULT_LABEL],
        "segmentation": rle,
        "area": area,
        "bbox": bbox,
        "iscrowd": 0,
        "track_id": int(detection.index),
        "video_id": image["video_id"],
        "frame_number": image["frame_number"],
    }
    if detection.confidence is not None:
        record["score"] = float(detection.confidence)
    return record


def export_coco(sample_collection, label_field, export_dir, image_format="jpg", overwrite=False):
    """Writes every frame and every tracked object of ``frames.<label_field>`` as a COCO dataset.

    Args:
        sample_collection: a FiftyOne video dataset or view
        label_field: frame field holding ``fo.Detections`` with ``index`` and ``mask``
        export_dir: folder to create (atomically; see ``samtrack_ops.export``)
        image_format: ``"jpg"`` or ``"png"``
        overwrite: replace an existing ``export_dir``

    Returns:
        the path of ``labels.json``
    """
    check_tracked_field(sample_collection, label_field)
    check_image_format(image_format)
    categories = category_ids(sample_collection, label_field)
    videos, images, annotations = [], [], []
    with atomic_directory(export_dir, overwrite) as staging:
        for video_id, video in enumerate(iter_videos(sample_collection, label_field), 1):
            videos.append({"id": video_id, "name": video.name, "sample_id": video.id, "filepath": video.filepath})
            for frame_number, frame_bgr, detections in iter_frames(video):
                file_name = f"{video.name}/{frame_file_name(frame_number, image_format)}"
                write_image(inside(staging, "data", file_name), frame_bgr)
                height, width = frame_bgr.shape[:2]
                image = {
                    "id": len(images) + 1,
                    "file_name": file_name,
                    "width": width,
                    "height": height,
                    "video_id": video_id,
                    "video": video.name,
                    "sample_id": video.id,
                    "frame_number": frame_number,
                }
                images.append(image)
                for detection, mask in object_masks(detections, (height, width)):
                    annotations.append(_annotation(len(annotations) + 1, image, detection, mask, categories))
        content = {
            "info": {"description": f"samtrack export of frames.{label_field}"},
            "videos": videos,
            "images": images,
            "annotations": annotations,
            "categories": categories_json(categories),
        }
        write_json(inside(staging, "labels.json"), content)
    return inside(export_dir, "labels.json")
