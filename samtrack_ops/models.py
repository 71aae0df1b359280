"""Checkpoint registry, local cache, verified downloads and safe loading.

Every model file the project can use is a :class:`CheckpointEntry` in :data:`CHECKPOINTS` (official URL,
file name, expected size and SHA-256 where published). Files live in the cache folder (env
``SAMTRACK_CACHE_DIR``, default ``~/.cache/samtrack``) or anywhere the caller points at explicitly.

Downloads stream into ``<file>.part`` (resumed with an HTTP ``Range`` request when a part is already
there), are checked for size and SHA-256, and only then renamed to ``<file>``: a half-written or
unverified file is never used. Entries without a published hash are trusted on first download: the hash
is recorded in ``<cache>/verified.json`` and every later use is checked against it.

Google Drive (DeAOT checkpoints): the URLs use Drive's direct ``usercontent`` endpoint with
``confirm=t``, which skips the "file too large to scan" page. When Drive still answers with an HTML page
(quota exceeded, changed API) the download stops with instructions to fetch the file by hand from the
entry's ``page`` and put it in the cache folder (or pass its path).

Run ``python -m samtrack_ops.models`` to print the registry with what is present locally.
"""

import dataclasses
import hashlib
import http.client
import json
import os
import pickle
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

CACHE_DIR_ENV = "SAMTRACK_CACHE_DIR"
UNSAFE_PICKLE_ENV = "SAMTRACK_ALLOW_UNSAFE_PICKLE"
TEXT_ENCODER_ENV = "SAMTRACK_TEXT_ENCODER"
DEFAULT_TEXT_ENCODER = "bert-base-uncased"
VERIFIED_HASHES_FILE = "verified.json"

# Option of the Python entry points (and CLI flag) that takes an existing file, per model family.
CHECKPOINT_OPTIONS = {
    "sam": ("sam_checkpoint", "--sam-checkpoint"),
    "deaot": ("tracker_checkpoint", "--tracker-checkpoint"),
    "groundingdino": ("detector_checkpoint", "--detector-checkpoint"),
}


class CheckpointError(RuntimeError):
    """A checkpoint file is unusable: corrupt, truncated, wrong hash, wrong architecture or unsafe."""


class MissingCheckpointError(CheckpointError):
    """A checkpoint is not on disk and could not be downloaded; the message says how to provide it."""


@dataclasses.dataclass(frozen=True)
class CheckpointEntry:
    """One downloadable model file.

    ``family`` is "sam", "deaot" or "groundingdino"; ``architecture`` names the model inside the family
    (SAM: "vit_b"/"vit_l"/"vit_h"; DeAOT: the official model name, e.g. "r50_deaotl"; Grounding-DINO:
    the config file name). ``size`` (bytes) and ``sha256`` are None where no official value is known.
    ``page`` is where a person downloads the file by hand.
    """

    name: str
    family: str
    architecture: str
    file_name: str
    url: str
    page: str
    size: int | None = None
    sha256: str | None = None
    stage: str | None = None

    @property
    def groundingdino_config(self):
        """Grounding-DINO config file name (``groundingdino/config/<name>``); None for other families."""
        return self.architecture if self.family == "groundingdino" else None


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM_PAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
_GDINO_RELEASE = "https://github.com/IDEA-Research/GroundingDINO/releases/download/"
_AOT_PAGE = "https://github.com/yoxu515/aot-benchmark/blob/main/MODEL_ZOO.md"


def _sam(variant, suffix, size, sha256):
    file_name = f"sam_{variant}_{suffix}.pth"
    return CheckpointEntry(f"sam_{variant}", "sam", variant, file_name, _SAM_URL + file_name, _SAM_PAGE,
                           size, sha256)


def _deaot(name, file_prefix, drive_id):
    """DeAOT main-training (PRE_YTB_DAV) weights from the AOT authors' Google Drive."""
    url = f"https://drive.usercontent.google.com/download?id={drive_id}&export=download&confirm=t"
    page = f"https://drive.google.com/file/d/{drive_id}/view (listed in {_AOT_PAGE})"
    return CheckpointEntry(name, "deaot", name, f"{file_prefix}_PRE_YTB_DAV.pth", url, page,
                           stage="PRE_YTB_DAV")


