"""Archive a dataset with Provenant from Python, through the Temporal client.

A Provenant worker (the `provenant` CLI's worker, or your own TypeScript worker with the
ProvenantPlugin) must be polling the task queue. The request names only the dataset and its
source; the worker fills in providers, copies, shard size, placement policy and steward from its
own config. Prints the archive summary as JSON; keep its `manifestCid`: it restores the dataset.

    pip install temporalio
    python archive_dataset.py --source /abs/path/on/the/worker/host --dataset-id my-model-v3 \
        --meta run=abc123 --address localhost:7233 --task-queue provenant

A post-training hook in your own Python workflow can do the same with
`workflow.execute_child_workflow("archiveDataset", request, task_queue="provenant")`.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode


async def run_of(client: Client, workflow_id: str, run_id: str | None = None) -> tuple[str, str] | None:
    """(run id, status name) of the workflow's latest run (or of `run_id`), or None if there is none."""
    try:
        d = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return d.run_id, d.status.name if d.status else "UNKNOWN"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="absolute path of a directory on the worker's host")
    ap.add_argument("--dataset-id", help="default: derived from the source")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="recorded in the manifest")
    ap.add_argument("--copies", type=int, help="default: the worker's replication.copies")
    ap.add_argument("--no-steward", action="store_true", help="start no steward for this dataset")
    ap.add_argument("--address", default="localhost:7233")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--task-queue", default="provenant")
    ap.add_argument("--workflow-id", help="default: provenant-archive-<dataset id>")
    args = ap.parse_args()

    request: dict = {"source": {"kind": "local", "path": args.source}, "meta": dict(m.split("=", 1) for m in args.meta)}
    if args.dataset_id:
        request["datasetId"] = args.dataset_id
    if args.copies:
        request["copies"] = args.copies
    if args.no_steward:
        request["steward"] = False

    client = await Client.connect(args.address, namespace=args.namespace)
    # The same dataset (or source) always maps to the same workflow id: a re-run attaches to a running or
    # completed archive, never archives twice; after a failed, cancelled, terminated or timed-out one it archives anew.
    key = args.dataset_id or "py-" + hashlib.sha256(args.source.encode()).hexdigest()[:12]
    workflow_id = args.workflow_id or f"provenant-archive-{key}"
    previous = await run_of(client, workflow_id)
    try:
        # The server decides; `previous` only tells which case it was.
        handle = await client.start_workflow(
            "archiveDataset", request, id=workflow_id, task_queue=args.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        attached = f"attached to a running archive of this dataset: {workflow_id}"
        if previous is None:
            print(f"archiving {args.source} as {workflow_id}", file=sys.stderr)
        elif handle.result_run_id == previous[0]:
            print(attached, file=sys.stderr)
        else:
            # The run seen before may have been running then and closed since: say how it ended.
            ended = await run_of(client, workflow_id, previous[0]) or previous
            how = {"CANCELED": "cancelled", "TIMED_OUT": "timed-out"}.get(ended[1], ended[1].lower())
            print(
                attached if ended[1] == "CONTINUED_AS_NEW"
                else f"archiving {args.source} as {workflow_id}: started a new archive after a {how} one",
                file=sys.stderr,
            )
    except WorkflowAlreadyStartedError:
        # Refused only when the last run completed: its result is the archive.
        print(f"dataset already archived: returned a completed archive's result ({workflow_id})", file=sys.stderr)
        handle = client.get_workflow_handle(workflow_id)
    summary = await handle.result()
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
    # The client's Rust runtime keeps threads that can crash CPython's finalisation (SIGSEGV or "PyGILState_Release"
    # after the work is done; temporalio/sdk-python issue 300). The result is printed: flush it and skip the teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
