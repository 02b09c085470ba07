/** Signing key pairs for the evidence tests, written as PEM files. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A key pair as PEM files: the private key (PKCS#8) and the public key (SPKI). */
export function writeKeyPair(dir: string, name: string, kind: 'ed25519' | 'ec'): { priv: string; pub: string } {
  const { privateKey, publicKey } =
    kind === 'ed25519'
      ? crypto.generateKeyPairSync('ed25519')
      : crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const priv = path.join(dir, `${name}.key.pem`);
  const pub = path.join(dir, `${name}.pub.pem`);
  fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub };
}
