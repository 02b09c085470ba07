/**
 * DSSE envelopes over in-toto Statement v1, built with node:crypto. The sigstore libraries were
 * not used: their signing and verification are built around Fulcio certificates and a trusted
 * root with transparency logs, while Provenant signs offline with a key file the operator names.
 * The envelope is the standard DSSE JSON (payloadType, base64 payload, signatures with keyid and
 * base64 sig), so any DSSE verifier given the public key checks it.
 */
import { EvidenceInvalidError } from '../errors.js';
import { signBytes, verifyBytes, type SigningKey, type VerifyingKey } from './keys.js';

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** A signed audit record: the subject is the record without its signature (dag-json), by sha256. */
export const AUDIT_PREDICATE = 'https://provenant.dev/audit-record/v1';
/** A manifest as archived: the subject is the manifest root block (its CID names it), by sha256. */
export const MANIFEST_PREDICATE = 'https://provenant.dev/manifest/v1';
/** An evidence bundle: the manifest, the audit head and the replica table root it was written from. */
export const EVIDENCE_PREDICATE = 'https://provenant.dev/evidence/v1';

export interface Subject {
  name: string;
  digest: Record<string, string>;
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: Subject[];
  predicateType: string;
  predicate: Record<string, unknown>;
}

export interface Envelope {
  payloadType: string;
  /** The statement's JSON, base64. */
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

/** DSSE pre-authentication encoding: "DSSEv1 <len> <type> <len> <body>" (lengths in bytes, decimal). */
export function pae(payloadType: string, body: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${body.length} `, 'utf8'),
    body,
  ]);
}

export function statementOf(subject: Subject[], predicateType: string, predicate: Record<string, unknown>): Statement {
  return { _type: STATEMENT_TYPE, subject, predicateType, predicate };
}

/** Sign a statement with one key: a DSSE envelope holding one signature. */
export function signStatement(statement: Statement, key: Pick<SigningKey, 'keyId' | 'algorithm' | 'privateKey'>) {
  const body = Buffer.from(JSON.stringify(statement), 'utf8');
  const sig = signBytes(key, pae(IN_TOTO_PAYLOAD_TYPE, body));
  const env: Envelope = {
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    payload: body.toString('base64'),
    signatures: [{ keyid: key.keyId, sig: sig.toString('base64') }],
  };
  return env;
}

function isEnvelope(v: unknown): v is Envelope {
  const e = v as Envelope;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.payloadType === 'string' &&
    typeof e.payload === 'string' &&
    Array.isArray(e.signatures) &&
    e.signatures.every((s) => typeof s?.keyid === 'string' && typeof s?.sig === 'string')
  );
}

/** The statement an envelope carries (EvidenceInvalidError when it is not an in-toto Statement v1). */
export function openEnvelope(env: unknown, what: string): Statement {
  if (!isEnvelope(env)) throw new EvidenceInvalidError(`${what}: not a DSSE envelope`);
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE)
    throw new EvidenceInvalidError(`${what}: payload type ${env.payloadType}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  let st: Statement;
  try {
    st = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as Statement;
  } catch (cause) {
    throw new EvidenceInvalidError(`${what}: the payload is not JSON`, { cause });
  }
  if (st?._type !== STATEMENT_TYPE || !Array.isArray(st.subject) || typeof st.predicateType !== 'string')
    throw new EvidenceInvalidError(`${what}: the payload is not an in-toto Statement v1`);
  return st;
}

export type SignatureCheck =
  /** Verified with a key the verifier trusts. */
  | { state: 'trusted'; keyId: string }
  /** Verified with a public key the bundle carries, which the verifier was not told to trust. */
  | { state: 'unverified-signer'; keyId: string }
  /** No key at hand verifies it: the signature or what it signs was changed. */
  | { state: 'bad'; keyId: string; detail: string };

/**
 * Check an envelope's signatures: first against the trusted keys (any of them, whatever key id the
 * signature names, so that an operator's own key ids still match), then against the bundle's keys.
 * The best result of any signature counts.
 */
export function checkEnvelope(
  env: Envelope,
  trusted: Pick<VerifyingKey, 'keyId' | 'algorithm' | 'publicKey'>[],
  carried: Pick<VerifyingKey, 'keyId' | 'algorithm' | 'publicKey'>[],
): SignatureCheck {
  const msg = pae(env.payloadType, Buffer.from(env.payload, 'base64'));
  let best: SignatureCheck | undefined;
  for (const s of env.signatures) {
    const sig = Buffer.from(s.sig, 'base64');
    const t = trusted.find((k) => verifyBytes(k, msg, sig));
    if (t) return { state: 'trusted', keyId: t.keyId };
    const c = carried.find((k) => verifyBytes(k, msg, sig));
    if (c) best = { state: 'unverified-signer', keyId: c.keyId };
    else
      best ??= {
        state: 'bad',
        keyId: s.keyid,
        detail: carried.some((k) => k.keyId === s.keyid)
          ? `the signature does not verify with key ${s.keyid.slice(0, 16)}`
          : `no key at hand verifies it (it names key ${s.keyid.slice(0, 16)})`,
      };
  }
  return best ?? { state: 'bad', keyId: '', detail: 'the envelope holds no signature' };
}
