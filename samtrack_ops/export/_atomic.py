"""Atomic export folders and path checks shared by the exporters.

An export is assembled in a hidden sibling folder ``.<name>.partial-<random>`` next to the chosen
directory and renamed onto it only when every file has been written, so a failed or interrupted export
never leaves a folder at the chosen path that looks complete (the hidden partial folder is removed on
failure). Every file is written through :func:`inside`, which refuses names that would leave the folder.
"""

import contextlib
import os
import pathlib
import shutil
import tempfile


class ExportError(ValueError):
    """An export or import cannot be done as asked; the message says what to change."""


def safe_name(name, what="name"):
    """Returns ``name`` if it is usable as one path component, else raises :class:`ExportError`."""
    text = str(name)
    if text in ("", ".", "..") or any(c in text for c in "/\\\0"):
        raise ExportError(
            f"{what} {text!r} cannot be used as a file or folder name (empty, '.', '..', or contains a "
            "path separator): rename it"
        )
    return text


def inside(root, *parts):
    """Returns ``root / parts...`` after checking that it stays inside ``root``.

    Raises:
        ExportError: a part is absolute or climbs out of ``root`` (``..``, links)
    """
    root = pathlib.Path(root).resolve()
    path = root.joinpath(*map(str, parts)).resolve()
    if path != root and root not in path.parents:
        raise ExportError(f"{'/'.join(map(str, parts))!r} would be written outside {root}: refusing")
    return path


@contextlib.contextmanager
def atomic_directory(export_dir, overwrite=False):
    """Yields an empty staging folder that becomes ``export_dir`` when the block succeeds.

    Args:
        export_dir: the folder to create
        overwrite: replace an existing ``export_dir`` (only once the new export is complete)

    Raises:
        ExportError: ``export_dir`` exists and ``overwrite`` is False, or it is a file, or a folder above
            it is a file, or the file system refuses a write (read-only, full, no permission)
    """
    target = pathlib.Path(export_dir).expanduser().resolve()
    if target.exists() and not (overwrite and target.is_dir()):
        raise ExportError(
            f"{target} already exists: choose another directory or pass overwrite=True to replace it"
        )
    blocking = next((folder for folder in target.parents if folder.exists() and not folder.is_dir()), None)
    if blocking is not None:
        raise ExportError(f"cannot export to {target}: {blocking} is a file, not a folder; choose another directory")
    with _refused_writes(target, "creating the export folder in"):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        with _refused_writes(target, "writing the export into"):
            staging.chmod(0o777 & ~_umask())
            yield staging
            _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _refused_writes(target, step):
    """Turns an OSError of the file system into an :class:`ExportError` naming the export, not the internal
    hidden folder."""
    try:
        yield
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ExportError(
            f"cannot export to {target}: {step} {target.parent} failed ({reason}); choose a directory on a "
            "writable disk with enough free space"
        ) from error


def _umask():
    """The process umask (mkdtemp creates 0o700 folders; exports get the usual permissions)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(staging, target):
    """Renames ``staging`` onto ``target``, moving an old ``target`` aside first and deleting it after."""
    if not target.exists():
        staging.rename(target)
        return
    old = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
