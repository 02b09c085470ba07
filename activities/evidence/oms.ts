/**
 * OpenSSF Model Signing (OMS) v1.0 signature of an archived tree, as `model_signing sign key`
 * (PyPI model-signing 1.1.1, the reference tool) writes one for the restored directory, so that
 * `model_signing verify key --signature FILE --public_key PUB.pem DIR` accepts it:
 *   - a sigstore bundle v0.3 with `verificationMaterial.publicKey.hint` = sha256 (hex) of the
 *     public key's SPKI PEM text, no transparency-log entries, and a DSSE envelope;
 *   - the envelope's payload is an in-toto Statement v1 with predicate type
 *     https://model_signing/signature/v1.0: one resource per file (name = its path, sha256 from the
 *     manifest), in the order Python sorts PurePosixPath keys (by path components), serialization
 *     "files" with sha256, no symlinks and the git paths the tool always ignores;
 *   - the subject is the dataset, its sha256 taken over the raw 32-byte digests of the resources
 *     in that order (the tool rejects a statement whose resources do not hash to it);
 *   - the signature is ECDSA over the DSSE pre-authentication encoding, DER; the tool's key
 *     method takes elliptic-curve keys only, so an Ed25519 key is refused here.
 * Files at those git paths are left out of the resources: the verifier never hashes them.
 */
import crypto from 'node:crypto';
import { SigningKeyError } from '../errors.js';
import type { ManifestFacts } from './manifest-facts.js';
import { signBytes, type SigningKey } from './keys.js';

export const OMS_PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const SIGSTORE_BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** The root paths `model_signing` ignores by default on sign and verify (written sorted; it writes a set). */
export const OMS_IGNORE_PATHS = ['.git', '.gitattributes', '.github', '.gitignore'] as const;

export interface OmsResource {
  name: string;
  algorithm: 'sha256';
  digest: string;
}

export interface InTotoStatement<P = Record<string, unknown>> {
  _type: typeof IN_TOTO_STATEMENT_TYPE;
  subject: { name: string; digest: Record<string, string> }[];
  predicateType: string;
  predicate: P;
}

export interface OmsPredicate {
  serialization: {
    method: 'files';
    hash_type: 'sha256';
    allow_symlinks: false;
    ignore_paths: string[];
  };
  resources: OmsResource[];
}

export interface DsseEnvelope {
  payload: string;
  payloadType: string;
  signatures: { sig: string; keyid: string }[];
}

export interface OmsBundle {
  mediaType: typeof SIGSTORE_BUNDLE_V03;
  verificationMaterial: { publicKey: { hint: string }; tlogEntries: [] };
  dsseEnvelope: DsseEnvelope;
}

/** DSSE v1 pre-authentication encoding: "DSSEv1 <len> <type> <len> <body>", lengths in bytes. */
export function dssePae(payloadType: string, body: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
}

/** A DSSE envelope over `statement` (its JSON), signed with one key. */
export function dsseSign(statement: unknown, key: Pick<SigningKey, 'keyId' | 'algorithm' | 'privateKey'>) {
  const body = Buffer.from(JSON.stringify(statement), 'utf8');
  const sig = signBytes(key, dssePae(IN_TOTO_PAYLOAD_TYPE, body));
  const env: DsseEnvelope = {
    payload: body.toString('base64'),
    payloadType: IN_TOTO_PAYLOAD_TYPE,
    signatures: [{ sig: sig.toString('base64'), keyid: key.keyId }],
  };
  return env;
}

/** Python's str ordering: by code point (JS `<` compares UTF-16 units, which differs past U+FFFF). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** PurePosixPath ordering: component lists compared element-wise ("a/b" sorts before "a-c"). */
export function comparePosixPaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = compareCodePoints(x[i]!, y[i]!);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** True for a path the verifier does not hash: a root git path or anything under one. */
export function omsIgnored(archivePath: string): boolean {
  return OMS_IGNORE_PATHS.some((p) => archivePath === p || archivePath.startsWith(`${p}/`));
}

/** The model-signing v1.0 statement of the archived tree (unsigned). */
export function omsStatement(f: ManifestFacts): InTotoStatement<OmsPredicate> {
  const resources: OmsResource[] = f.files
    .filter((file) => !omsIgnored(file.path))
    .sort((a, b) => comparePosixPaths(a.path, b.path))
    .map((file) => ({ name: file.path, algorithm: 'sha256', digest: file.sha256 }));
  const root = crypto.createHash('sha256');
  for (const r of resources) root.update(Buffer.from(r.digest, 'hex'));
  return {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: f.datasetId, digest: { sha256: root.digest('hex') } }],
    predicateType: OMS_PREDICATE_TYPE,
    predicate: {
      serialization: {
        method: 'files',
        hash_type: 'sha256',
        allow_symlinks: false,
        ignore_paths: [...OMS_IGNORE_PATHS],
      },
      resources,
    },
  };
}

/** The signed OMS bundle (SigningKeyError without a key or with a key the tool cannot verify). */
export function omsBundle(f: ManifestFacts, key: SigningKey | undefined): OmsBundle {
  if (!key)
    throw new SigningKeyError(
      'an oms export is a signature: name a key with --key FILE, signing.keyFile or PROVENANT_SIGNING_KEY_FILE',
    );
  if (key.algorithm !== 'ecdsa-p256')
    throw new SigningKeyError(
      `model_signing verifies elliptic-curve keys only; key ${key.keyId} is ${key.algorithm}: use an ECDSA P-256 key`,
    );
  return {
    mediaType: SIGSTORE_BUNDLE_V03,
    verificationMaterial: {
      publicKey: { hint: crypto.createHash('sha256').update(key.publicKeyPem, 'utf8').digest('hex') },
      tlogEntries: [],
    },
    dsseEnvelope: dsseSign(omsStatement(f), key),
  };
}
