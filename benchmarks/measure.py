"""Helpers shared by the benchmark scripts: peak memory, device choice and timing sync, throwaway databases.

The scripts import it as ``measure`` (their own folder is first on ``sys.path`` when run as a script).
"""

import os
import resource
import uuid


def peak_rss_mib():
    """Peak resident memory of this process image in MiB.

    Linux's VmHWM starts afresh at exec, so a fresh child process measures only itself; ru_maxrss (the
    fallback elsewhere) would also count pages the forked child held before exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resolve_device(device=None):
    """The torch.device every part of a benchmark uses: ``device``, or cuda when available, else cpu."""
    from samtrack_ops.models import resolve_device as library_resolve_device

    return library_resolve_device(device)


def synchronize(device):
    """Waits for queued CUDA work on ``device`` so that wall times include it (no-op on the CPU)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def use_throwaway_database():
    """Points FiftyOne at a fresh database unless FIFTYONE_DATABASE_NAME is set; call before importing fiftyone.

    Returns ``drop()``, which drops that database again, and only a database this call named.
    """
    own = "FIFTYONE_DATABASE_NAME" not in os.environ
    os.environ.setdefault("FIFTYONE_DATABASE_NAME", f"samtrack-bench-{uuid.uuid4().hex[:8]}")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

    def drop():
        if own:
            import fiftyone.core.odm.database as database

            database.drop_database()

    return drop
