"""All-or-nothing, batched writes of one video's frame labels.

A :class:`VideoWrite` streams frame label documents into a staging collection in batches (the target
frame fields are not touched while a video is being computed), then *commits*: it marks its journal entry
``committing`` and copies the staged documents into the dataset's frames in a few bulk writes. The journal
entry (collection ``samtrack_writes``) records the dataset, sample, fields and writer process:

- a run that fails raises inside the ``with`` block: the staged documents and the entry are deleted and the
  target fields keep their previous contents;
- a process killed while computing (SIGKILL skips every ``finally``) leaves an entry in state ``staging``
  whose writer is gone: :func:`recover_interrupted_writes` deletes it and its staged documents;
- a process killed while committing leaves an entry in state ``committing``, whose staged documents are
  complete: :func:`recover_interrupted_writes` finishes the commit (commits are idempotent).

``samtrack_ops.fiftyone.track_samples`` calls :func:`recover_interrupted_writes` before every run, so
leftovers are cleaned on the next run. Each entry also *locks* its ``(dataset, sample, field)`` triples
(a unique index), so two writers can never write the same field of the same video at once.

A writer is *gone* when it ran on this host and its process no longer exists, or when its heartbeat
(refreshed at most every ``HEARTBEAT_SECONDS`` while frames arrive) is older than ``stale_after`` seconds
(writers on other hosts).
"""

import datetime
import socket
import uuid

import psutil
import pymongo
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

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


def _this_process():
    process = psutil.Process()
    return {"host": socket.gethostname(), "pid": process.pid, "process_started": process.create_time()}


class VideoWrite:
    """Replaces some frame fields of one video sample all at once.

    Args:
        dataset: the ``fo.Dataset`` holding the sample
        sample_id: the video sample's ID
        field_types: ``{frame field name: "Detections" | "Segmentation"}``, every field this write replaces;
            on each frame, fields given to :meth:`add` are set and the others are cleared
        batch_size: staged frames per database round trip
        operation_id: optional delegated operation ID, recorded in the journal (for recovery)
        record: optional document (with an ``_id``) upserted into the ``samtrack_videos`` collection as
            part of the commit: what the fields now hold (see ``runs.py``)
        partial: only the frames given to :meth:`add` are replaced; other frames are not touched (a
            correction of some frames); by default frames not given lose the fields

    Use as a context manager; call :meth:`add` per frame then :meth:`commit`. Leaving the block without
    committing (an exception) discards the staged frames.
    """

    def __init__(self, dataset, sample_id, field_types, batch_size=256, operation_id=None, record=None,
                 partial=False):
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
        self._committed = False
        self._last_heartbeat = _now()

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
        return self

    def add(self, frame_number, documents):
        """Stages one frame: ``documents`` maps some of the fields to label documents (see ``storage.py``)."""
        extra = set(documents) - set(self.field_types)
        if extra:
            raise ValueError(f"fields {sorted(extra)} were not declared for this write")
        self._pending.append({"write": self._token, "frame_number": int(frame_number), "labels": documents})
        if len(self._pending) >= self.batch_size:
            self._flush()
        elif (_now() - self._last_heartbeat).total_seconds() > HEARTBEAT_SECONDS:
            self._beat()

    def _flush(self):
        if self._pending:
            self._staged.insert_many(self._pending, ordered=False)
            self._pending = []
        self._beat()

    def _beat(self):
        self._last_heartbeat = _now()
        self._journal.update_one({"_id": self._token}, {"$set": {"heartbeat": self._last_heartbeat}})

    def commit(self):
        """Copies every staged frame into the dataset and releases the lock."""
        self._flush()
        entry = self._journal.find_one_and_update(
            {"_id": self._token},
            {"$set": {"state": "committing", "heartbeat": _now()}},
            return_document=pymongo.ReturnDocument.AFTER,
        )
        _declare_fields(self.dataset, self.field_types)
        _apply(entry, self._staged)
        self._finish()
        self._committed = True

    def _finish(self):
        self._staged.delete_many({"write": self._token})
        self._journal.delete_one({"_id": self._token})

    def __exit__(self, exc_type, exc, traceback):
        if not self._committed:
            self._finish()
        return False


def _declare_fields(dataset, field_types):
    """Adds missing frame fields; a field that exists with another type is an error."""
    dataset.reload()
    schema = dataset.get_frame_field_schema()
    for field, type_name in field_types.items():
        label_type = LABEL_TYPES[type_name]
        existing = schema.get(field)
        if existing is None:
            dataset.add_frame_field(field, fo.EmbeddedDocumentField, embedded_doc_type=label_type)
        elif getattr(existing, "document_type", None) is not label_type:
            raise ValueError(
                f"frame field '{field}' of dataset '{dataset.name}' already holds {existing}, not "
                f"{type_name}; choose another label field name or delete that field first"
            )


def _apply(entry, staged):
    """Copies the staged frames of a journal entry into its dataset's frames (idempotent)."""
    frames = foo.get_db_conn()[entry["frame_collection"]]
    sample_id = ObjectId(entry["sample_id"])
    dataset_id = ObjectId(entry["dataset_id"])
    fields = list(entry["field_types"])
    written = []
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
        written.append(doc["frame_number"])
        if len(batch) >= entry["batch_size"]:
            frames.bulk_write(batch, ordered=False)
            batch = []
    if batch:
        frames.bulk_write(batch, ordered=False)
    if not entry.get("partial"):
        frames.update_many(
            {"_sample_id": sample_id, "frame_number": {"$nin": written}},
            {"$unset": {field: "" for field in fields}},
        )
    record = entry.get("record")
    if record is not None:
        records = foo.get_db_conn()[RECORDS_COLLECTION]
        records.replace_one({"_id": record["_id"]}, {**record, "completed_at": _now()}, upsert=True)


def _dataset_by_id(dataset_id):
    record = foo.get_db_conn().datasets.find_one({"_id": ObjectId(dataset_id)}, {"name": 1})
    return fo.load_dataset(record["name"])


def _writer_is_gone(entry, stale_after):
    age = (_now() - entry["heartbeat"]).total_seconds()
    if entry.get("host") != socket.gethostname():
        return age > stale_after
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
        stale_after: seconds without heartbeat after which a writer on another host counts as dead

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
        staged.delete_many({"write": entry["_id"]})
        journal.delete_one({"_id": entry["_id"]})
        handled.append(entry)
    return handled
