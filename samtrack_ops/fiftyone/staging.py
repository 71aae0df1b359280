"""All-or-nothing, batched writes of one video's frame labels.

A :class:`VideoWrite` streams frame label documents into a staging collection in batches (the target
frame fields are not touched while a video is being computed), then *commits*: it marks its journal entry
``committing`` and copies the staged documents into the dataset's frames in a few bulk writes. The journal
entry (collection ``samtrack_writes``) records the dataset, sample, fields and writer:

- a run that fails before committing raises inside the ``with`` block: the staged documents and the entry
  are deleted and the target fields keep their previous contents;
- a process killed while computing (SIGKILL skips every ``finally``) leaves an entry in state ``staging``
  whose writer is gone: :func:`recover_interrupted_writes` deletes it and its staged documents;
- once an entry is ``committing`` its staged documents are complete and are never deleted before the copy
  has finished: a commit that fails part-way (a database error, an interrupt) marks the entry abandoned and
  raises, and a process killed while committing leaves it as it was; either way
  :func:`recover_interrupted_writes` finishes the copy (commits are idempotent), so after recovery every
  frame holds the new labels, and before the commit started every frame held the old ones.

What a commit replaces: on each frame it has a staged document for, the declared fields (fields missing
from the document are cleared). Frames it has no document for (e.g. frames a short decode never reached)
keep whatever they held: labels are only replaced by newly computed labels, never deleted for lack of them.

``samtrack_ops.fiftyone.track_samples`` calls :func:`recover_interrupted_writes` before every run, so
leftovers are cleaned on the next run. Each entry also *locks* its ``(dataset, sample, field)`` triples
(a unique index), so two writers can never write the same field of the same video at once.

Liveness: a background thread refreshes the entry's heartbeat every ``heartbeat_seconds`` from the moment
the entry is opened until it is closed (through model loading and every computation in between). A writer
is *gone* when its commit was abandoned, when its heartbeat is older than ``stale_after`` seconds, or
(without waiting) when it ran in this PID namespace of this boot of this machine and its process no longer
exists. PIDs are compared only within one PID namespace (boot ID + ``/proc/self/ns/pid``): containers
sharing a host name reuse PIDs. A writer whose entry was removed (another process's recovery declared it
dead, e.g. after a long freeze) stops at its next step with :class:`WriteLostError` and writes nothing.
"""

import datetime
import os
import socket
import threading
import uuid

import psutil
import pymongo
from bson import ObjectId
from pymongo.errors import DuplicateKeyError, PyMongoError

import fiftyone as fo
import fiftyone.core.odm as foo

JOURNAL_COLLECTION = "samtrack_writes"
RECORDS_COLLECTION = "samtrack_videos"
STAGED_COLLECTION = "samtrack_staged_frames"
DEFAULT_STALE_AFTER = 600.0
HEARTBEAT_SECONDS = 30.0
LABEL_TYPES = {"Detections": fo.Detections, "Segmentation": fo.Segmentation}


class VideoBusyError(RuntimeError):
    """Another live process is writing the same field of the same video."""


class WriteLostError(RuntimeError):
    """This write's journal entry was removed or taken over by another process: nothing more is written."""


class CommitInterruptedError(RuntimeError):
    """The copy into the dataset failed part-way; :func:`recover_interrupted_writes` finishes it."""


def _now():
    return datetime.datetime.utcnow()


def _collections():
    db = foo.get_db_conn()
    journal = db[JOURNAL_COLLECTION]
    staged = db[STAGED_COLLECTION]
    journal.create_index("locks", unique=True)
    journal.create_index("dataset_id")
    staged.create_index([("write", pymongo.ASCENDING), ("frame_number", pymongo.ASCENDING)])
    return journal, staged


def _lock_names(dataset_id, sample_id, fields):
    return [f"{dataset_id}/{sample_id}/{field}" for field in fields]


