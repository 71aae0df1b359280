"""Storage of label maps in FiftyOne: conversions, batched all-or-nothing video writes, recovery.

Label maps are built from real DAVIS-2016 ground-truth masks; writes go to a real dataset (the real
blackswan mp4) in the session's throwaway database.
"""

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
import fiftyone.core.odm as foo

from samtrack_ops.fiftyone import staging
from samtrack_ops.fiftyone.storage import (
    detections_document,
    detections_to_label_map,
    label_map_to_detections,
    segmentation_document,
    visible_objects,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQUENCES = ("blackswan", "bmx-trees", "car-shadow", "libby")


@pytest.fixture(scope="module")
def davis_label_maps(shared_dir):
    """25 HxW uint8 label maps: DAVIS GT of four sequences as track IDs 2, 5, 9, 12 (later IDs on top)."""
    root = shared_dir / "data" / "davis2016" / "Annotations" / "480p"
    maps = []
    for frame in range(25):
        label_map = np.zeros((480, 854), np.uint8)
        for track_id, sequence in zip((2, 5, 9, 12), SEQUENCES):
            mask = np.array(Image.open(root / sequence / f"{frame:05d}.png")) > 0
            label_map[mask] = track_id
        maps.append(label_map)
    return maps


@pytest.fixture
def video_sample(shared_dir):
    dataset = fo.Dataset(f"storage-{uuid.uuid4().hex[:8]}")
    dataset.add_sample(fo.Sample(filepath=str(shared_dir / "data" / "blackswan.mp4")))
    yield dataset, dataset.first()
    dataset.delete()


class Info:
    def __init__(self, id, label, score):
        self.id, self.label, self.score = id, label, score


def _write(dataset, sample, label_maps, field="masks", seg=False, objects=None):
    field_types = {field: "Detections", f"{field}_seg": "Segmentation"}
    with staging.VideoWrite(dataset, sample.id, field_types, batch_size=7) as write:
        for number, label_map in enumerate(label_maps, start=1):
            documents = {field: detections_document(label_map, objects)}
            if seg:
                documents[f"{field}_seg"] = segmentation_document(label_map)
            write.add(number, documents)
        write.commit()


def _stored_maps(dataset, field="masks"):
    sample = dataset.first()
    sample.reload()
    return [detections_to_label_map(frame[field], (480, 854)) for _, frame in sample.frames.items() if frame[field] is not None]


def test_visible_objects_boxes_and_masks_match_the_label_map(davis_label_maps):
    label_map = davis_label_maps[0]
    objects = list(visible_objects(label_map))
    assert [o.track_id for o in objects] == [i for i in (2, 5, 9, 12) if (label_map == i).any()]
    for obj in objects:
        ys, xs = np.nonzero(label_map == obj.track_id)
        x, y, w, h = obj.bounding_box
        assert (round(x * 854), round(y * 480)) == (xs.min(), ys.min())
        assert (round(w * 854), round(h * 480)) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert obj.mask.shape == (np.ptp(ys) + 1, np.ptp(xs) + 1)
        assert obj.mask.sum() == len(xs)


def test_label_map_round_trips_through_detections(davis_label_maps):
    for label_map in davis_label_maps[::6]:
        detections = label_map_to_detections(label_map, [Info(5, "rider", 0.75)])
        assert np.array_equal(detections_to_label_map(detections, label_map.shape), label_map)
        by_index = {d.index: d for d in detections.detections}
        assert (by_index[5].label, by_index[5].confidence) == ("rider", 0.75)
        assert (by_index[2].label, by_index[2].confidence) == ("object", None)


def test_bad_label_map_is_rejected():
    with pytest.raises(ValueError, match="2-D integer"):
        label_map_to_detections(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="negative"):
        label_map_to_detections(-np.ones((4, 4), np.int32))


def test_written_documents_load_as_the_same_labels(video_sample, davis_label_maps):
    dataset, sample = video_sample
    objects = [Info(9, "car", 0.5)]
    _write(dataset, sample, davis_label_maps[:5], seg=True, objects=objects)
    sample.reload()
    assert dataset.get_frame_field_schema()["masks"].document_type is fo.Detections
    for number, label_map in enumerate(davis_label_maps[:5], start=1):
        stored = sample.frames[number]["masks"]
        expected = label_map_to_detections(label_map, objects)
        assert len(stored.detections) == len(expected.detections)
        for got, want in zip(stored.detections, expected.detections):
            assert (got.label, got.index, got.confidence) == (want.label, want.index, want.confidence)
            assert np.allclose(got.bounding_box, want.bounding_box)
            assert np.array_equal(got.mask, want.mask)
        assert np.array_equal(sample.frames[number]["masks_seg"].mask, label_map)
    # FiftyOne's own aggregations read the stored documents
    assert dataset.count("frames.masks.detections") == sum(len(list(visible_objects(m))) for m in davis_label_maps[:5])


def test_rerun_replaces_the_field_cleanly_and_leaves_other_fields(video_sample, davis_label_maps):
    dataset, sample = video_sample
    _write(dataset, sample, davis_label_maps[:10], seg=True)
    _write(dataset, sample, davis_label_maps[:10], field="other")
    shifted = [np.where(m > 0, m + 1, 0).astype(np.uint8) for m in davis_label_maps[:4]]
    _write(dataset, sample, shifted)  # frames 1-4 only, no _seg
    stored = _stored_maps(dataset)
    expected = shifted + davis_label_maps[4:10]  # frames 5-10 were not recomputed: they keep their labels
    assert len(stored) == 10 and all(np.array_equal(a, b) for a, b in zip(stored, expected))
    sample.reload()
    assert [frame["masks_seg"] is None for _, frame in sample.frames.items()] == [True] * 4 + [False] * 6
    assert len(_stored_maps(dataset, "other")) == 10


def test_failed_write_leaves_previous_contents(video_sample, davis_label_maps):
    dataset, sample = video_sample
    _write(dataset, sample, davis_label_maps[:6])
    with pytest.raises(RuntimeError, match="model exploded"):
        with staging.VideoWrite(dataset, sample.id, {"masks": "Detections"}, batch_size=2) as write:
            for number in range(1, 6):
                write.add(number, {"masks": detections_document(np.zeros((480, 854), np.uint8))})
            raise RuntimeError("model exploded")
    stored = _stored_maps(dataset)
    assert len(stored) == 6 and all(np.array_equal(a, b) for a, b in zip(stored, davis_label_maps))
    db = foo.get_db_conn()
    assert db[staging.JOURNAL_COLLECTION].count_documents({"sample_id": sample.id}) == 0
    assert db[staging.STAGED_COLLECTION].count_documents({}) == 0


def test_same_field_of_same_video_has_one_writer_at_a_time(video_sample):
    dataset, sample = video_sample
    with staging.VideoWrite(dataset, sample.id, {"masks": "Detections"}):
        with pytest.raises(staging.VideoBusyError, match="another process"):
            with staging.VideoWrite(dataset, sample.id, {"masks_seg": "Segmentation", "masks": "Detections"}):
                pass
        with staging.VideoWrite(dataset, sample.id, {"other": "Detections"}) as write:
            write.add(1, {"other": detections_document(np.ones((480, 854), np.uint8))})
            write.commit()
    assert len(_stored_maps(dataset, "other")) == 1


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np, pymongo, fiftyone as fo
    from samtrack_ops.fiftyone import staging
    from samtrack_ops.fiftyone.storage import detections_document

    dataset = fo.load_dataset(sys.argv[1])
    die_in = sys.argv[2]
    original_bulk_write = pymongo.collection.Collection.bulk_write

    def bulk_write_then_die(self, *args, **kwargs):
        result = original_bulk_write(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    if die_in == "commit":  # dies after the first of several bulk writes into the frames
        pymongo.collection.Collection.bulk_write = bulk_write_then_die
    with staging.VideoWrite(dataset, dataset.first().id, {"masks": "Detections"}, batch_size=3) as write:
        for number in range(1, 9):
            write.add(number, {"masks": detections_document(np.full((480, 854), number, np.uint8))})
        if die_in == "staging":
            os.kill(os.getpid(), signal.SIGKILL)
        write.commit()
    """
)


def _run_killed_writer(dataset, die_in):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", KILLED_WRITER, dataset.name, die_in], env=env, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]


def test_writer_killed_while_staging_leaves_previous_contents(video_sample, davis_label_maps):
    dataset, sample = video_sample
    _write(dataset, sample, davis_label_maps[:6])
    _run_killed_writer(dataset, "staging")
    stored = _stored_maps(dataset)
    assert len(stored) == 6 and all(np.array_equal(a, b) for a, b in zip(stored, davis_label_maps))
    assert len(staging.interrupted_writes(dataset)) == 1
    with pytest.raises(staging.VideoBusyError):  # the dead writer's lock holds until recovery
        _write(dataset, sample, davis_label_maps[:2])
    handled = staging.recover_interrupted_writes(dataset)
    assert [entry["state"] for entry in handled] == ["staging"]
    assert foo.get_db_conn()[staging.STAGED_COLLECTION].count_documents({}) == 0
    assert len(_stored_maps(dataset)) == 6
    shifted = [np.where(m > 0, m + 1, 0).astype(np.uint8) for m in davis_label_maps[:2]]
    _write(dataset, sample, shifted)
    stored = _stored_maps(dataset)  # frames 3-6 were not rewritten: they keep their labels
    assert len(stored) == 6 and all(np.array_equal(a, b) for a, b in zip(stored, shifted + davis_label_maps[2:6]))


def test_writer_killed_while_committing_is_completed_by_recovery(video_sample, davis_label_maps):
    dataset, sample = video_sample
    _write(dataset, sample, davis_label_maps[:6])
    _run_killed_writer(dataset, "commit")
    half_written = _stored_maps(dataset)
    assert [m.max() for m in half_written[:3]] == [1, 2, 3]  # torn: frames 1-3 new, 4-6 old
    assert all(np.array_equal(a, b) for a, b in zip(half_written[3:], davis_label_maps[3:6]))
    handled = staging.recover_interrupted_writes(dataset)
    assert [entry["state"] for entry in handled] == ["committing"]
    assert [m.max() for m in _stored_maps(dataset)] == list(range(1, 9))


CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np, fiftyone as fo
    from samtrack_ops.fiftyone import staging
    from samtrack_ops.fiftyone.runs import save_run_record
    from samtrack_ops.fiftyone.storage import frame_documents

    dataset = fo.load_dataset(sys.argv[1])
    field, track_id = sys.argv[2], int(sys.argv[3])
    for sample_id in dataset.values("id"):
        with staging.VideoWrite(dataset, sample_id, {field: "Detections", field + "_seg": "Segmentation"}, batch_size=5) as write:
            for number in range(1, 41):
                label_map = np.zeros((48, 64), np.uint8)
                label_map[number % 40 : number % 40 + 5, 3:9] = track_id
                write.add(number, frame_documents(label_map, None, field, field + "_seg"))
            write.commit()
    save_run_record(dataset, field, "interactive", {}, {}, None, True, {})
    """
)


def test_concurrent_runs_on_different_fields_do_not_interfere(shared_dir):
    dataset = fo.Dataset(f"concurrent-{uuid.uuid4().hex[:8]}")
    dataset.add_samples([fo.Sample(filepath=str(shared_dir / "data" / "blackswan.mp4")) for _ in range(3)])
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        writers = [
            subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, dataset.name, field, str(track_id)], env=env,
                             stderr=subprocess.PIPE)
            for field, track_id in (("first", 3), ("second", 4))
        ]
        for writer in writers:
            assert writer.wait() == 0, writer.stderr.read().decode()[-2000:]
        dataset.reload()
        schema = dataset.get_frame_field_schema()
        assert {"first", "first_seg", "second", "second_seg"} <= set(schema)
        assert {"samtrack_first", "samtrack_second"} <= set(dataset.list_runs())
        for field, track_id in (("first", 3), ("second", 4)):
            assert dataset.count(f"frames.{field}.detections") == 3 * 40
            assert dataset.distinct(f"frames.{field}.detections.index") == [track_id]
    finally:
        dataset.delete()
