"""Checking checkpoint files: size and SHA-256 against the registry, or against the hash recorded on first use.

Entries without a published hash are trusted on first download: the hash is recorded in
``<cache>/verified.json`` and every later use is checked against it. Processes sharing a cache update that
file one at a time (a lock on ``verified.json.lock``) and replace it atomically, so readers always see a
whole file and no process's record is lost.
"""

import hashlib
import json
import os
import tempfile

from samtrack_ops.models.errors import CheckpointError
from samtrack_ops.models.locking import file_lock

VERIFIED_HASHES_FILE = "verified.json"


def sha256_of(path, chunk_size=1 << 22):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _read_verified(cache):
    record = cache / VERIFIED_HASHES_FILE
    return json.loads(record.read_text()) if record.exists() else {}


def record_verified(path, sha256):
    """Records ``path``'s hash, size and modification time in ``verified.json`` beside it."""
    stat = path.stat()
    with file_lock(path.parent / (VERIFIED_HASHES_FILE + ".lock")):
        records = _read_verified(path.parent)
        records[path.name] = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        descriptor, temporary = tempfile.mkstemp(prefix=VERIFIED_HASHES_FILE + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(descriptor, "w") as stream:
                json.dump(records, stream, indent=1, sort_keys=True)
            os.replace(temporary, path.parent / VERIFIED_HASHES_FILE)
        except BaseException:
            os.unlink(temporary)
            raise


def verify_file(entry, path):
    """Checks ``path`` against the entry's size and SHA-256 (or the hash recorded on first use).

    A file already verified (same size and modification time as recorded) is not hashed again; an
    unknown-hash file seen for the first time has its hash recorded in ``verified.json``.
    """
    stat = path.stat()
    if entry.size is not None and stat.st_size != entry.size:
        raise CheckpointError(
            f"{path} has {stat.st_size:,} bytes but {entry.name} ({entry.file_name}) has {entry.size:,}: "
            f"the file is truncated or a different file. Delete it to download it again.")
    record = _read_verified(path.parent).get(path.name)
    expected = entry.sha256 or (record or {}).get("sha256")
    unchanged = record is not None and (record["size"], record["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    if unchanged and record["sha256"] == expected:
        return
    actual = sha256_of(path)
    if expected is not None and actual != expected:
        raise CheckpointError(
            f"{path} has SHA-256 {actual} but {entry.name} ({entry.file_name}) should have {expected}: "
            f"the file is corrupt or a different file. Delete it to download it again.")
    record_verified(path, actual)
