"""Write safety of per-video commits: injected database failures at every write of the final copy, writers
judged alive or dead across hosts and PID namespaces, writers that lost their journal entry, and field
checks made before any model is loaded.

Real embedded MongoDB; faults are injected by wrapping the pymongo calls the commit itself uses.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pymongo
import pytest
from pymongo.errors import AutoReconnect

import fiftyone as fo
import fiftyone.core.odm as foo
from fiftyone.operators import execute_operator

from samtrack_ops.fiftyone import recover, staging, track_samples
from samtrack_ops.fiftyone.storage import detections_document, detections_to_label_map
from samtrack_ops.prompts import Box

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (480, 854)
FRAMES = 8
BATCH = 3  # the copy of 8 frames takes three bulk writes: frames 1-3, 4-6, 7-8
OLD, NEW, OTHER = 2, 3, 4  # track IDs of the labels of different runs


def run_labels(track_id, frame_number):
    """One run's label map of a frame: a square of ``track_id`` whose place depends on the frame."""
    label_map = np.zeros(SIZE, np.uint8)
    label_map[40:80, 30 * frame_number:30 * frame_number + 40] = track_id
    return label_map


def write_run(dataset, track_id, frames=range(1, FRAMES + 1), field="masks", **write_options):
    sample_id = dataset.first().id
    with staging.VideoWrite(dataset, sample_id, {field: "Detections"}, batch_size=BATCH, **write_options) as write:
        for number in frames:
            write.add(number, {field: detections_document(run_labels(track_id, number))})
        write.commit()


def frame_states(dataset, field="masks"):
    """Per stored frame: "old", "new", "other" or "mixed?" by comparing with each run's labels."""
    names = {OLD: "old", NEW: "new", OTHER: "other"}
    sample = dataset.first()
    sample.reload()
    states = []
    for number, frame in sample.frames.items():
        stored = detections_to_label_map(frame[field], SIZE)
        matches = [name for track_id, name in names.items() if np.array_equal(stored, run_labels(track_id, number))]
        states.append(matches[0] if matches else "neither")
    return states


@pytest.fixture
def dataset(shared_dir):
    dataset = fo.Dataset(f"safety-{uuid.uuid4().hex[:8]}")
    dataset.add_sample(fo.Sample(filepath=str(shared_dir / "data" / "blackswan.mp4")))
    yield dataset
    dataset.delete()


def journal_entries(dataset):
    return list(foo.get_db_conn()[staging.JOURNAL_COLLECTION].find({"dataset_id": str(dataset._doc.id)}))


def staged_count(entry):
    return foo.get_db_conn()[staging.STAGED_COLLECTION].count_documents({"write": entry["_id"]})


class FailingCall:
    """Replaces ``pymongo.collection.Collection.<method>``: the ``fail_at``-th call on collection
    ``collection_name`` raises AutoReconnect (a lost connection) instead of running; others run."""

    def __init__(self, monkeypatch, method, collection_name, fail_at):
        self.original = getattr(pymongo.collection.Collection, method)
        self.collection_name, self.fail_at, self.calls = collection_name, fail_at, 0
        failing = self

        def call(collection, *args, **kwargs):
            if collection.name == failing.collection_name:
                failing.calls += 1
                if failing.calls == failing.fail_at:
                    raise AutoReconnect(f"injected: connection lost at {method} #{failing.calls}")
            return failing.original(collection, *args, **kwargs)

        monkeypatch.setattr(pymongo.collection.Collection, method, call)


# --- 1. a commit failing part-way ------------------------------------------------------------------

# which write of the copy fails -> what the frames hold right after the failure (before recovery)
COPY_FAILURES = {
    "first bulk write": ("bulk_write", 1, ["old"] * 8),
    "middle bulk write": ("bulk_write", 2, ["new"] * 3 + ["old"] * 5),
    "last bulk write": ("bulk_write", 3, ["new"] * 6 + ["old"] * 2),
    "video record after the copy": ("replace_one", 1, ["new"] * 8),
}


