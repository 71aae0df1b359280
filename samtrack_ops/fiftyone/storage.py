"""Label maps <-> FiftyOne labels.

A *label map* is an HxW integer array of track IDs (0 = background). In a dataset it is stored per frame
as ``fo.Detections``: one ``fo.Detection`` per visible object whose ``index`` is the track ID, whose
``bounding_box`` is the tight relative box ``[x, y, w, h]`` around the object's pixels and whose ``mask``
is the boolean object mask cropped to that box.
"""

import numpy as np

import fiftyone as fo


def _tight_box(object_mask):
    """Returns ``(y0, y1, x0, x1)`` (half-open) of the True pixels of an HxW bool mask."""
    rows = np.flatnonzero(object_mask.any(axis=1))
    cols = np.flatnonzero(object_mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def label_map_to_detections(label_map, objects=None):
    """Converts an HxW label map to ``fo.Detections``.

    Args:
        label_map: HxW integer array of track IDs, 0 = background
        objects: optional iterable of objects with ``id``, ``label`` and ``score`` attributes (e.g.
            ``samtrack_ops.ObjectInfo``); IDs missing from it are labelled "object" without confidence

    Returns:
        ``fo.Detections`` with one detection per ID present, in ascending ID order
    """
    label_map = np.asarray(label_map)
    height, width = label_map.shape
    info = {int(o.id): o for o in objects or ()}
    detections = []
    for track_id in np.unique(label_map):
        if track_id == 0:
            continue
        object_mask = label_map == track_id
        y0, y1, x0, x1 = _tight_box(object_mask)
        obj = info.get(int(track_id))
        detections.append(
            fo.Detection(
                label=getattr(obj, "label", None) or "object",
                bounding_box=[x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height],
                mask=object_mask[y0:y1, x0:x1],
                index=int(track_id),
                confidence=None if obj is None or obj.score is None else float(obj.score),
            )
        )
    return fo.Detections(detections=detections)


def detections_to_label_map(detections, frame_size, dtype=np.uint16):
    """Paints ``fo.Detections`` with masks and ``index`` into an HxW label map.

    Detections are painted in ascending ``index`` order, so where masks overlap the higher track ID wins.
    Detections without an ``index`` or a mask are skipped.

    Args:
        detections: ``fo.Detections`` (or None, giving an all-background map)
        frame_size: ``(H, W)``

    Returns:
        HxW array of ``dtype``
    """
    height, width = frame_size
    label_map = np.zeros((height, width), dtype=dtype)
    if detections is None:
        return label_map
    painted = [d for d in detections.detections if d.index is not None and d.mask is not None]
    for det in sorted(painted, key=lambda d: d.index):
        bx, by, _, _ = det.bounding_box
        x0, y0 = int(round(bx * width)), int(round(by * height))
        mask = np.asarray(det.mask, dtype=bool)
        region = label_map[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]]
        region[mask[: region.shape[0], : region.shape[1]]] = det.index
    return label_map
