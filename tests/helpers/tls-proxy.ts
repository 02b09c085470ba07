/**
 * A TLS-terminating proxy in front of the Temporal dev server (which speaks no TLS): it requires
 * a client certificate signed by the test CA (mTLS), negotiates ALPN 'h2' as gRPC clients expect,
 * then passes the bytes (HTTP/2 gRPC) through to the server over plain TCP. Certificates are made
 * with openssl (node:crypto cannot sign X.509): a CA, a server certificate for localhost and
 * 127.0.0.1, and a client certificate.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by another CA: the proxy must refuse it. */
  strangerCert: string;
  strangerKey: string;
}

/** True when an openssl binary answers. */
export function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Generate the test PKI in `dir` (P-256 keys, one day of validity). */
export function makeTestPki(dir: string): TestPki {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (name: string) =>
    ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
  const ca = (name: string, cn: string) => {
    key(`${name}.key`);
    ssl(
      'req', '-x509', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-days', '1', '-out', f(`${name}.crt`),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ); // prettier-ignore
  };
  const leaf = (name: string, cn: string, signer: string, ext: string) => {
    key(`${name}.key`);
    ssl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
    fs.writeFileSync(f(`${name}.ext`), ext);
    ssl(
      'x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${signer}.crt`), '-CAkey', f(`${signer}.key`),
      '-CAcreateserial', '-days', '1', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`),
    ); // prettier-ignore
  };
  ca('ca', 'provenant test CA');
  ca('other-ca', 'some other CA');
  const common = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n';
  leaf(
    'server',
    'localhost',
    'ca',
    `${common}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n`,
  );
  leaf('client', 'provenant-worker', 'ca', `${common}extendedKeyUsage=clientAuth\n`);
  leaf('stranger', 'stranger', 'other-ca', `${common}extendedKeyUsage=clientAuth\n`);
  return {
    dir,
    caCert: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    strangerCert: f('stranger.crt'),
    strangerKey: f('stranger.key'),
  };
}

export interface TlsProxy {
  /** host:port of the TLS side. */
  address: string;
  /** Handshakes the proxy refused (no client certificate, or one the CA did not sign). */
  refused: number;
  /** Connections passed through to the server after a verified client certificate. */
  accepted: number;
  close(): Promise<void>;
}

/** Listen on 127.0.0.1 (a free port) with mTLS and forward each connection to `target` (host:port). */
export async function startTlsProxy(o: { target: string; pki: TestPki }): Promise<TlsProxy> {
  const i = o.target.lastIndexOf(':');
  const host = o.target.slice(0, i);
  const port = Number(o.target.slice(i + 1));
  const sockets = new Set<net.Socket>();
  const state = { refused: 0, accepted: 0 };
  const server = tls.createServer(
    {
      key: fs.readFileSync(o.pki.serverKey),
      cert: fs.readFileSync(o.pki.serverCert),
      ca: fs.readFileSync(o.pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (client) => {
      state.accepted++;
      const upstream = net.connect({ host, port });
      sockets.add(client);
      sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    },
  );
  server.on('tlsClientError', () => state.refused++);
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${addr.port}`,
    get refused() {
      return state.refused;
    },
    get accepted() {
      return state.accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
