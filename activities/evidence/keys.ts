/**
 * Signing keys: a PEM private key file (Ed25519 or ECDSA P-256) named by the operator, read on
 * the worker or CLI that signs; never sent through Temporal. A key's id defaults to the sha256 of
 * its public key (SPKI DER), in hex, so that a verifier can name a key from its PEM alone.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { SigningConfig } from '../../config/schema.js';
import { SigningKeyError } from '../errors.js';

export type KeyAlgorithm = 'ed25519' | 'ecdsa-p256';

export interface SigningKey {
  keyId: string;
  algorithm: KeyAlgorithm;
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  /** The public key as SPKI PEM. */
  publicKeyPem: string;
}

export interface VerifyingKey {
  keyId: string;
  algorithm: KeyAlgorithm;
  publicKey: crypto.KeyObject;
  publicKeyPem: string;
}

function algorithmOf(key: crypto.KeyObject, file: string): KeyAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  throw new SigningKeyError(
    `unsupported key type ${key.asymmetricKeyType}${curve ? ` (${curve})` : ''} in ${file}: use Ed25519 or ECDSA P-256`,
  );
}

/** The default key id: sha256 of the public key's SPKI DER, hex. */
export function keyIdOf(publicKey: crypto.KeyObject): string {
  return crypto
    .createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

function readPem(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new SigningKeyError(`cannot read key file ${file}: ${(cause as Error).message}`, { cause });
  }
}

/** Load a PEM private key (PKCS#8, SEC1 or OpenSSH-free PEM) as a signing key. */
export function loadSigningKey(file: string, keyId?: string): SigningKey {
  const pem = readPem(file);
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new SigningKeyError(`${file} is not a PEM private key: ${(cause as Error).message}`, { cause });
  }
  const algorithm = algorithmOf(privateKey, file);
  const publicKey = crypto.createPublicKey(privateKey);
  const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { keyId: keyId ?? keyIdOf(publicKey), algorithm, privateKey, publicKey, publicKeyPem };
}

/** Load a PEM public key (or the public half of a private key) for verification. */
export function loadVerifyingKey(file: string, keyId?: string): VerifyingKey {
  const pem = readPem(file);
  let publicKey: crypto.KeyObject;
  try {
    publicKey = crypto.createPublicKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new SigningKeyError(`${file} is not a PEM public key: ${(cause as Error).message}`, { cause });
  }
  const algorithm = algorithmOf(publicKey, file);
  return {
    keyId: keyId ?? keyIdOf(publicKey),
    algorithm,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The configured signing key, or undefined when signing is off (no keyFile). */
export function signingKeyOf(config: { signing: SigningConfig }): SigningKey | undefined {
  const s = config.signing;
  return s.keyFile ? loadSigningKey(s.keyFile, s.keyId) : undefined;
}

/** The current key's public half and every previous key: what verifies this operator's signatures. */
export function verifyingKeysOf(config: { signing: SigningConfig }): VerifyingKey[] {
  const current = signingKeyOf(config);
  const out: VerifyingKey[] = current
    ? [
        {
          keyId: current.keyId,
          algorithm: current.algorithm,
          publicKey: current.publicKey,
          publicKeyPem: current.publicKeyPem,
        },
      ]
    : [];
  for (const f of config.signing.previousPublicKeyFiles) out.push(loadVerifyingKey(f));
  return out;
}

/** Sign bytes: Ed25519 (pure) or ECDSA P-256 with SHA-256, DER signature (as DSSE and sigstore expect). */
export function signBytes(key: Pick<SigningKey, 'algorithm' | 'privateKey'>, data: Uint8Array): Buffer {
  return crypto.sign(key.algorithm === 'ed25519' ? null : 'sha256', data, key.privateKey);
}

export function verifyBytes(
  key: Pick<VerifyingKey, 'algorithm' | 'publicKey'>,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return crypto.verify(key.algorithm === 'ed25519' ? null : 'sha256', data, key.publicKey, signature);
  } catch {
    return false;
  }
}
