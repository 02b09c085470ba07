/**
 * The one place that turns `config.temporal` into connection options, for the client
 * (`Connection.connect`) and the worker (`NativeConnection.connect`) alike, so that the same
 * settings reach the dev server, a self-hosted cluster (mTLS) and Temporal Cloud (API key or mTLS).
 *
 * Non-secret settings (address, namespace, TLS files, server name) are resolved in the config by
 * config/load.ts: defaults < Temporal TOML profile < config file < TEMPORAL_* environment. Secrets
 * are read here, when connecting, and never put in the config: the API key from the variable named
 * by `temporal.apiKeyEnv`, else TEMPORAL_API_KEY, else the profile's `api_key`; certificates and
 * keys given as data (TEMPORAL_TLS_*_DATA, the profile's `*_data`) when no file is configured.
 *
 * TLS is on when `tls.enabled` is true, when any TLS file or server name is set, or when an API key
 * is (as the Temporal SDKs do); `tls.enabled: false` (TEMPORAL_TLS=false) turns it off in any case.
 *
 * This module imports @temporalio/client only; @temporalio/worker is loaded by `connectNative`.
 */
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { Connection, type ConnectionOptions } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import type { ConfigDataSource } from '@temporalio/envconfig';
import { loadTemporalProfile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ConfigError, TemporalUnavailableError } from '../shared/errors.js';

type TlsOptions = NonNullable<Exclude<ConnectionOptions['tls'], boolean | null>>;

export interface ConnectionSettings {
  address: string;
  namespace: string;
  /** The TLS options, or undefined for a plain connection. */
  tls?: TlsOptions;
  /** Sent as `Authorization: Bearer …` on every call; never logged, never in `describe`. */
  apiKey?: string;
  /** gRPC metadata from the profile (`grpc_meta`, TEMPORAL_GRPC_META_*). */
  metadata?: Record<string, string>;
  /** One line for messages: address, namespace, TLS and its client certificate, API key or not. */
  describe: string;
}

function readPem(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (cause) {
    throw new ConfigError(`cannot read temporal.tls.${what} ${file}: ${(cause as Error).message}`, [], { cause });
  }
}

function fromSource(src: ConfigDataSource | undefined, what: string): Buffer | undefined {
  if (!src) return undefined;
  if ('path' in src) return readPem(src.path, what);
  return Buffer.from(src.data);
}

/**
 * Connection options from `config.temporal` and the environment (secrets only). Throws ConfigError
 * for a TLS file that cannot be read or half a client certificate pair.
 */
export function connectionSettings(t: Config['temporal'], env: NodeJS.ProcessEnv = process.env): ConnectionSettings {
  // The profile again, with the environment over it, for what the config does not hold.
  let profile;
  try {
    profile = loadTemporalProfile({ profile: t.profile, configFile: t.configFile }, env, { withEnv: true });
  } catch (cause) {
    throw new ConfigError(`cannot load Temporal profile: ${(cause as Error).message}`, [], { cause });
  }
  const apiKey = (t.apiKeyEnv ? env[t.apiKeyEnv] : profile.apiKey) || undefined;
  if (t.apiKeyEnv && !apiKey) {
    throw new ConfigError(`temporal.apiKeyEnv names ${t.apiKeyEnv}, which is not set`, [
      { path: 'temporal.apiKeyEnv', message: 'not set' },
    ]);
  }
  // The config's TLS settings win; the profile's (and TEMPORAL_TLS_*'s) fill what it leaves unset.
  const c = t.tls ?? {};
  const p = profile.tls ?? {};
  const ca = c.serverCaCertFile
    ? readPem(c.serverCaCertFile, 'serverCaCertFile')
    : fromSource(p.serverCACert, 'serverCaCert');
  const crt = c.clientCertFile ? readPem(c.clientCertFile, 'clientCertFile') : fromSource(p.clientCert, 'clientCert');
  const key = c.clientKeyFile ? readPem(c.clientKeyFile, 'clientKeyFile') : fromSource(p.clientKey, 'clientKey');
  const serverName = c.serverName ?? p.serverName;
  if (!!crt !== !!key) {
    throw new ConfigError('temporal.tls: a client certificate needs its key, and a key its certificate', [
      { path: 'temporal.tls', message: crt ? 'clientKeyFile missing' : 'clientCertFile missing' },
    ]);
  }
  const anyTls = serverName !== undefined || ca !== undefined || crt !== undefined;
  const on = c.enabled ?? (p.disabled !== undefined ? !p.disabled : anyTls || apiKey !== undefined);
  const tls: TlsOptions | undefined = on
    ? {
        ...(serverName ? { serverNameOverride: serverName } : {}),
        ...(ca ? { serverRootCACertificate: ca } : {}),
        ...(crt && key ? { clientCertPair: { crt, key } } : {}),
      }
    : undefined;
  const metadata = profile.grpcMeta && Object.keys(profile.grpcMeta).length ? profile.grpcMeta : undefined;
  const tlsText = tls
    ? `TLS${tls.clientCertPair ? ' with a client certificate' : ', no client certificate'}${serverName ? `, server name ${serverName}` : ''}`
    : 'no TLS';
  return {
    address: t.address,
    namespace: t.namespace,
    tls,
    apiKey,
    metadata,
    describe: `${t.address}, namespace ${t.namespace}, ${tlsText}${apiKey ? ', API key' : ''}`,
  };
}

