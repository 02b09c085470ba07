/** Ingest stage: complete a request into an archive input, stream a remote source in, scan. */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { HostQueueActivities, SharedQueueActivities } from '../../shared/activities.js';
import type { StageContext } from '../context.js';
import { boundary, heartbeater, untilSourceGivesUp } from '../temporal.js';
import { archiveInput } from './archive-input.js';
import { createSource, mirrorSource } from './mirror.js';
import { scanRemote } from './remote-scan.js';
import { scanLocal } from './scan.js';

export function createIngestActivities(ctx: StageContext) {
  const { config, stageDir } = ctx;
  const shared = {
    async provenantHostQueue() {
      return ctx.hostQueue;
    },
    provenantArchiveInput: boundary(async (r) =>
      archiveInput(config, {
        source: r.source,
        datasetId: r.datasetId,
        copies: r.copies,
        meta: r.meta,
        ...(r.derivedFrom?.length ? { derivedFrom: r.derivedFrom } : {}),
        providers: r.providers,
        createdAt: r.createdAt,
        noSteward: r.steward === false,
      }),
    ),
  } satisfies Pick<SharedQueueActivities, 'provenantHostQueue' | 'provenantArchiveInput'>;

  const host = {
    /**
     * Copy a remote source (S3 prefix, HTTP URLs) into this host's staging as a local tree for the
     * scan and pack; a retry fetches only what is not yet in place. Cleaned with the staging.
     */
    provenantMirror: boundary(async (s) =>
      untilSourceGivesUp(config.temporal.sourceUnavailableFor, async () => {
        const beat = heartbeater();
        const mirrorPath = path.join(stageDir(s), 'mirror');
        const source = createSource(s.source);
        try {
          const r = await mirrorSource(source, mirrorPath, {
            signal: Context.current().cancellationSignal,
            onProgress: (p) => beat(p),
          });
          return { files: r.files, bytes: r.bytes, downloaded: r.downloaded, mirrorPath, uri: source.uri };
        } finally {
          source.close();
        }
      }),
    ),

    provenantScan: boundary(async (s) =>
      untilSourceGivesUp(config.temporal.sourceUnavailableFor, async () => {
        const beat = heartbeater();
        const listing = path.join(stageDir(s), 'listing.ndjson');
        if ('source' in s) {
          // Listed only: the pack reads each object from the source as it packs it.
          await fsp.mkdir(stageDir(s), { recursive: true });
          const source = createSource(s.source);
          try {
            const r = await scanRemote(source, listing, {
              signal: Context.current().cancellationSignal,
              onProgress: (p) => beat(p),
            });
            ctx.metrics.scanned(r);
            return {
              files: r.files,
              dirs: r.dirs,
              bytes: r.bytes,
              specials: [],
              specialCount: 0,
              symlinksFollowed: 0,
              uri: source.uri,
            };
          } finally {
            source.close();
          }
        }
        const r = await scanLocal(s.sourcePath, listing, (p) => beat(p), Context.current().cancellationSignal);
        ctx.metrics.scanned(r);
        const { files, dirs, bytes, specials, specialCount, symlinksFollowed } = r;
        return { files, dirs, bytes, specials, specialCount, symlinksFollowed };
      }),
    ),
  } satisfies Pick<HostQueueActivities, 'provenantMirror' | 'provenantScan'>;

  return { shared, host };
}
