"""Finding a usable file for a checkpoint: an explicit path, the verified cached file, or a fresh download."""

import urllib.error
from pathlib import Path

from samtrack_ops.models.download import download_checkpoint
from samtrack_ops.models.errors import CheckpointError, MissingCheckpointError
from samtrack_ops.models.registry import (CHECKPOINT_OPTIONS, CheckpointEntry, cache_dir, get_entry,
                                          missing_checkpoint_message)
from samtrack_ops.models.verify import verify_file


def resolve_checkpoint(name, path=None, cache=None, download=True, progress=None):
    """Path of a usable file for checkpoint ``name`` (a registry name or a CheckpointEntry).

    ``path`` (an explicit file) is used as is: it must exist; no hash lookup. Otherwise the cached file is
    verified and returned, or downloaded into the cache when ``download`` is true. Raises
    MissingCheckpointError (with instructions) when the file is absent and cannot be downloaded, and
    CheckpointError when a file fails verification.
    """
    entry = name if isinstance(name, CheckpointEntry) else get_entry(name)
    if path is not None:
        return _existing_file(entry, Path(path).expanduser())
    target = cache_dir(cache) / entry.file_name
    if target.exists():
        verify_file(entry, target)
        return target
    if not download:
        raise MissingCheckpointError(missing_checkpoint_message(entry, target, "downloads are switched off"))
    try:
        return download_checkpoint(entry, cache=target.parent, progress=progress)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise MissingCheckpointError(missing_checkpoint_message(entry, target, f"download failed: {error}")) from error


def _existing_file(entry, path):
    if not path.is_file():
        option, flag = CHECKPOINT_OPTIONS[entry.family]
        raise MissingCheckpointError(
            f"{option} / {flag} points at {path}, which is not a file. Give the path of the downloaded "
            f"{entry.file_name} ({entry.name}) or leave the option out to use the cache.")
    return path