CHECKPOINTS = {
    entry.name: entry
    for entry in [
        _sam("vit_b", "01ec64", 375_042_383, "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
        _sam("vit_l", "0b3195", 1_249_524_607, "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
        _sam("vit_h", "4b8939", 2_564_550_879, "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
        _deaot("r50_deaotl", "R50_DeAOTL", "1QoChMkTVxdYZ_eBlZhK2acq9KMQZccPJ"),
        _deaot("deaott", "DeAOTT", "1ThWIZQS03cYWx1EKNN8MIMnJS5eRowzr"),
        _deaot("deaots", "DeAOTS", "1YwIAV5tBtn5spSFxKLBQBEQGwPHyQlHi"),
        _deaot("deaotb", "DeAOTB", "1BHxsonnvJXylqHlZ1zJHHc-ymKyq-CFf"),
        _deaot("deaotl", "DeAOTL", "18elNz_wi9JyVBcIUYKhRdL08MA-FqHD5"),
        _deaot("swinb_deaotl", "SwinB_DeAOTL", "1g4E-F0RPOx9Nd6J7tU9AE1TjsouL4oZq"),
        CheckpointEntry(
            "groundingdino_swint_ogc", "groundingdino", "GroundingDINO_SwinT_OGC.py",
            "groundingdino_swint_ogc.pth", _GDINO_RELEASE + "v0.1.0-alpha/groundingdino_swint_ogc.pth",
            "https://github.com/IDEA-Research/GroundingDINO/releases/tag/v0.1.0-alpha"
            " (mirror: https://huggingface.co/ShilongLiu/GroundingDINO)",
            693_997_677, "3b3ca2563c77c69f651d7bd133e97139c186df06231157a64c507099c52bc799"),
        CheckpointEntry(
            "groundingdino_swinb", "groundingdino", "GroundingDINO_SwinB_cfg.py",
            "groundingdino_swinb_cogcoor.pth", _GDINO_RELEASE + "v0.1.0-alpha2/groundingdino_swinb_cogcoor.pth",
            "https://github.com/IDEA-Research/GroundingDINO/releases/tag/v0.1.0-alpha2"
            " (mirror: https://huggingface.co/ShilongLiu/GroundingDINO)"),
    ]
}


def get_entry(name):
    """The registry entry called ``name``; ValueError listing the valid names otherwise."""
    if name not in CHECKPOINTS:
        raise ValueError(f"Unknown checkpoint {name!r}; expected one of {sorted(CHECKPOINTS)}")
    return CHECKPOINTS[name]


def cache_dir(path=None):
    """The checkpoint cache folder: ``path``, else env SAMTRACK_CACHE_DIR, else ~/.cache/samtrack."""
    chosen = path or os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "samtrack"
    return Path(chosen).expanduser()


# --- resolving -------------------------------------------------------------------------------------


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


def missing_checkpoint_message(entry, target, reason):
    """Instructions for providing ``entry`` by hand: which file, from where, to where, or which option."""
    option, flag = CHECKPOINT_OPTIONS[entry.family]
    size = f" ({entry.size:,} bytes)" if entry.size else ""
    return (
        f"Checkpoint {entry.name!r} is not available ({reason}).\n"
        f"  file:      {entry.file_name}{size}\n"
        f"  download:  {entry.url}\n"
        f"  by hand:   {entry.page}\n"
        f"  put it at: {target}  (the cache folder; env {CACHE_DIR_ENV} moves it)\n"
        f"  or point at an existing copy with {option}=PATH (CLI: {flag} PATH)."
    )


# --- verification ------------------------------------------------------------------------------------


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


def _record_verified(path, sha256):
    records = _read_verified(path.parent)
    stat = path.stat()
    records[path.name] = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    temporary = path.parent / (VERIFIED_HASHES_FILE + ".tmp")
    temporary.write_text(json.dumps(records, indent=1, sort_keys=True))
    os.replace(temporary, path.parent / VERIFIED_HASHES_FILE)


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
    _record_verified(path, actual)


# --- downloading -------------------------------------------------------------------------------------


def download_checkpoint(entry, cache=None, progress=None, timeout=60, chunk_size=1 << 20):
    """Downloads ``entry`` into the cache folder and returns the verified file's path.

    ``progress(done_bytes, total_bytes_or_None)`` is called as data arrives (default: a tqdm bar on
    stderr). Data goes to ``<file>.part`` first; an existing part is resumed with a Range request. On a
    size or hash mismatch the part is deleted and CheckpointError raised; on an interrupted transfer the
    part is kept for the next attempt.
    """
    folder = cache_dir(cache)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / entry.file_name
    part = folder / (entry.file_name + ".part")
    progress = progress or _tqdm_progress(entry)
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
    _record_verified(target, actual_sha256)
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


# --- loading -----------------------------------------------------------------------------------------


def resolve_device(device=None):
    """``device`` as a torch.device; None picks cuda when available, else cpu."""
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def load_checkpoint(path, allow_unsafe_pickle=False, map_location="cpu"):
    """Loads a torch checkpoint with ``weights_only=True`` (tensors and plain containers only).

    A file that needs arbitrary pickled objects is refused with CheckpointError unless
    ``allow_unsafe_pickle`` (or env SAMTRACK_ALLOW_UNSAFE_PICKLE=1) opts in: only for files you trust,
    since unpickling can run code. Truncated or corrupt files raise CheckpointError naming the file.
    """
    import torch

    path = Path(path)
    unsafe = allow_unsafe_pickle or os.environ.get(UNSAFE_PICKLE_ENV) == "1"
    try:
        return torch.load(path, map_location=map_location, weights_only=not unsafe)
    except FileNotFoundError:
        raise MissingCheckpointError(f"Checkpoint file {path} does not exist.") from None
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if refused:
            raise CheckpointError(
                f"{path} contains pickled Python objects besides tensors (e.g. {refused.group(1)}), which "
                f"weights-only loading refuses. If you trust this file, load it with allow_unsafe_pickle=True "
                f"or set {UNSAFE_PICKLE_ENV}=1.") from error
        raise _corrupt(path, error) from error
    except (RuntimeError, EOFError, ValueError, LookupError, OSError) as error:
        raise _corrupt(path, error) from error


def _corrupt(path, error):
    detail = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    return CheckpointError(
        f"{path} is not a readable PyTorch checkpoint (truncated or corrupt: {detail}); "
        f"expected a file written by torch.save. Delete it and download it again.")


def check_state_dict(state_dict, expected_shapes, path, model_name, ignore_prefixes=(), examples=5):
    """Raises CheckpointError unless ``state_dict`` has exactly the keys and shapes of ``expected_shapes``.

    ``expected_shapes`` maps key -> shape (e.g. ``{k: v.shape for k, v in model.state_dict().items()}``).
    Keys starting with one of ``ignore_prefixes`` are not compared. The message names the file, the
    expected model and up to ``examples`` missing, unexpected and mismatching keys.
    """
    def kept(keys):
        return {key for key in keys if not key.startswith(tuple(ignore_prefixes))}

    expected, found = kept(expected_shapes), kept(state_dict)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    mismatched = [
        f"{key}: file {tuple(state_dict[key].shape)} vs model {tuple(expected_shapes[key])}"
        for key in sorted(expected & found)
        if tuple(state_dict[key].shape) != tuple(expected_shapes[key])
    ]
    if not (missing or unexpected or mismatched):
        return
    problems = [
        f"{len(items)} {what} (e.g. {', '.join(items[:examples])})"
        for what, items in [("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", mismatched)]
        if items
    ]
    hint = " None of the expected keys is present: this is a different kind of model." if not expected & found else ""
    raise CheckpointError(
        f"{path} does not hold {model_name} weights: {'; '.join(problems)}.{hint} "
        f"Check that the checkpoint matches the chosen model.")


# --- listing and text encoder ------------------------------------------------------------------------


def list_checkpoints(cache=None):
    """One dict per registry entry: name, family, architecture, file_name, present, path, size, sha256, url."""
    folder = cache_dir(cache)
    return [
        {
            "name": entry.name,
            "family": entry.family,
            "architecture": entry.architecture,
            "file_name": entry.file_name,
            "present": (folder / entry.file_name).is_file(),
            "path": str(folder / entry.file_name),
            "size": entry.size,
            "sha256": entry.sha256,
            "url": entry.url,
        }
        for entry in CHECKPOINTS.values()
    ]


_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_text_encoder(path=None):
    """Grounding-DINO's BERT: a local folder (``path``, else env SAMTRACK_TEXT_ENCODER) or "bert-base-uncased".

    A local folder must hold config.json, a tokenizer vocabulary (vocab.txt or tokenizer.json) and
    weights (model.safetensors or pytorch_model.bin), as written by ``save_pretrained``. The default
    name is fetched by Hugging Face on first use (needs network or a filled HF cache).
    """
    chosen = path or os.environ.get(TEXT_ENCODER_ENV)
    if not chosen:
        return DEFAULT_TEXT_ENCODER
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"Text encoder folder {folder} does not exist. Give a folder holding a saved BERT "
            f"(save_pretrained of bert-base-uncased: config.json, vocab.txt, model.safetensors) via "
            f"text_encoder_path or env {TEXT_ENCODER_ENV}.")
    lacking = [
        " or ".join(names)
        for names in [("config.json",), _TOKENIZER_FILES, _WEIGHT_FILES]
        if not any((folder / name).is_file() for name in names)
    ]
    if lacking:
        raise CheckpointError(
            f"Text encoder folder {folder} lacks {', '.join(lacking)}. Save a BERT model and its tokenizer "
            f"there with save_pretrained (e.g. of bert-base-uncased).")
    return str(folder)


def _print_registry():
    print(f"cache folder: {cache_dir()}  (env {CACHE_DIR_ENV})")
    for row in list_checkpoints():
        state = "present" if row["present"] else "missing"
        print(f"{row['name']:24} {state:8} {row['path']}\n{'':24} {row['url']}")


if __name__ == "__main__":
    _print_registry()