@pytest.mark.parametrize("failing_write", list(COPY_FAILURES))
@pytest.mark.parametrize("recovered_by", ["recover_interrupted_writes", "next run (runs.recover)"])
def test_commit_failing_at_any_write_is_finished_by_recovery(dataset, monkeypatch, failing_write, recovered_by):
    write_run(dataset, OLD)
    method, fail_at, torn = COPY_FAILURES[failing_write]
    target = staging.RECORDS_COLLECTION if method == "replace_one" else dataset._frame_collection_name
    injected = FailingCall(monkeypatch, method, target, fail_at)
    with pytest.raises(staging.CommitInterruptedError, match="recover_interrupted_writes") as raised:
        write_run(dataset, NEW, record={"_id": f"record-{uuid.uuid4().hex}", "what": "test"})
    assert isinstance(raised.value.__cause__, AutoReconnect)
    monkeypatch.setattr(pymongo.collection.Collection, method, injected.original)

    assert frame_states(dataset) == torn
    [entry] = journal_entries(dataset)  # kept, with every staged frame, for recovery to finish
    assert entry["state"] == "committing" and entry["abandoned"] and staged_count(entry) == FRAMES
    with pytest.raises(staging.VideoBusyError):  # nobody writes over a half-finished commit
        write_run(dataset, OTHER)

    if recovered_by == "recover_interrupted_writes":
        handled = staging.recover_interrupted_writes(dataset)
    else:
        handled = recover(dataset)["writes"]
    assert [e["state"] for e in handled] == ["committing"]
    assert frame_states(dataset) == ["new"] * FRAMES
    assert journal_entries(dataset) == [] and staged_count(entry) == 0


def test_recovery_failing_part_way_is_finished_by_the_next_recovery(dataset, monkeypatch):
    write_run(dataset, OLD)
    FailingCall(monkeypatch, "bulk_write", dataset._frame_collection_name, 2)
    with pytest.raises(staging.CommitInterruptedError):
        write_run(dataset, NEW)
    FailingCall(monkeypatch, "bulk_write", dataset._frame_collection_name, 3)  # recovery's 3rd write fails too
    with pytest.raises(AutoReconnect):
        staging.recover_interrupted_writes(dataset)
    assert frame_states(dataset) == ["new"] * 6 + ["old"] * 2
    [entry] = journal_entries(dataset)
    assert staged_count(entry) == FRAMES
    monkeypatch.undo()
    assert [e["state"] for e in staging.recover_interrupted_writes(dataset)] == ["committing"]
    assert frame_states(dataset) == ["new"] * FRAMES


def test_failure_before_the_copy_starts_leaves_the_old_labels_and_no_entry(dataset, monkeypatch):
    write_run(dataset, OLD)
    FailingCall(monkeypatch, "find_one_and_update", staging.JOURNAL_COLLECTION, 1)  # the switch to committing
    with pytest.raises(AutoReconnect):
        write_run(dataset, NEW)
    monkeypatch.undo()
    assert frame_states(dataset) == ["old"] * FRAMES
    assert journal_entries(dataset) == []
    assert foo.get_db_conn()[staging.STAGED_COLLECTION].count_documents({}) == 0


def test_commit_never_deletes_labels_of_frames_it_has_no_new_labels_for(dataset):
    write_run(dataset, OLD)
    write_run(dataset, NEW, frames=range(1, 6))  # e.g. a video that decoded only 5 of its 8 frames
    assert frame_states(dataset) == ["new"] * 5 + ["old"] * 3


# --- 2. heartbeats: live writers stay alive, lost writers stop -------------------------------------