/** True when the settings need the server to speak TLS (the embedded dev server does not). */
export function needsTls(s: ConnectionSettings): boolean {
  return s.tls !== undefined;
}

/**
 * The SDKs report a failed TLS handshake vaguely ("Failed to connect before the deadline"): shake
 * hands once with node:tls to name the cause (certificate required, unknown CA, not TLS at all…).
 * Undefined when the handshake succeeds.
 */
function tlsProblem(s: ConnectionSettings): Promise<string | undefined> {
  const tlsOpts = s.tls;
  if (!tlsOpts) return Promise.resolve(undefined);
  const i = s.address.lastIndexOf(':');
  const host = s.address.slice(0, i).replace(/^\[|\]$/g, '');
  const servername = tlsOpts.serverNameOverride ?? (net.isIP(host) ? undefined : host);
  return new Promise((resolve) => {
    const sock = tls.connect({
      host,
      port: Number(s.address.slice(i + 1)),
      ...(servername ? { servername } : {}),
      ...(tlsOpts.serverRootCACertificate ? { ca: Buffer.from(tlsOpts.serverRootCACertificate) } : {}),
      ...(tlsOpts.clientCertPair
        ? { cert: Buffer.from(tlsOpts.clientCertPair.crt), key: Buffer.from(tlsOpts.clientCertPair.key) }
        : {}),
      ALPNProtocols: ['h2'],
    });
    let settled = false;
    const done = (why: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(why);
    };
    // TLS 1.3 servers refuse a missing client certificate just after the handshake: wait a little.
    sock.once('secureConnect', () => setTimeout(() => done(undefined), 500).unref());
    sock.once('error', (err: NodeJS.ErrnoException) => done(`TLS handshake: ${tlsReason(err)}`));
    // Some servers close without an alert when they refuse the client certificate.
    sock.once('close', () =>
      done(
        tlsOpts.clientCertPair
          ? 'TLS handshake: the server closed the connection: it refused the client certificate'
          : 'TLS handshake: the server closed the connection: it may require a client certificate',
      ),
    );
    const timer = setTimeout(() => done(undefined), 3000);
    timer.unref();
  });
}

/** What a node:tls handshake error means for the settings, in a few words. */
function tlsReason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER')
    return 'the server does not speak TLS (turn TLS off, or use its TLS port)';
  if (code.includes('CERTIFICATE_REQUIRED'))
    return 'the server requires a client certificate (tls.clientCertFile, clientKeyFile)';
  if (/BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|DECRYPT_ERROR/.test(code))
    return 'the server refused the client certificate';
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code))
    return "the server's certificate is not signed by a trusted CA (tls.serverCaCertFile)";
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return "the server's certificate names another host (tls.serverName)";
  if (code === 'CERT_HAS_EXPIRED') return "the server's certificate has expired";
  return `${code ? `${code}: ` : ''}${err.message.split('\n')[0]}`;
}

async function unavailable(s: ConnectionSettings, cause: unknown): Promise<TemporalUnavailableError> {
  const why = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0];
  const problem = await tlsProblem(s).catch(() => undefined);
  return new TemporalUnavailableError(
    `cannot connect to Temporal at ${s.describe}: ${problem ? `${problem} (${why})` : why}`,
    { cause },
  );
}

/** Options for `Connection.connect`, e.g. to add interceptors (keep the defaults' retry interceptor). */
export function clientConnectionOptions(
  s: ConnectionSettings,
  extra: Partial<ConnectionOptions> = {},
): ConnectionOptions {
  return {
    address: s.address,
    tls: s.tls ?? false,
    ...(s.apiKey ? { apiKey: s.apiKey } : {}),
    ...(s.metadata ? { metadata: s.metadata } : {}),
    ...extra,
  };
}

/** A client connection; TemporalUnavailableError when the server cannot be reached or refuses it. */
export async function connectClient(
  s: ConnectionSettings,
  extra: Partial<ConnectionOptions> = {},
): Promise<Connection> {
  try {
    return await Connection.connect(clientConnectionOptions(s, extra));
  } catch (cause) {
    throw await unavailable(s, cause);
  }
}

/** A worker connection (Rust core); loads @temporalio/worker. TemporalUnavailableError as connectClient. */
export async function connectNative(s: ConnectionSettings): Promise<NativeConnection> {
  const { NativeConnection } = await import('@temporalio/worker');
  try {
    return await NativeConnection.connect({
      address: s.address,
      tls: s.tls ?? false,
      ...(s.apiKey ? { apiKey: s.apiKey } : {}),
      ...(s.metadata ? { metadata: s.metadata } : {}),
    });
  } catch (cause) {
    throw await unavailable(s, cause);
  }
}
