/**
 * What Provenant signs, and how each signature is checked again:
 * - an audit record, when it is written: the record carries its signer (key id, algorithm) and a
 *   DSSE envelope whose statement names the sha256 of the record's dag-json bytes without the
 *   envelope. The record's CID covers the envelope too, so the chain links signed records, and
 *   whoever rewrites the chain must sign every record again: without the key, that shows.
 * - a manifest, when its steward's replica table is first built (the end of the archive): the
 *   statement names the manifest root block by CID and sha256 (the root links every page).
 * - an evidence bundle, when it is written: the manifest, the audit head and the table root.
 */
import * as dagJson from '@ipld/dag-json';
import { CID } from 'multiformats/cid';
import { sha256 } from '../pack/cids.js';
import {
  AUDIT_PREDICATE,
  MANIFEST_PREDICATE,
  openEnvelope,
  signStatement,
  statementOf,
  type Envelope,
  type Statement,
} from './dsse.js';
import type { KeyAlgorithm, SigningKey } from './keys.js';

export interface Signer {
  keyId: string;
  algorithm: KeyAlgorithm;
}

/** The fields a signed audit record adds (absent from records written without a key). */
export interface AuditSignature {
  signer?: Signer;
  signature?: Envelope;
}

interface RecordLike {
  datasetId: string;
  seq: number;
  prev: string | null;
  kind: string;
  time: string;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export const auditSubjectName = (datasetId: string, seq: number) => `provenant-audit:${datasetId}/${seq}`;

/** The bytes an audit record's signature covers: its dag-json encoding without `signature`. */
export function auditBody<R extends RecordLike & AuditSignature>(rec: R): Uint8Array {
  const { signature: _s, ...body } = rec;
  return dagJson.encode(body);
}

/** The record with its signer and signature added. */
export function signAuditRecord<R extends RecordLike>(rec: R, key: SigningKey): R & Required<AuditSignature> {
  const withSigner = { ...rec, signer: { keyId: key.keyId, algorithm: key.algorithm } };
  const statement = statementOf(
    [{ name: auditSubjectName(rec.datasetId, rec.seq), digest: { sha256: hex(sha256(auditBody(withSigner))) } }],
    AUDIT_PREDICATE,
    { datasetId: rec.datasetId, seq: rec.seq, prev: rec.prev, kind: rec.kind, time: rec.time },
  );
  return { ...withSigner, signature: signStatement(statement, key) };
}

/** Why a signed record's statement does not name the record (undefined when it does). */
export function auditStatementMismatch(rec: RecordLike & AuditSignature, st: Statement): string | undefined {
  if (st.predicateType !== AUDIT_PREDICATE) return `predicate type ${st.predicateType}`;
  const s = st.subject[0];
  if (!s || s.name !== auditSubjectName(rec.datasetId, rec.seq)) return 'the statement names another record';
  if (s.digest.sha256 !== hex(sha256(auditBody(rec)))) return 'the record differs from what was signed';
  return undefined;
}

/** The statement that signs a manifest: its root block's CID and sha256 (read from the CID). */
export function manifestStatement(manifestCid: string, datasetId: string): Statement {
  const cid = CID.parse(manifestCid);
  return statementOf(
    [{ name: `ipfs://${manifestCid}`, digest: { sha256: hex(cid.multihash.digest) } }],
    MANIFEST_PREDICATE,
    { datasetId, manifestCid },
  );
}

export function signManifest(manifestCid: string, datasetId: string, key: SigningKey): Envelope {
  return signStatement(manifestStatement(manifestCid, datasetId), key);
}

/** Why a manifest envelope does not sign `manifestCid` (undefined when it does). */
export function manifestStatementMismatch(env: Envelope, manifestCid: string): string | undefined {
  const st = openEnvelope(env, 'manifest signature');
  if (st.predicateType !== MANIFEST_PREDICATE) return `predicate type ${st.predicateType}`;
  const want = manifestStatement(manifestCid, String(st.predicate.datasetId ?? '')).subject[0]!;
  const s = st.subject[0];
  if (!s || s.name !== want.name || s.digest.sha256 !== want.digest.sha256)
    return 'the signature names another manifest';
  return undefined;
}