REMOTE_WRITER = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np, fiftyone as fo
    from samtrack_ops.fiftyone import staging
    from samtrack_ops.fiftyone.storage import detections_document

    dataset_name, where, then = sys.argv[1], sys.argv[2], sys.argv[3]
    dead_pid = int(sys.argv[4])
    seen_from_here = staging._this_process
    if where == "other host":
        staging._this_process = lambda: {**seen_from_here(), "host": "other-host", "pid": dead_pid,
                                         "pid_namespace": "another-boot/4026531836"}
    else:  # same host name, another PID namespace (a container): its PID names no process here
        staging._this_process = lambda: {**seen_from_here(), "pid": dead_pid, "pid_namespace": "same-boot/123"}
    dataset = fo.load_dataset(dataset_name)
    with staging.VideoWrite(dataset, dataset.first().id, {"masks": "Detections"}, batch_size=3,
                            heartbeat_seconds=0.2) as write:
        print("entry open", flush=True)
        time.sleep(4.0)  # loading models, SAM on key frames: no frame staged for a while
        for number in range(1, 9):
            label_map = np.zeros((480, 854), np.uint8)
            label_map[40:80, 30 * number:30 * number + 40] = 3
            write.add(number, {"masks": detections_document(label_map)})
        if then == "dies":
            os.kill(os.getpid(), signal.SIGKILL)
        write.commit()
    """
)


def dead_pid():
    """A PID that names no process on this machine right now."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def start_remote_writer(dataset, where, then):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    writer = subprocess.Popen([sys.executable, "-c", REMOTE_WRITER, dataset.name, where, then, str(dead_pid())],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "entry open\n", writer.stderr.read()[-2000:]
    return writer


@pytest.mark.parametrize("where", ["other host", "same host name, other PID namespace"])
def test_live_writer_elsewhere_is_not_declared_dead_while_it_computes(dataset, where):
    write_run(dataset, OLD)
    writer = start_remote_writer(dataset, where, "commits")
    handled = []
    while writer.poll() is None:  # another host's recovery, with a short stale_after, all the while
        handled += staging.recover_interrupted_writes(dataset, stale_after=1.0)
        time.sleep(0.25)
    assert writer.returncode == 0, writer.stderr.read()[-2000:]
    assert handled == []
    assert frame_states(dataset) == ["new"] * FRAMES


def test_dead_writer_elsewhere_is_recovered_once_its_heartbeat_is_stale(dataset):
    write_run(dataset, OLD)
    writer = start_remote_writer(dataset, "other host", "dies")
    assert writer.wait(timeout=120) == -signal.SIGKILL
    [entry] = journal_entries(dataset)
    assert entry["host"] == "other-host"
    # its PID names no process here, but it ran elsewhere: only the heartbeat tells
    assert staging.recover_interrupted_writes(dataset, stale_after=30.0) == []
    time.sleep(1.5)
    assert [e["state"] for e in staging.recover_interrupted_writes(dataset, stale_after=1.0)] == ["staging"]
    assert frame_states(dataset) == ["old"] * FRAMES
    assert foo.get_db_conn()[staging.STAGED_COLLECTION].count_documents({"write": entry["_id"]}) == 0


def new_labels_write(dataset, heartbeat_seconds):
    """A VideoWrite of the "masks" field of the dataset's video (enter it to open its journal entry)."""
    return staging.VideoWrite(dataset, dataset.first().id, {"masks": "Detections"}, batch_size=BATCH,
                              heartbeat_seconds=heartbeat_seconds)


def remove_entry(write):
    """What another process's recovery does to a writer it judged dead."""
    foo.get_db_conn()[staging.JOURNAL_COLLECTION].delete_one({"_id": write._token})


def test_writer_whose_entry_was_removed_stops_at_its_next_frame_and_writes_nothing(dataset):
    write_run(dataset, OLD)
    with pytest.raises(staging.WriteLostError, match="removed by another process.*nothing was written"):
        with new_labels_write(dataset, heartbeat_seconds=0.1) as write:
            write.add(1, {"masks": detections_document(run_labels(NEW, 1))})
            remove_entry(write)
            time.sleep(1.0)  # the next heartbeat finds the entry gone
            write.add(2, {"masks": detections_document(run_labels(NEW, 2))})
    assert frame_states(dataset) == ["old"] * FRAMES
    assert foo.get_db_conn()[staging.STAGED_COLLECTION].count_documents({"write": write._token}) == 0


