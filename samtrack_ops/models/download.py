"""Downloading checkpoints into the cache: resumable, verified, never leaving a half-written file in use.

Downloads stream into ``<file>.part`` (resumed with an HTTP ``Range`` request when a part is already
there), are checked for size and SHA-256, and only then renamed to ``<file>``. Processes sharing a cache
download one file one at a time (a lock on ``<file>.lock``): a process that waited for the lock finds the
finished file and uses it.

Google Drive (DeAOT checkpoints): the URLs use Drive's direct ``usercontent`` endpoint with
``confirm=t``, which skips the "file too large to scan" page. When Drive still answers with an HTML page
(quota exceeded, changed API) the download stops with instructions to fetch the file by hand from the
entry's ``page`` and put it in the cache folder (or pass its path).
"""

import http.client
import os
import sys
import urllib.error
import urllib.request

from samtrack_ops.models.errors import CheckpointError
from samtrack_ops.models.locking import file_lock
from samtrack_ops.models.registry import CACHE_DIR_ENV, cache_dir
from samtrack_ops.models.verify import record_verified, sha256_of, verify_file


def download_checkpoint(entry, cache=None, progress=None, timeout=60, chunk_size=1 << 20):
    """Downloads ``entry`` into the cache folder and returns the verified file's path.

    ``progress(done_bytes, total_bytes_or_None)`` is called as data arrives (default: a tqdm bar on
    stderr). Data goes to ``<file>.part`` first; an existing part is resumed with a Range request. On a
    size or hash mismatch the part is deleted and CheckpointError raised; on an interrupted transfer the
    part is kept for the next attempt. Another process downloading the same file at the same time is
    waited for, and its verified file returned.
    """
    folder = cache_dir(cache)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / entry.file_name
    with file_lock(folder / (entry.file_name + ".lock")):
        if target.exists():  # another process finished it while this one waited for the lock
            verify_file(entry, target)
            return target
        return _download_unlocked(entry, target, progress or _tqdm_progress(entry), timeout, chunk_size)


def _download_unlocked(entry, target, progress, timeout, chunk_size):
    part = target.with_name(target.name + ".part")
    _fetch_into(entry, part, progress, timeout, chunk_size)
    actual_size = part.stat().st_size
    if entry.size is not None and actual_size != entry.size:
        part.unlink()
        raise CheckpointError(
            f"Downloaded {actual_size:,} bytes for {entry.file_name} from {entry.url}, expected {entry.size:,}; "
            f"nothing was kept. Try again, or download it by hand: {entry.page}")
    actual_sha256 = sha256_of(part)
    if entry.sha256 is not None and actual_sha256 != entry.sha256:
        part.unlink()
        raise CheckpointError(
            f"Downloaded {entry.file_name} from {entry.url} has SHA-256 {actual_sha256}, expected "
            f"{entry.sha256}; nothing was kept. Try again, or download it by hand: {entry.page}")
    os.replace(part, target)
    record_verified(target, actual_sha256)
    return target


def _fetch_into(entry, part, progress, timeout, chunk_size):
    """Streams the entry's URL into ``part``, resuming what is there; checks the byte count announced."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "samtrack"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(entry.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise CheckpointError(f"Downloading {entry.file_name} from {entry.url} failed: HTTP {error.code}") from error
        return  # 416: the part already holds the whole file
    with response:
        _refuse_html(entry, response)
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start again
        elif offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise CheckpointError(
                f"{entry.url} answered the resume request for {part} with the wrong byte range "
                f"({response.headers.get('Content-Range')!r}); delete {part} and try again.")
        announced = response.headers.get("Content-Length")
        total = offset + int(announced) if announced is not None else entry.size
        done = _copy_stream(response, part, offset, total, progress, chunk_size, entry)
    if announced is not None and done != total:
        raise CheckpointError(
            f"Download of {entry.file_name} from {entry.url} stopped at {done:,} of {total:,} bytes; "
            f"the partial data is kept in {part} and the next attempt resumes it.")


def _copy_stream(response, part, offset, total, progress, chunk_size, entry):
    done = offset
    progress(done, total)
    with open(part, "r+b" if offset else "wb") as stream:
        stream.seek(offset)
        stream.truncate()
        try:
            while chunk := response.read(chunk_size):
                stream.write(chunk)
                done += len(chunk)
                progress(done, total)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as error:
            raise CheckpointError(
                f"Download of {entry.file_name} from {entry.url} broke off at {done:,} of "
                f"{total if total is not None else '?'} bytes ({error!r}); the partial data is kept in {part} "
                f"and the next attempt resumes it.") from error
    return done


def _refuse_html(entry, response):
    if response.headers.get_content_type() == "text/html":
        raise CheckpointError(
            f"{entry.url} answered with a web page instead of {entry.file_name} (Google Drive does this when "
            f"its download quota is exceeded or the link changed). Download the file by hand from "
            f"{entry.page} and put it in the cache folder {cache_dir()} (env {CACHE_DIR_ENV}) or pass its path.")


def _tqdm_progress(entry):
    """A progress callback drawing a tqdm bar, created on the first call (once data flows)."""
    from tqdm import tqdm

    bars = []

    def update(done, total):
        if not bars:
            bars.append(tqdm(desc=entry.file_name, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr))
        bar = bars[0]
        bar.total, bar.n = total, done
        bar.refresh()
        if total is not None and done >= total:
            bar.close()

    return update
