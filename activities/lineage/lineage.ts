/**
 * OpenLineage run events of archives (config `telemetry.openLineage`): START when an archive
 * begins, COMPLETE with its manifest CID, FAIL with the reason, POSTed as JSON to the configured
 * endpoint (Marquez's `/api/v1/lineage`, or any OpenLineage HTTP receiver). The run is the archive
 * workflow's run (its run id, a UUID); the input is the source (and the manifests it derives from);
 * the output is the manifest. Best effort: an endpoint that does not take an event costs the event
 * (logged), never the archive. Without a URL nothing is sent.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { LineageRequest, SharedQueueActivities } from '../../shared/activities.js';
import type { ArchiveSource } from '../../shared/source.js';
import { TOOL_NAME, TOOL_VERSION } from '../../version.js';
import type { StageContext } from '../context.js';
import { boundary } from '../temporal.js';

const SPEC = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent';
const ERROR_FACET = 'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet';
/** Who produced the events (a URI, as the spec asks). */
const PRODUCER = `urn:${TOOL_NAME}:${TOOL_VERSION}`;
/** Namespace of manifests, named by their CID. */
const MANIFEST_NAMESPACE = 'ipfs';

interface LineageDataset {
  namespace: string;
  name: string;
}

/** The source as an OpenLineage dataset (its naming conventions: file, s3, http). */
function sourceDatasets(s: ArchiveSource): LineageDataset[] {
  switch (s.kind) {
    case 'local':
      return [{ namespace: `file://${os.hostname()}`, name: path.resolve(s.path) }];
    case 's3':
      return [{ namespace: `s3://${s.bucket}`, name: `/${s.prefix}` }];
    case 'http':
      return s.urls.map((u) => {
        const url = new URL(typeof u === 'string' ? u : u.url);
        return { namespace: `${url.protocol}//${url.host}`, name: url.pathname };
      });
  }
}

/** The run event for `r`, at `eventTime`, of the workflow run `runId`. */
export function lineageEvent(
  r: LineageRequest,
  o: { runId: string; namespace: string; eventTime: string },
): Record<string, unknown> {
  const parents = (r.derivedFrom ?? []).map((cid) => ({ namespace: MANIFEST_NAMESPACE, name: cid }));
  return {
    eventType: r.eventType,
    eventTime: o.eventTime,
    producer: PRODUCER,
    schemaURL: SPEC,
    run: {
      runId: o.runId,
      facets:
        r.eventType === 'FAIL' && r.error
          ? {
              errorMessage: {
                _producer: PRODUCER,
                _schemaURL: ERROR_FACET,
                message: r.error,
                programmingLanguage: 'TypeScript',
              },
            }
          : {},
    },
    job: { namespace: o.namespace, name: `archive.${r.datasetId}` },
    inputs: [...sourceDatasets(r.source), ...parents],
    outputs: r.manifestCid ? [{ namespace: MANIFEST_NAMESPACE, name: r.manifestCid }] : [],
  };
}

export function createLineageActivities(ctx: StageContext) {
  const { openLineage } = ctx.config.telemetry;
  const shared = {
    /** Send one run event of the calling archive; `sent: false` when none is configured or it was not taken. */
    provenantLineage: boundary(async (r) => {
      if (!openLineage.url) return { sent: false };
      const actx = Context.current();
      const event = lineageEvent(r, {
        // The archive workflow's run id is a UUID, as OpenLineage's runId must be.
        runId: actx.info.workflowExecution?.runId ?? crypto.randomUUID(),
        namespace: openLineage.namespace,
        eventTime: new Date().toISOString(),
      });
      const token = openLineage.apiKeyEnv ? process.env[openLineage.apiKeyEnv] : undefined;
      try {
        const res = await fetch(openLineage.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(event),
          signal: AbortSignal.any([actx.cancellationSignal, AbortSignal.timeout(openLineage.timeoutMs)]),
        });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        return { sent: true };
      } catch (err) {
        actx.log.warn('OpenLineage event not sent', { eventType: r.eventType, error: (err as Error).message });
        return { sent: false };
      }
    }),
  } satisfies Pick<SharedQueueActivities, 'provenantLineage'>;
  return { shared };
}
