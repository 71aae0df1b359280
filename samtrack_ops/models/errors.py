"""The two checkpoint exceptions every part of ``samtrack_ops.models`` raises."""


class CheckpointError(RuntimeError):
    """A checkpoint file is unusable: corrupt, truncated, wrong hash, wrong architecture or unsafe."""


class MissingCheckpointError(CheckpointError):
    """A checkpoint is not on disk and could not be downloaded; the message says how to provide it."""
