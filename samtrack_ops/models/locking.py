"""An exclusive lock between processes on one machine: ``fcntl.flock`` on a lock file."""

import contextlib
import fcntl


@contextlib.contextmanager
def file_lock(path):
    """Holds an exclusive lock on ``path`` (created if missing) for the ``with`` block; waits for it.

    The lock file stays in place (deleting it would let a waiting process lock a file nobody else
    sees); the kernel releases the lock when the holder exits, even when it is killed.
    """
    with open(path, "a+b") as stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)
