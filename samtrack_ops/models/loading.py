"""Loading checkpoints safely (``weights_only``) and checking their keys and shapes against a model."""

import os
import pickle
import re
from pathlib import Path

from samtrack_ops.models.errors import CheckpointError, MissingCheckpointError

UNSAFE_PICKLE_ENV = "SAMTRACK_ALLOW_UNSAFE_PICKLE"


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
        refused = _refused_global(error)
        if refused:
            raise CheckpointError(
                f"{path} holds pickled Python code or objects besides tensors (e.g. {refused}), which safe "
                f"(weights-only) loading refused; nothing in it was run. The file is not damaged: downloading "
                f"it again will not help. If you trust its source, load it with allow_unsafe_pickle=True or "
                f"set {UNSAFE_PICKLE_ENV}=1 (unpickling can run arbitrary code).") from error
        raise _corrupt(path, error) from error
    except (RuntimeError, EOFError, ValueError, LookupError, OSError) as error:
        raise _corrupt(path, error) from error


# torch's weights-only unpickler names a refused global as "Unsupported global: GLOBAL x.y" (not allowed by
# default) or "unsupported GLOBAL x.y whose module x is blocked" (os, subprocess, ...: code execution).
_REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)")


def _refused_global(error):
    """The dotted name of the global that safe loading refused, from torch's message; None otherwise."""
    found = _REFUSED_GLOBAL.search(str(error))
    return found.group(1) if found else None


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
