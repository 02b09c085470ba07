/**
 * SLSA Provenance v1 of an archive, as an in-toto Statement v1: the "build" is the archive run
 * that read a source and produced a manifest.
 *   - subject: the manifest and the tree's root, each by its CID (ipfs:// name) and the sha256
 *     its CID carries (every CID Provenant writes is sha2-256);
 *   - builder: Provenant, with the version that archived (from the manifest) and the one exporting;
 *   - buildType: https://provenant.dev/archive/v1; externalParameters: what the user chose
 *     (dataset id, source, meta); internalParameters: what the platform chose (the Temporal
 *     namespace, the archive workflow id and run id);
 *   - metadata.invocationId: "<workflow id>/<run id>", with the run's start and close times;
 *   - resolvedDependencies: the source's URI and a digest of its contents: sha256 over the raw
 *     per-file sha256 digests in path order (what OpenSSF Model Signing v1.0 takes as its subject,
 *     so a verifier with the source tree can recompute it), the root CID in annotations;
 *   - then each parent manifest (`archive --derived-from`) as `ipfs://<manifest CID>`;
 *   - byproducts: each shard's piece CID with the sha256 of its CAR (what the piece holds), and
 *     the manifest's own piece.
 * Unsigned by default; `slsaExport` wraps it in a DSSE envelope when a signing key is given.
 */
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { CID } from 'multiformats/cid';
import { TOOL_NAME, TOOL_VERSION } from '../../version.js';
import type { ManifestFacts } from './manifest-facts.js';
import { comparePosixPaths, dsseSign, IN_TOTO_STATEMENT_TYPE, type DsseEnvelope, type InTotoStatement } from './oms.js';
import type { SigningKey } from './keys.js';

export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
export const PROVENANT_BUILD_TYPE = 'https://provenant.dev/archive/v1';
export const PROVENANT_BUILDER_ID = 'https://provenant.dev/builder/v1';

/** The archive run that wrote the manifest, when the Temporal server still knows it. */
export interface ArchiveInvocation {
  namespace: string;
  workflowId: string;
  /** Absent when the server no longer has (or never had) the run. */
  runId?: string;
  startedOn?: string;
  finishedOn?: string;
}

export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  mediaType?: string;
  annotations?: Record<string, unknown>;
}

export interface SlsaPredicate {
  buildDefinition: {
    buildType: string;
    externalParameters: Record<string, unknown>;
    internalParameters: Record<string, unknown>;
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string; version: Record<string, string> };
    metadata: { invocationId?: string; startedOn?: string; finishedOn?: string };
    byproducts: ResourceDescriptor[];
  };
}

/** The sha256 a CID's multihash carries, hex (undefined for any other hash). */
function sha256OfCid(cid: string): string | undefined {
  const c = CID.parse(cid);
  return c.multihash.code === 0x12 ? Buffer.from(c.multihash.digest).toString('hex') : undefined;
}

function cidDescriptor(cid: string, extra: ResourceDescriptor = {}): ResourceDescriptor {
  const sha = sha256OfCid(cid);
  return { uri: `ipfs://${cid}`, ...(sha ? { digest: { sha256: sha } } : {}), ...extra };
}

/** sha256 over the raw per-file sha256 digests, files in PurePosixPath order (the OMS v1.0 subject). */
export function treeDigest(f: ManifestFacts): string {
  const h = crypto.createHash('sha256');
  for (const file of [...f.files].sort((a, b) => comparePosixPaths(a.path, b.path)))
    h.update(Buffer.from(file.sha256, 'hex'));
  return h.digest('hex');
}

function sourceDescriptor(f: ManifestFacts): ResourceDescriptor {
  const uris = f.source.uri.split(/\s+/).filter(Boolean);
  const asUri = (u: string) => (u.startsWith('/') ? pathToFileURL(u).href : u);
  return {
    name: 'source',
    ...(uris.length === 1 ? { uri: asUri(uris[0]!) } : {}),
    digest: { sha256: treeDigest(f) },
    annotations: {
      kind: f.source.kind,
      ...(f.source.host ? { host: f.source.host } : {}),
      ...(uris.length > 1 ? { uris: uris.map(asUri) } : {}),
      rootCid: f.rootCid,
      files: f.totals.files,
      bytes: f.totals.bytes,
      digestOf: 'sha256 over the raw sha256 digests of the files, sorted by path components',
    },
  };
}

export function slsaStatement(f: ManifestFacts, run: ArchiveInvocation): InTotoStatement<SlsaPredicate> {
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [f.manifestCid, f.rootCid].map((cid) => ({
      name: `ipfs://${cid}`,
      digest: { sha256: sha256OfCid(cid) ?? '' },
    })),
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: PROVENANT_BUILD_TYPE,
        externalParameters: {
          datasetId: f.datasetId,
          source: { kind: f.source.kind, uri: f.source.uri },
          meta: f.meta,
        },
        internalParameters: {
          namespace: run.namespace,
          workflowId: run.workflowId,
          ...(run.runId ? { runId: run.runId } : {}),
        },
        // The parents (archive --derived-from): the datasets or base models this one came from.
        resolvedDependencies: [
          sourceDescriptor(f),
          ...f.derivedFrom.map((cid) =>
            cidDescriptor(cid, { name: 'derived-from', annotations: { kind: 'manifest' } }),
          ),
        ],
      },
      runDetails: {
        builder: {
          id: PROVENANT_BUILDER_ID,
          version: { [f.tool.name]: f.tool.version, [`${TOOL_NAME}-export`]: TOOL_VERSION },
        },
        metadata: {
          ...(run.runId ? { invocationId: `${run.workflowId}/${run.runId}` } : {}),
          ...(run.startedOn ? { startedOn: run.startedOn } : {}),
          ...(run.finishedOn ? { finishedOn: run.finishedOn } : {}),
        },
        byproducts: [
          ...f.shards.map((s) =>
            cidDescriptor(s.carCid, {
              name: s.pieceCid,
              mediaType: 'application/vnd.ipld.car',
              annotations: { role: 'shard', shard: s.index, pieceCid: s.pieceCid, carBytes: s.carBytes },
            }),
          ),
          cidDescriptor(f.manifestCid, {
            name: f.manifestPieceCid,
            annotations: { role: 'manifest', pieceCid: f.manifestPieceCid },
          }),
        ],
      },
    },
  };
}

/** The statement, or a DSSE envelope over it when a key is given. */
export function slsaExport(
  f: ManifestFacts,
  run: ArchiveInvocation,
  key: SigningKey | undefined,
): InTotoStatement<SlsaPredicate> | DsseEnvelope {
  const st = slsaStatement(f, run);
  return key ? dsseSign(st, key) : st;
}
