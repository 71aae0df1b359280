"""DAVIS format: export a tracked frame field, and import DAVIS 2016/2017 folders as a video dataset.

Export layout (the official DAVIS 2017 layout; frames keep their size, whatever ``resolution`` says)::

    JPEGImages/<resolution>/<video>/<frame_number - 1:05d>.jpg
    Annotations/<resolution>/<video>/<frame_number - 1:05d>.png   indexed PNG ('P'), DAVIS palette
    ImageSets/2017/<subset>.txt                                  the exported video names
    samtrack_objects.json                                        {video: [{davis_id, track_id, label}]}

Object IDs are 1..N per video in order of first appearance (ties within a frame: ascending track ID),
0 is background. Where masks overlap, the higher track ID wins (the rule of
``samtrack_ops.fiftyone.storage.detections_to_label_map``), then IDs are renumbered.

Import reads ``JPEGImages/<resolution>/<sequence>/*.jpg`` and ``Annotations/<resolution>/<sequence>/*.png``
(matched by file stem; frames without a PNG get no labels). Masks are either DAVIS 2016 binary masks
(any non-zero pixel is object 1) or DAVIS 2017 indexed masks (pixel value = object ID, 255 = void, read
as background); ``annotation_format="auto"`` picks indexed for palette ('P') PNGs and binary otherwise.
Each sequence becomes an H.264 mp4 (ffmpeg, yuv420p) in ``videos_dir`` so FiftyOne and its App get real
videos; frames with an odd side get one black row/column at the bottom/right (browsers need even sizes)
and their masks are padded alike with background. Ground truth goes to ``frames.<label_field>``
(``fo.Detections`` with ``index`` = object ID) and ``frames.<label_field>_seg`` (``fo.Segmentation``, the label map).
"""

import pathlib

import numpy as np
from PIL import Image

import fiftyone as fo

from samtrack_ops.export._atomic import ExportError, atomic_directory, inside, safe_name
from samtrack_ops.export._frames import check_tracked_field, frame_file_name, iter_frames, iter_videos
from samtrack_ops.export._mp4 import pad_to_even, write_mp4
from samtrack_ops.export._records import DEFAULT_LABEL, write_image, write_json
from samtrack_ops.fiftyone.storage import (
    detections_to_label_map,
    label_map_to_detections,
    label_map_to_segmentation,
)

ANNOTATION_FORMATS = ("auto", "binary", "indexed")
VOID_ID = 255
MAX_OBJECTS = 254


