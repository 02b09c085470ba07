/**
 * provenant evidence <dataset|manifest-cid> --out FILE: one CAR bundle with the manifest, the full
 * audit log, the replica table, the signatures and the public keys (activities/evidence/bundle.ts).
 * The steward (audit head, replica table) is found through Temporal; every part is read from the
 * providers and checked on the way in. With a signing key configured, the bundle is signed too.
 */
import { ManifestNotFoundError } from '../../activities/errors.js';
import { writeEvidence } from '../../activities/evidence/bundle.js';
import { signingKeyOf } from '../../activities/evidence/keys.js';
import { parseCid } from '../../activities/manifest/manifest.js';
import { readManifestFacts } from '../../activities/evidence/manifest-facts.js';
import { withRuntime } from '../../workers/runtime.js';
import { stewardStatusQuery } from '../../workflows/index.js';
import { humanBytes, stewardOf, UsageError } from '../kit.js';
import { command } from './run.js';

export const evidence = command(
  'evidence <dataset|manifest-cid> --out FILE   a self-contained evidence bundle (CAR) for verify-evidence',
  { out: { type: 'string' } },
  async ({ config, out, positionals, values }) => {
    const [ref] = positionals;
    const file = values.out as string | undefined;
    if (!ref || !file) throw new UsageError('evidence needs <dataset|manifest-cid> --out FILE');
    signingKeyOf(config); // a key file that is no usable key fails here, before anything is asked of the server
    // A manifest CID names its dataset; the dataset's steward holds the audit head and replica table.
    const datasetId = parseCid(ref) ? (await readManifestFacts(config, ref)).datasetId : ref;
    const st = await withRuntime(
      config,
      async ({ client, query }) => {
        const steward = await stewardOf(client, datasetId);
        return query(() => steward.query(stewardStatusQuery));
      },
      // The steward's query needs a worker: a running one, else one in this process.
      { worker: 'auto', log: out.info },
    );
    if (parseCid(ref) && st.manifestCid !== ref)
      throw new ManifestNotFoundError(`the steward of ${datasetId} keeps manifest ${st.manifestCid}, not ${ref}`);
    const s = await writeEvidence(config, {
      manifestCid: st.manifestCid,
      auditHead: st.auditHead,
      tableCid: st.replicaTable?.tableCid ?? null,
      out: file,
    });
    out.result(
      s,
      [
        `wrote evidence of ${s.datasetId} to ${s.out} (${humanBytes(s.bytes)}, sha256 ${s.sha256})`,
        `  manifest ${s.manifestCid}: ${s.manifestBlocks} blocks; audit log: ${s.auditRecords} records; replicas: ${s.replicas}${s.anchors ? ` (${s.anchors} with a chain commitment)` : ''}`,
        s.signed ? `  signed with key ${s.keyId}` : '  unsigned (no signing key configured: set signing.keyFile)',
      ].join('\n'),
    );
  },
);
