"""Scale-out on FiftyOne's delegated operations: two real ``fiftyone delegated launch`` workers on the
session's real mongod, one SIGKILLed mid-video.

The ``track_objects`` operator, asked to split by video, queues one delegated operation per video; the two
workers claim different operations; the killed worker's video keeps its previous labels until a live worker
notices the dead writer (``samtrack_ops.fiftyone.recover``, run at the start and end of every video), marks
its operation FAILED and queues it again. In the end each video was completed exactly once.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from bson import ObjectId

import fiftyone as fo
import fiftyone.core.odm as foo_odm
import fiftyone.operators as foo
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

from samtrack_ops.fiftyone import staging, video_record
from samtrack_ops.fiftyone.storage import detections_to_label_map, frame_documents

TRACK = "@samtrack/samtrack/track_objects"
DEADLINE_SECONDS = 1500


@pytest.fixture
def small_dataset(small_videos):
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=str(path)) for path in small_videos.values()])
    dataset.compute_metadata()
    yield dataset
    dataset.delete()


def previous_label_map(frame_number):
    """The 'previous run' labels: one square per frame, track ID 7, moving right."""
    label_map = np.zeros((240, 428), np.uint8)
    label_map[50:90, 20 * frame_number : 20 * frame_number + 40] = 7
    return label_map


def write_previous_labels(dataset):
    for sample_id in dataset.values("id"):
        with staging.VideoWrite(dataset, sample_id, {"tracks": "Detections"}) as write:
            for number in range(1, 5):
                write.add(number, frame_documents(previous_label_map(number), None, "tracks"))
            write.commit()


def stored_maps(dataset, sample_id):
    sample = dataset[sample_id]
    sample.reload()
    return [detections_to_label_map(frame["tracks"], (240, 428)) for frame in sample.frames.values()]


def launch_worker(log_path):
    log = open(log_path, "w")
    command = [os.path.join(os.path.dirname(sys.executable), "fiftyone"), "delegated", "launch"]
    return subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def our_operations(dataset):
    return [op for op in DelegatedOperationService().list_operations(dataset_name=dataset.name) if op.operator == TRACK]


def wait_for(condition, what, workers, logs):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    tails = "\n".join(f"--- {log}\n{open(log).read()[-3000:]}" for log in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def running_mid_video(dataset, worker_pids):
    """(operation, journal entry) of a video a worker has tracked some but not all frames of, or None."""
    for entry in foo_odm.get_db_conn()[staging.JOURNAL_COLLECTION].find({"dataset_id": str(dataset._doc.id)}):
        if entry["pid"] not in worker_pids or entry.get("operation_id") is None:
            continue
        operation = DelegatedOperationService().get(ObjectId(entry["operation_id"]))
        progress = operation.status.progress if operation.status else None
        if operation.run_state == ExecutionRunState.RUNNING and progress and 0 < progress < 1:
            return operation, entry
    return None


@pytest.mark.slow
def test_two_workers_each_video_once_and_a_killed_worker_recovered(small_dataset, sam_vit_b_random_ckpt, r50_deaotl_ckpt, tmp_path):
    dataset = small_dataset
    write_previous_labels(dataset)
    params = {
        "target": "DATASET",
        "prompt_frame": 1,
        "boxes": [{"x0": 120, "y0": 40, "x1": 330, "y1": 220, "label": "thing"}],
        "label_field": "tracks",
        "skip_existing": True,
        "split_by_video": True,
        "sam_checkpoint": str(sam_vit_b_random_ckpt),
        "tracker_model": "r50_deaotl",
        "tracker_checkpoint": str(r50_deaotl_ckpt),
        "device": "cpu",
    }
    queued = foo.execute_operator(TRACK, ctx={"dataset": dataset, "params": params}).result["queued_operations"]
    assert len(queued) == 3 and len(our_operations(dataset)) == 3

    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    workers = [launch_worker(log) for log in logs]
    try:
        pids = {worker.pid for worker in workers}
        operation, entry = wait_for(lambda: running_mid_video(dataset, pids), "a worker mid-video", workers, logs)
        victim = next(worker for worker in workers if worker.pid == entry["pid"])
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        killed_video = entry["sample_id"]

        # killed midway: the video still holds its previous labels, the dead write is detectable
        assert all(np.array_equal(m, previous_label_map(n)) for n, m in enumerate(stored_maps(dataset, killed_video), 1))
        assert [e["_id"] for e in staging.interrupted_writes(dataset)] == [entry["_id"]]

        def all_videos_done():
            operations = our_operations(dataset)
            active = [op for op in operations if op.run_state in (ExecutionRunState.QUEUED, ExecutionRunState.RUNNING)]
            records = [video_record(dataset, sample_id, "tracks") for sample_id in dataset.values("id")]
            return not active and all(records) and operations

        operations = wait_for(all_videos_done, "every video tracked", workers, logs)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()

    states = {str(op.id): op.run_state for op in operations}
    assert states[str(operation.id)] == ExecutionRunState.FAILED  # the killed one
    completed = [op for op in operations if op.run_state == ExecutionRunState.COMPLETED]
    completed_videos = [op.context.request_params["params"]["run"]["sample_ids"][0] for op in completed]
    assert len(operations) == 4 and sorted(completed_videos) == sorted(dataset.values("id"))  # each once
    assert killed_video in completed_videos

    for sample_id in dataset.values("id"):
        maps = stored_maps(dataset, sample_id)
        assert len(maps) == 4 and not any(np.array_equal(m, previous_label_map(n)) for n, m in enumerate(maps, 1))
        labels = dataset[sample_id].frames[1]["tracks"].detections
        assert [(d.index, d.label) for d in labels] in ([(1, "thing")], [])
    db = foo_odm.get_db_conn()
    assert db[staging.JOURNAL_COLLECTION].count_documents({"dataset_id": str(dataset._doc.id)}) == 0
    assert db[staging.STAGED_COLLECTION].count_documents({}) == 0

    # the same run again skips every video: nothing is queued
    assert foo.execute_operator(TRACK, ctx={"dataset": dataset, "params": params}).result["queued_operations"] == []