def test_writer_whose_video_was_taken_over_refuses_to_commit(dataset):
    write_run(dataset, OLD)
    with pytest.raises(staging.WriteLostError, match="may have given the video to another worker"):
        with new_labels_write(dataset, heartbeat_seconds=3600) as write:
            for number in range(1, FRAMES + 1):
                write.add(number, {"masks": detections_document(run_labels(NEW, number))})
            remove_entry(write)
            write_run(dataset, OTHER)  # the worker the video was given to finishes first
            write.commit()
    assert frame_states(dataset) == ["other"] * FRAMES
    assert journal_entries(dataset) == []


# --- 21. label fields checked before any model is loaded -------------------------------------------


class Untouchable:
    """A prebuilt model that fails the test if the run uses it at all."""

    def __getattr__(self, name):
        raise AssertionError(f"the run used a model ({name}) before checking its label field")


UNTOUCHABLE_MODELS = {"segmentor": Untouchable(), "tracker": Untouchable()}
BOX = Box(frame=0, box_xyxy=[100, 100, 300, 300], label="swan")


@pytest.mark.parametrize("field, existing", [("notes", "StringField"), ("frame_number", "FrameNumberField")])
def test_label_field_of_another_type_is_refused_before_any_model_is_used(dataset, field, existing):
    if field == "notes":
        dataset.add_frame_field("notes", fo.StringField)
    with pytest.raises(ValueError, match=f"frame field '{field}' .* already holds .*{existing}.* not Detections"):
        track_samples(dataset, [BOX], field, **UNTOUCHABLE_MODELS)


def test_seg_field_of_another_type_is_refused_before_any_model_is_used(dataset):
    dataset.add_frame_field("tracks_seg", fo.StringField)
    with pytest.raises(ValueError, match="frame field 'tracks_seg' .* not Segmentation"):
        track_samples(dataset, [BOX], "tracks", store_seg=True, **UNTOUCHABLE_MODELS)


def test_prompts_for_a_sample_not_in_the_collection_name_it(dataset):
    stranger = str(uuid.uuid4().hex[:24])
    with pytest.raises(ValueError, match=f"{stranger}.*not in the collection"):
        track_samples(dataset, {dataset.first().id: [BOX], stranger: [BOX]}, "tracks", **UNTOUCHABLE_MODELS)


TRACK = "@samtrack/samtrack/track_objects"


def operator_params(label_field, **extra):
    return {
        "target": "DATASET",
        "prompt_frame": 1,
        "boxes": [{"x0": 100, "y0": 100, "x1": 300, "y1": 300, "label": "swan"}],
        "label_field": label_field,
        "sam_checkpoint": "/nonexistent/sam.pth",  # resolving it would fail: the field check comes first
        "tracker_checkpoint": "/nonexistent/deaot.pth",
        "device": "cpu",
        **extra,
    }


@pytest.mark.parametrize("split_by_video", [False, True])
def test_operator_refuses_a_label_field_of_another_type_first(dataset, split_by_video):
    dataset.add_frame_field("notes", fo.StringField)
    with pytest.raises(Exception, match="frame field 'notes' .* already holds"):
        execute_operator(TRACK, ctx={"dataset": dataset,
                                         "params": operator_params("notes", split_by_video=split_by_video)})


def test_operator_run_for_a_sample_id_not_in_the_dataset_names_it(dataset):
    from samtrack_ops.fiftyone import call_to_params

    stranger = str(uuid.uuid4().hex[:24])
    run = {**call_to_params([BOX], "tracks", sam_checkpoint="/nonexistent/sam.pth"), "sample_ids": [stranger]}
    with pytest.raises(Exception, match=f"{stranger}.*not in the collection"):
        execute_operator(TRACK, ctx={"dataset": dataset, "params": {"run": run}})
