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
import argparse
import asyncio
import hashlib
import json

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError


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
    # The same dataset (or source) always maps to the same workflow id: a re-run attaches, never archives twice.
    key = args.dataset_id or "py-" + hashlib.sha256(args.source.encode()).hexdigest()[:12]
    workflow_id = args.workflow_id or f"provenant-archive-{key}"
    try:
        # Running already: attach to it. Completed already: its result, never a second archive.
        handle = await client.start_workflow(
            "archiveDataset", request, id=workflow_id, task_queue=args.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(workflow_id)
    summary = await handle.result()
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
