"""Export a tracked frame field in the YouTube-VIS format (https://youtube-vos.org/dataset/vis/).

Layout of ``export_dir``::

    JPEGImages/<video>/<frame_number - 1:05d>.jpg   every frame, original size
    instances.json                                  videos, annotations, categories

One annotation per track per video: ``segmentations``, ``areas`` and ``bboxes`` hold one entry per
frame of the video (compressed RLE, pixel count, ``[x, y, w, h]``), ``null`` where the track is not
visible; ``category_id`` comes from the track's label where it first appears; ``track_id`` is the
detection ``index``. ``tests/data/ytvis_schema.json`` is a JSON schema of the published format.
"""

from samtrack_ops.export._atomic import atomic_directory, inside
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


def _column(entries, position):
    """Item ``position`` of each per-frame entry, None where the entry is None."""
    return [None if entry is None else entry[position] for entry in entries]


def _track_annotations(first_id, video_record, tracks, categories):
    """One annotation per track; ``tracks`` is ``{track_id: (label, {frame_index: (rle, area, bbox)})}``."""
    length = video_record["length"]
    annotations = []
    for offset, (track_id, (label, frames)) in enumerate(sorted(tracks.items())):
        entries = [frames.get(i) for i in range(length)]
        annotations.append(
            {
                "id": first_id + offset,
                "video_id": video_record["id"],
                "category_id": categories[label],
                "segmentations": _column(entries, 0),
                "areas": _column(entries, 1),
                "bboxes": _column(entries, 2),
                "iscrowd": 0,
                "width": video_record["width"],
                "height": video_record["height"],
                "length": length,
                "track_id": track_id,
            }
        )
    return annotations


def export_ytvis(sample_collection, label_field, export_dir, overwrite=False):
    """Writes every frame and every track of ``frames.<label_field>`` as a YouTube-VIS dataset.

    Args:
        sample_collection: a FiftyOne video dataset or view
        label_field: frame field holding ``fo.Detections`` with ``index`` and ``mask``
        export_dir: folder to create (atomically)
        overwrite: replace an existing ``export_dir``

    Returns:
        the path of ``instances.json``
    """
    check_tracked_field(sample_collection, label_field)
    categories = category_ids(sample_collection, label_field)
    videos, annotations = [], []
    with atomic_directory(export_dir, overwrite) as staging:
        for video_id, video in enumerate(iter_videos(sample_collection, label_field), 1):
            file_names, tracks = [], {}
            for frame_number, frame_bgr, detections in iter_frames(video):
                file_name = f"{video.name}/{frame_file_name(frame_number, 'jpg')}"
                write_image(inside(staging, "JPEGImages", file_name), frame_bgr)
                file_names.append(file_name)
                for detection, mask in object_masks(detections, frame_bgr.shape[:2]):
                    label, frames = tracks.setdefault(int(detection.index), (detection.label or DEFAULT_LABEL, {}))
                    frames[frame_number - 1] = mask_json(mask)
            height, width = frame_bgr.shape[:2]
            record = {
                "id": video_id,
                "name": video.name,
                "width": width,
                "height": height,
                "length": len(file_names),
                "file_names": file_names,
            }
            videos.append(record)
            annotations += _track_annotations(len(annotations) + 1, record, tracks, categories)
        content = {
            "info": {"description": f"samtrack export of frames.{label_field}"},
            "licenses": [],
            "videos": videos,
            "annotations": annotations,
            "categories": categories_json(categories),
        }
        write_json(inside(staging, "instances.json"), content)
    return inside(export_dir, "instances.json")
