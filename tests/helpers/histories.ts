/**
 * The histories of an archive and of every replication child it started (each run of a child
 * that continued as new, too), read from the server, and the figures of the bounds on them.
 */
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;

export interface WorkflowHistory {
  workflowId: string;
  runId: string;
  events: number;
  /** Largest payload (input, result, signal, marker…) in bytes. */
  largestPayload: number;
  history: History;
}

/** The largest payload in a history, in bytes. */
export function largestPayloadOf(h: History): number {
  let max = 0;
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    if (o.data instanceof Uint8Array && 'metadata' in o) max = Math.max(max, o.data.length);
    for (const x of Object.values(o)) walk(x);
  };
  walk(h.events);
  return max;
}

/** A workflow's history and those of the children it started, recursively (and their continued runs). */
export async function workflowTree(client: Client, workflowId: string, runId?: string): Promise<WorkflowHistory[]> {
  const out: WorkflowHistory[] = [];
  const visit = async (id: string, run: string | undefined): Promise<void> => {
    const handle = client.workflow.getHandle(id, run);
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    out.push({
      workflowId: id,
      runId: run ?? (await handle.describe()).runId,
      events: events.length,
      largestPayload: largestPayloadOf(history),
      history,
    });
    for (const e of events) {
      const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
      if (child?.workflowId && child.runId && !child.workflowId.startsWith('provenant-steward-'))
        await visit(child.workflowId, child.runId);
      const next = e.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
      if (next) await visit(id, next);
    }
  };
  await visit(workflowId, runId);
  return out;
}
