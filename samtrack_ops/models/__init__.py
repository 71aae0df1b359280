"""Checkpoints: registry, cache, verified downloads, safe loading and the text encoder.

One module per concept; every public name is importable from here:

- ``registry``: :data:`CHECKPOINTS` (one :class:`CheckpointEntry` per model file), the cache folder
  (env ``SAMTRACK_CACHE_DIR``, default ``~/.cache/samtrack``) and :func:`list_checkpoints`;
- ``verify``: size and SHA-256 checks, hashes recorded on first use in ``<cache>/verified.json``;
- ``download``: resumable downloads into ``<file>.part``, renamed to ``<file>`` only once verified;
- ``resolve``: :func:`resolve_checkpoint` (explicit path, verified cached file, or download);
- ``loading``: :func:`load_checkpoint` (``weights_only``), :func:`check_state_dict`, :func:`resolve_device`;
- ``text_encoder``: :func:`resolve_text_encoder` (Grounding-DINO's BERT);
- ``errors``: :class:`CheckpointError`, :class:`MissingCheckpointError`.

Run ``python -m samtrack_ops.models`` to print the registry with what is present locally.
"""

from samtrack_ops.models.download import download_checkpoint
from samtrack_ops.models.errors import CheckpointError, MissingCheckpointError
from samtrack_ops.models.loading import UNSAFE_PICKLE_ENV, check_state_dict, load_checkpoint, resolve_device
from samtrack_ops.models.registry import (CACHE_DIR_ENV, CHECKPOINT_OPTIONS, CHECKPOINTS, DETECTOR_MODELS,
                                          SAM_MODELS, TRACKER_MODELS, CheckpointEntry, cache_dir, get_entry, list_checkpoints, missing_checkpoint_message)
from samtrack_ops.models.resolve import resolve_checkpoint
from samtrack_ops.models.text_encoder import DEFAULT_TEXT_ENCODER, TEXT_ENCODER_ENV, resolve_text_encoder
from samtrack_ops.models.verify import VERIFIED_HASHES_FILE, sha256_of, verify_file

__all__ = [
    "CACHE_DIR_ENV", "CHECKPOINT_OPTIONS", "CHECKPOINTS", "CheckpointEntry", "CheckpointError", "DETECTOR_MODELS",
    "SAM_MODELS", "TRACKER_MODELS",
    "DEFAULT_TEXT_ENCODER", "MissingCheckpointError", "TEXT_ENCODER_ENV", "UNSAFE_PICKLE_ENV",
    "VERIFIED_HASHES_FILE", "cache_dir", "check_state_dict", "download_checkpoint", "get_entry",
    "list_checkpoints", "load_checkpoint", "missing_checkpoint_message", "resolve_checkpoint",
    "resolve_device", "resolve_text_encoder", "sha256_of", "verify_file",
]
