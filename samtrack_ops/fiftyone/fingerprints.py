"""Fingerprints of runs: which checkpoint files a run needs (and their SHA-256), and one hash of everything
that determines a video's labels (mode, options, prompts, checkpoint hashes; not the device).
"""

import hashlib
import json

import numpy as np

from samtrack_ops import models
from samtrack_ops.fiftyone.prompts import prompt_to_json
from samtrack_ops.prompts import Text

PREBUILT_MODELS = ("segmentor", "tracker", "detector")
NOT_IN_FINGERPRINT = ("device",) + PREBUILT_MODELS
CHECKPOINT_ROLES = {  # role: (checkpoint option, registry-name option, default registry name)
    "sam": ("sam_checkpoint", "sam_model", "vit_b"),
    "tracker": ("tracker_checkpoint", "tracker_model", "r50_deaotl"),
    "detector": ("detector_checkpoint", "detector_model", "groundingdino_swint_ogc"),
}
ROLE_OF_PREBUILT = {"sam": "segmentor", "tracker": "tracker", "detector": "detector"}


def _has_text(prompts):
    if isinstance(prompts, dict):
        lists = list(prompts.values())
    elif isinstance(prompts, (list, tuple)):
        lists = [prompts]
    else:
        lists = []
    return any(isinstance(prompt, Text) for prompt_list in lists for prompt in prompt_list)


def _needed_roles(prompts, options):
    """SAM and DeAOT always; Grounding-DINO for text prompts or ``auto_text``."""
    return ["sam", "tracker"] + (["detector"] if options.get("auto_text") or _has_text(prompts) else [])


def _registry_name(role, options):
    _, name_option, default = CHECKPOINT_ROLES[role]
    name = options.get(name_option) or default
    return f"sam_{name}" if role == "sam" else name


_hash_cache = {}


def _file_sha256(path):
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = models.sha256_of(path)
    return _hash_cache[key]


def resolve_models(prompts, options, download=True):
    """Finds the checkpoint files a run needs, before any video is touched.

    Returns:
        ``(options with checkpoint paths filled in, {role: {"name", "checkpoint", "sha256"}})``; a role
        given as a prebuilt object is recorded by its class name. Raises ``MissingCheckpointError``.
    """
    resolved = dict(options)
    record = {}
    for role in _needed_roles(prompts, options):
        checkpoint_option = CHECKPOINT_ROLES[role][0]
        prebuilt = options.get(ROLE_OF_PREBUILT[role])
        if prebuilt is not None:
            record[role] = {"name": f"prebuilt {type(prebuilt).__name__}", "checkpoint": None, "sha256": None}
            continue
        name = _registry_name(role, options)
        path = models.resolve_checkpoint(name, path=options.get(checkpoint_option), download=download)
        resolved[checkpoint_option] = str(path)
        record[role] = {"name": name, "checkpoint": str(path), "sha256": _file_sha256(path)}
    return resolved, record


def json_safe(options):
    safe = {}
    for key, value in options.items():
        if key in PREBUILT_MODELS:
            value = None if value is None else f"prebuilt {type(value).__name__}"
        elif isinstance(value, np.generic):
            value = value.item()
        elif not isinstance(value, (str, int, float, bool, type(None), list, dict)):
            value = str(value)
        safe[key] = value
    return safe


def fingerprint(mode, options, model_record, prompts, store_seg):
    """Hash of everything that determines a video's labels (not the device)."""
    content = {
        "mode": mode,
        "options": {k: v for k, v in json_safe(options).items() if k not in NOT_IN_FINGERPRINT and "checkpoint" not in k},
        "models": {role: (m["name"], m["sha256"]) for role, m in model_record.items()},
        "prompts": [prompt_to_json(p) for p in prompts],
        "store_seg": bool(store_seg),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
