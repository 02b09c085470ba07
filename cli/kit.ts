/** What every CLI command shares: output, usage errors, failure reasons, finding a dataset's workflows. */
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { ConfigError, ManifestNotFoundError, ProvenantError } from '../activities/errors.js';
import { parseCid } from '../activities/pack/cids.js';
import type { ArchiveSummary } from '../shared/types.js';
import { archiveWorkflowId } from '../shared/api.js';
import { UsageError } from './out.js';

export { humanBytes, makeOut, UsageError, type Out } from './out.js';

/** The steward of a completed archive (ManifestNotFoundError when the dataset is unknown). */
export async function stewardOf(client: Client, datasetId: string) {
  const s = (await client.workflow
    .getHandle(archiveWorkflowId(datasetId))
    .result()
    .catch((err) => {
      if (err instanceof WorkflowNotFoundError)
        throw new ManifestNotFoundError(`no dataset '${datasetId}' is known to this Temporal server`);
      throw err;
    })) as ArchiveSummary;
  if (!s.stewardWorkflowId) throw new ManifestNotFoundError(`dataset '${datasetId}' has no steward`);
  return client.workflow.getHandle(s.stewardWorkflowId);
}

/** A manifest CID as given, or the manifest of a dataset id. */
export async function resolveManifest(client: Client, ref: string): Promise<string> {
  if (parseCid(ref)) return ref;
  try {
    const s = (await client.workflow.getHandle(archiveWorkflowId(ref)).result()) as ArchiveSummary;
    return s.manifestCid;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError)
      throw new ManifestNotFoundError(`'${ref}' is neither a manifest CID nor a known dataset id`);
    throw err;
  }
}

/** One line saying why a command failed: the root cause's type and message. */
export function failureReason(err: unknown): string {
  let e: unknown = err;
  // Unwrap WorkflowFailedError → ActivityFailure → ApplicationFailure to the root cause.
  while (
    e instanceof WorkflowFailedError ||
    (e instanceof TemporalFailure && !(e instanceof ApplicationFailure) && e.cause)
  ) {
    e = (e as Error).cause;
  }
  if (e instanceof ApplicationFailure) return `${e.type ?? 'Error'}: ${e.message}`;
  if (e instanceof ProvenantError || e instanceof ConfigError || e instanceof UsageError)
    return `${e.name}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