def _pascal_palette():
    """The DAVIS (PASCAL VOC) palette: 256 RGB colours, colour ``i`` spreads the bits of ``i`` over
    the high bits of R, G and B. A flat list of 768 ints for ``PIL.Image.putpalette``."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        for bit in range(8):
            red |= ((index >> (3 * bit)) & 1) << (7 - bit)
            green |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
            blue |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
        palette += [red, green, blue]
    return palette


DAVIS_PALETTE = _pascal_palette()


def write_indexed_png(path, label_map):
    """Writes an HxW label map (IDs 0..255) as a palette PNG with the DAVIS palette."""
    image = Image.fromarray(np.asarray(label_map, dtype=np.uint8), mode="P")
    image.putpalette(DAVIS_PALETTE)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def first_appearance_ids(labels):
    """Returns ``[(davis_id, track_id, label)]`` for ``{frame_number: fo.Detections}``: DAVIS IDs 1..N
    in order of first appearance, ties broken by ascending track ID."""
    order = {}
    for frame_number in sorted(labels):
        painted = [d for d in labels[frame_number].detections if d.index is not None and d.mask is not None]
        for detection in sorted(painted, key=lambda d: d.index):
            order.setdefault(int(detection.index), detection.label or DEFAULT_LABEL)
    return [(davis_id, track_id, label) for davis_id, (track_id, label) in enumerate(order.items(), 1)]


def _lookup_table(objects, video_name):
    if len(objects) > MAX_OBJECTS:
        raise ExportError(
            f"video {video_name} has {len(objects)} objects; DAVIS PNGs hold at most {MAX_OBJECTS} "
            f"(IDs 1..{MAX_OBJECTS}, {VOID_ID} is void): export a view with fewer objects"
        )
    table = np.zeros(np.iinfo(np.uint16).max + 1, dtype=np.uint8)
    too_large = [track_id for _, track_id, _ in objects if track_id >= len(table)]
    if too_large:
        raise ExportError(f"video {video_name}: track IDs {too_large} exceed {len(table) - 1}, the largest label-map ID")
    for davis_id, track_id, _ in objects:
        table[track_id] = davis_id
    return table


def export_davis(sample_collection, label_field, export_dir, subset="val", resolution="480p", overwrite=False):
    """Writes every frame and the tracked objects of ``frames.<label_field>`` in the DAVIS 2017 layout.

    Args:
        sample_collection: a FiftyOne video dataset or view
        label_field: frame field holding ``fo.Detections`` with ``index`` and ``mask``
        export_dir: folder to create (atomically)
        subset: name of the ``ImageSets/2017/<subset>.txt`` list
        resolution: name of the resolution folder
        overwrite: replace an existing ``export_dir``

    Returns:
        the export folder as a ``pathlib.Path``
    """
    check_tracked_field(sample_collection, label_field)
    subset, resolution = safe_name(subset, "subset"), safe_name(resolution, "resolution")
    names, objects_by_video = [], {}
    with atomic_directory(export_dir, overwrite) as staging:
        for video in iter_videos(sample_collection, label_field):
            objects = first_appearance_ids(video.labels)
            table = _lookup_table(objects, video.name)
            for frame_number, frame_bgr, detections in iter_frames(video):
                label_map = detections_to_label_map(detections, frame_bgr.shape[:2])
                write_image(
                    inside(staging, "JPEGImages", resolution, video.name, frame_file_name(frame_number, "jpg")),
                    frame_bgr,
                )
                write_indexed_png(
                    inside(staging, "Annotations", resolution, video.name, frame_file_name(frame_number, "png")),
                    table[label_map],
                )
            names.append(video.name)
            objects_by_video[video.name] = [
                {"davis_id": d, "track_id": t, "label": label} for d, t, label in objects
            ]
        image_set = inside(staging, "ImageSets", "2017", f"{subset}.txt")
        image_set.parent.mkdir(parents=True)
        image_set.write_text("".join(f"{name}\n" for name in names))
        write_json(inside(staging, "samtrack_objects.json"), objects_by_video)
    return pathlib.Path(export_dir).expanduser().resolve()


def read_davis_mask(path, annotation_format="auto"):
    """Reads one DAVIS annotation PNG as an HxW uint8 label map (see the module docstring).

    Raises:
        ExportError: unknown ``annotation_format`` or a PNG that is not single-channel
    """
    if annotation_format not in ANNOTATION_FORMATS:
        raise ExportError(f"annotation_format must be one of {ANNOTATION_FORMATS}, got {annotation_format!r}")
    with Image.open(path) as image:
        indexed = annotation_format == "indexed" or (annotation_format == "auto" and image.mode == "P")
        values = np.array(image)
    if values.ndim != 2:
        raise ExportError(f"{path} has {values.shape[2]} channels; DAVIS annotations are single-channel PNGs")
    if not indexed:
        return (values > 0).astype(np.uint8)
    label_map = values.astype(np.uint8)
    label_map[label_map == VOID_ID] = 0
    return label_map


def _sequence_folders(davis_root, resolution, sequences):
    images_root = pathlib.Path(davis_root).expanduser() / "JPEGImages" / resolution
    if not images_root.is_dir():
        raise ExportError(f"{images_root} not found: davis_root must hold JPEGImages/{resolution}/<sequence>/")
    if sequences is None:
        sequences = sorted(p.name for p in images_root.iterdir() if p.is_dir())
    elif isinstance(sequences, str):
        sequences = [sequences]
    folders = [inside(images_root, safe_name(s, "sequence")) for s in sequences]
    missing = [f.name for f in folders if not any(f.glob("*.jpg"))]
    if missing or not folders:
        raise ExportError(f"no JPEG frames for sequences {missing} under {images_root}")
    return folders


def _read_frames(image_paths):
    for path in image_paths:
        frame = np.array(Image.open(path).convert("RGB"))[:, :, ::-1]
        yield np.ascontiguousarray(frame)


def _sequence_sample(images_folder, annotations_folder, video_path, label_field, annotation_format):
    image_paths = sorted(images_folder.glob("*.jpg"))
    frame_size = Image.open(image_paths[0]).size[::-1]
    label_maps = {}
    for frame_number, image_path in enumerate(image_paths, 1):
        mask_path = annotations_folder / f"{image_path.stem}.png"
        if mask_path.is_file():
            label_maps[frame_number] = read_davis_mask(mask_path, annotation_format)
            if label_maps[frame_number].shape != frame_size:
                raise ExportError(f"{mask_path} is {label_maps[frame_number].shape}, its frame is {frame_size}")
    write_mp4(_read_frames(image_paths), video_path)
    sample = fo.Sample(filepath=str(video_path), metadata=fo.VideoMetadata.build_for(str(video_path)))
    for frame_number, label_map in label_maps.items():
        label_map = pad_to_even(label_map)
        sample.frames[frame_number][label_field] = label_map_to_detections(label_map)
        sample.frames[frame_number][f"{label_field}_seg"] = label_map_to_segmentation(label_map)
    return sample


def import_davis(
    davis_root,
    videos_dir,
    dataset_name=None,
    sequences=None,
    resolution="480p",
    label_field="ground_truth",
    annotation_format="auto",
):
    """Creates a FiftyOne video dataset from a DAVIS 2016 or 2017 folder (see the module docstring).

    Args:
        davis_root: folder holding ``JPEGImages/`` and ``Annotations/``
        videos_dir: folder for the encoded ``<sequence>.mp4`` files (existing files are not replaced)
        dataset_name: name of the new dataset (must not exist); None for a generated name
        sequences: a sequence name or a list of them; None for all
        resolution: resolution folder name
        label_field: frame field for the ground-truth ``fo.Detections`` (``<label_field>_seg`` for the
            ``fo.Segmentation``)
        annotation_format: ``"auto"``, ``"binary"`` (DAVIS 2016) or ``"indexed"`` (DAVIS 2017)

    Returns:
        the new ``fo.Dataset``, one sample per sequence in sequence order
    """
    if annotation_format not in ANNOTATION_FORMATS:
        raise ExportError(f"annotation_format must be one of {ANNOTATION_FORMATS}, got {annotation_format!r}")
    if dataset_name is not None and fo.dataset_exists(dataset_name):
        raise ExportError(f"dataset {dataset_name!r} already exists: choose another name or delete it first")
    folders = _sequence_folders(davis_root, safe_name(resolution, "resolution"), sequences)
    videos_dir = pathlib.Path(videos_dir).expanduser().resolve()
    video_paths = [inside(videos_dir, f"{f.name}.mp4") for f in folders]
    existing = [str(p) for p in video_paths if p.exists()]
    if existing:
        raise ExportError(f"{existing} already exist: choose another videos_dir or delete them")
    videos_dir.mkdir(parents=True, exist_ok=True)
    annotations_root = pathlib.Path(davis_root).expanduser() / "Annotations" / resolution
    try:
        samples = [
            _sequence_sample(f, annotations_root / f.name, p, label_field, annotation_format)
            for f, p in zip(folders, video_paths)
        ]
    except BaseException:
        for path in video_paths:
            path.unlink(missing_ok=True)
        raise
    dataset = fo.Dataset(dataset_name)
    dataset.add_samples(samples)
    return dataset
