"""Recovery after dead workers: staged writes discarded (or interrupted commits finished), and their
delegated operations marked FAILED and queued again. Run at the start and end of every ``track_samples``
call, so whenever any live worker starts or finishes a video. A worker's heartbeat runs in the background
while it lives; workers are judged dead after ``stale_after`` seconds without one (at once when they ran in
this PID namespace and their process is gone).
"""

from bson import ObjectId

from samtrack_ops.fiftyone import staging


def recover(dataset=None, stale_after=staging.DEFAULT_STALE_AFTER):
    """Makes videos whose worker died re-runnable: discards their staged writes (or finishes interrupted
    commits) and marks their delegated operations FAILED and queues them again.

    Returns:
        ``{"writes": [journal entries handled], "requeued": [new operation IDs]}``
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

    service = DelegatedOperationService()
    requeued = []
    handled = staging.recover_interrupted_writes(dataset, stale_after=stale_after)
    for entry in handled:
        if entry.get("operation_id") is None:
            continue
        failed = service.set_failed(
            doc_id=ObjectId(entry["operation_id"]),
            result=ExecutionResult(error="samtrack: the worker died mid-video; the video was queued again"),
            required_state=ExecutionRunState.RUNNING,
        )
        if failed is not None:
            requeued.append(str(service.rerun_operation(failed.id).id))
    return {"writes": handled, "requeued": requeued}