def _pid_namespace():
    """Where a PID means the same process: "<boot id>/<pid namespace inode>" (hostname on systems without /proc)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as stream:
            boot_id = stream.read().strip()
        return f"{boot_id}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return f"host:{socket.gethostname()}"


def _this_process():
    process = psutil.Process()
    return {
        "host": socket.gethostname(),
        "pid_namespace": _pid_namespace(),
        "pid": process.pid,
        "process_started": process.create_time(),
    }


class _Heartbeat:
    """Refreshes a journal entry's heartbeat every ``interval`` seconds on a daemon thread.

    Stops when :meth:`stop` is called or when the entry is gone (then :attr:`lost` is set).
    """

    def __init__(self, journal, entry_id, interval):
        self._journal, self._entry_id, self._interval = journal, entry_id, interval
        self._stopped = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"samtrack-heartbeat-{entry_id[:8]}", daemon=True)

    def start(self):
        self._thread.start()

    def _run(self):
        while not self._stopped.wait(self._interval):
            try:
                found = self._journal.update_one({"_id": self._entry_id}, {"$set": {"heartbeat": _now()}})
            except PyMongoError:
                continue  # the database is unreachable for now: try again at the next beat
            if found.matched_count == 0:
                self.lost.set()
                return

    def stop(self):
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)  # a beat in flight; it cannot outlive the entry it refreshes


class VideoWrite:
    """Replaces some frame fields of one video sample all at once.

    Args:
        dataset: the ``fo.Dataset`` holding the sample
        sample_id: the video sample's ID
        field_types: ``{frame field name: "Detections" | "Segmentation"}``, every field this write replaces;
            on each frame given to :meth:`add`, the fields in its documents are set and the others cleared;
            frames never given to :meth:`add` are left as they are
        batch_size: staged frames per database round trip
        operation_id: optional delegated operation ID, recorded in the journal (for recovery)
        record: optional document (with an ``_id``) upserted into the ``samtrack_videos`` collection as
            part of the commit: what the fields now hold (see ``runs.py``)
        heartbeat_seconds: interval of the background heartbeat (keep it well below ``stale_after``)

    Use as a context manager; call :meth:`add` per frame then :meth:`commit`. Leaving the block without
    committing (an exception) discards the staged frames.
    """

    def __init__(self, dataset, sample_id, field_types, batch_size=256, operation_id=None, record=None,
                 heartbeat_seconds=HEARTBEAT_SECONDS):
        unknown = set(field_types.values()) - set(LABEL_TYPES)
        if unknown:
            raise ValueError(f"unsupported label types {sorted(unknown)}; use one of {sorted(LABEL_TYPES)}")
        self.dataset = dataset
        self.sample_id = str(sample_id)
        self.field_types = dict(field_types)
        self.batch_size = batch_size
        self.operation_id = None if operation_id is None else str(operation_id)
        self.record = record
        self.partial = bool(partial)
        self._token = uuid.uuid4().hex
        self._pending = []
        self._journal, self._staged = _collections()
        self._state = "new"  # -> "staging" -> "committing" -> "committed"
        self._heartbeat = _Heartbeat(self._journal, self._token, heartbeat_seconds)

    def __enter__(self):
        dataset_id = str(self.dataset._doc.id)
        entry = {
            "_id": self._token,
            "dataset_id": dataset_id,
            "frame_collection": self.dataset._frame_collection_name,
            "sample_id": self.sample_id,
            "field_types": self.field_types,
            "batch_size": self.batch_size,
            "locks": _lock_names(dataset_id, self.sample_id, self.field_types),
            "state": "staging",
            "operation_id": self.operation_id,
            "record": self.record,
            "partial": self.partial,
            "started_at": _now(),
            "heartbeat": _now(),
            **_this_process(),
        }
        try:
            self._journal.insert_one(entry)
        except DuplicateKeyError:
            raise VideoBusyError(
                f"sample {self.sample_id} of dataset '{self.dataset.name}' is being written to one of the "
                f"fields {sorted(self.field_types)} by another process; wait for it, or if that process "
                "died, call samtrack_ops.fiftyone.recover_interrupted_writes()"
            ) from None
        self._state = "staging"
        self._heartbeat.start()
        return self

    def add(self, frame_number, documents):
        """Stages one frame: ``documents`` maps some of the fields to label documents (see ``storage.py``)."""
        extra = set(documents) - set(self.field_types)
        if extra:
            raise ValueError(f"fields {sorted(extra)} were not declared for this write")
        self._check_not_lost()
        self._pending.append({"write": self._token, "frame_number": int(frame_number), "labels": documents})
        if len(self._pending) >= self.batch_size:
            self._flush()

    def _flush(self):
        if self._pending:
            self._staged.insert_many(self._pending, ordered=False)
            self._pending = []

    def _check_not_lost(self):
        if self._heartbeat.lost.is_set():
            raise self._lost_error()

    def _lost_error(self):
        return WriteLostError(
            f"the journal entry of this write (sample {self.sample_id} of dataset '{self.dataset.name}', fields "
            f"{sorted(self.field_types)}) was removed by another process, which judged this writer dead (no "
            "heartbeat for longer than its stale_after) and may have given the video to another worker; "
            "nothing was written to these fields by this process. Run it again if the video still needs it."
        )

    def commit(self):
        """Copies every staged frame into the dataset and releases the lock.

        Raises WriteLostError (nothing written) when the entry was taken away, and CommitInterruptedError
        when the copy failed part-way (the staged frames are kept; recovery finishes the copy).
        """
        self._check_not_lost()
        self._flush()
        _declare_fields(self.dataset, self.field_types)  # a type conflict fails here, before any copy
        entry = self._journal.find_one_and_update(
            {"_id": self._token, "state": "staging"},
            {"$set": {"state": "committing", "heartbeat": _now()}},
            return_document=pymongo.ReturnDocument.AFTER,
        )
        if entry is None:
            raise self._lost_error()
        self._state = "committing"
        try:
            _apply(entry, self._staged)
        except BaseException as error:
            self._abandon_commit()
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt, SystemExit: as they are (the entry is left for recovery all the same)
            raise CommitInterruptedError(
                f"copying the new labels of sample {self.sample_id} into fields {sorted(self.field_types)} of "
                f"dataset '{self.dataset.name}' failed part-way ({type(error).__name__}: {error}); the staged "
                "labels are kept and the next run, or samtrack_ops.fiftyone.recover_interrupted_writes(), "
                "finishes the copy"
            ) from error
        self._finish()
        self._state = "committed"

    def _abandon_commit(self):
        """Marks the committing entry as left for recovery (best effort: a stale heartbeat also does)."""
        self._heartbeat.stop()
        try:
            self._journal.update_one({"_id": self._token}, {"$set": {"abandoned": True}})
        except PyMongoError:
            pass

    def _finish(self):
        self._heartbeat.stop()
        self._staged.delete_many({"write": self._token})
        self._journal.delete_one({"_id": self._token})

    def __exit__(self, exc_type, exc, traceback):
        self._heartbeat.stop()
        if self._state == "staging":  # failed before committing: nothing reached the dataset
            self._staged.delete_many({"write": self._token})
            self._journal.delete_one({"_id": self._token, "state": "staging"})
        return False


def check_field_types(dataset, field_types):
    """Raises ValueError when a frame field of ``field_types`` exists in ``dataset`` with another type.

    Returns the fields that do not exist yet. Cheap: call it before any model is loaded.
    """
    dataset.reload()
    schema = dataset.get_frame_field_schema()
    missing = []
    for field, type_name in field_types.items():
        existing = schema.get(field)
        if existing is None:
            missing.append(field)
        elif getattr(existing, "document_type", None) is not LABEL_TYPES[type_name]:
            raise ValueError(
                f"frame field '{field}' of dataset '{dataset.name}' already holds a {type(existing).__name__}, not "
                f"{type_name}; choose another label field name or delete that field first"
            )
    return missing


def _declare_fields(dataset, field_types):
    """Adds missing frame fields; a field that exists with another type is an error."""
    for field in check_field_types(dataset, field_types):
        dataset.add_frame_field(field, fo.EmbeddedDocumentField, embedded_doc_type=LABEL_TYPES[field_types[field]])


def _apply(entry, staged):
    """Copies the staged frames of a journal entry into its dataset's frames (idempotent).

    Only frames with a staged document are touched; the others keep their labels.
    """
    frames = foo.get_db_conn()[entry["frame_collection"]]
    sample_id = ObjectId(entry["sample_id"])
    dataset_id = ObjectId(entry["dataset_id"])
    fields = list(entry["field_types"])
    batch = []
    for doc in staged.find({"write": entry["_id"]}).sort("frame_number", pymongo.ASCENDING):
        labels = doc["labels"]
        now = _now()
        update = {
            "$set": {**labels, "last_modified_at": now},
            "$setOnInsert": {"_dataset_id": dataset_id, "created_at": now},
        }
        cleared = {field: "" for field in fields if field not in labels}
        if cleared:
            update["$unset"] = cleared
        batch.append(
            pymongo.UpdateOne({"_sample_id": sample_id, "frame_number": doc["frame_number"]}, update, upsert=True)
        )
        if len(batch) >= entry["batch_size"]:
            frames.bulk_write(batch, ordered=False)
            batch = []
    if batch:
        frames.bulk_write(batch, ordered=False)
    # Frames this write did not stage (e.g. past the last decodable frame of a damaged video) were not
    # recomputed: they keep their labels.
    record = entry.get("record")
    if record is not None:
        records = foo.get_db_conn()[RECORDS_COLLECTION]
        records.replace_one({"_id": record["_id"]}, {**record, "completed_at": _now()}, upsert=True)


def _dataset_by_id(dataset_id):
    record = foo.get_db_conn().datasets.find_one({"_id": ObjectId(dataset_id)}, {"name": 1})
    return fo.load_dataset(record["name"])


def _writer_is_gone(entry, stale_after):
    if entry.get("abandoned"):
        return True
    if (_now() - entry["heartbeat"]).total_seconds() > stale_after:
        return True
    if entry.get("pid_namespace") != _pid_namespace():
        return False  # another machine, boot or container: its PID means nothing here
    try:
        process = psutil.Process(entry["pid"])
        return abs(process.create_time() - entry["process_started"]) > 1e-3
    except psutil.NoSuchProcess:
        return True


def interrupted_writes(dataset=None, stale_after=DEFAULT_STALE_AFTER):
    """Journal entries (dicts) whose writer is gone, optionally only those of ``dataset``."""
    journal, _ = _collections()
    query = {} if dataset is None else {"dataset_id": str(dataset._doc.id)}
    return [entry for entry in journal.find(query) if _writer_is_gone(entry, stale_after)]


def recover_interrupted_writes(dataset=None, stale_after=DEFAULT_STALE_AFTER):
    """Cleans up after writers that died: discards unfinished stagings, finishes interrupted commits.

    Args:
        dataset: only look at writes to this ``fo.Dataset`` (default: all datasets)
        stale_after: seconds without heartbeat after which a writer counts as dead (writers in this PID
            namespace whose process has exited count as dead at once)

    Returns:
        the journal entries handled, each a dict with ``sample_id``, ``field_types``, ``state`` (the state
        the writer died in: "staging" = discarded, "committing" = completed) and ``operation_id``
    """
    journal, staged = _collections()
    handled = []
    for entry in interrupted_writes(dataset, stale_after):
        if entry["state"] == "committing":
            _declare_fields(_dataset_by_id(entry["dataset_id"]), entry["field_types"])
            _apply(entry, staged)
            journal.delete_one({"_id": entry["_id"]})
        elif journal.find_one_and_delete(
            {"_id": entry["_id"], "state": "staging", "heartbeat": entry["heartbeat"]}
        ) is None:
            continue  # the writer moved on since it was judged gone (a late heartbeat or its commit): leave it
        staged.delete_many({"write": entry["_id"]})
        handled.append(entry)
    return handled
