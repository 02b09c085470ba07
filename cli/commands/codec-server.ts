/**
 * `provenant codec-server [--port N] [--host H] [--origin URL]...`: the payload codec's HTTP
 * endpoint, so that the Temporal Web UI and CLI show encrypted payloads decoded (Web UI: Settings →
 * Codec Server endpoint; CLI: `temporal workflow show --codec-endpoint http://127.0.0.1:8888`).
 *
 * Temporal's codec server protocol: POST …/encode and …/decode with JSON
 * `{"payloads": [{"metadata": {"<key>": "<base64>"}, "data": "<base64>"}]}`, answered in the same
 * shape. The UI sends `X-Namespace` (only the configured namespace is served) and calls from its
 * own origin, so CORS is answered for the origins allowed (by default the local dev server's UI).
 * It decrypts for whoever can reach it: it listens on loopback unless told otherwise.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { CodecKeyError } from '../../shared/errors.js';
import { codecOf } from '../../workers/codec.js';
import { UsageError } from '../kit.js';
import { command } from './run.js';

/** The origins of the Web UI of a local dev server (`temporal server start-dev`, ours included). */
export const DEV_UI_ORIGINS = ['http://localhost:8233', 'http://127.0.0.1:8233'];
const MAX_BODY_BYTES = 16 * 1024 * 1024;

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

export interface CodecServerOptions {
  host?: string;
  /** 0: any free port. */
  port?: number;
  /** The namespace served (requests naming another in X-Namespace are refused). */
  namespace: string;
  /** Origins answered with CORS headers ('*': any). */
  origins?: string[];
}

export interface CodecServer {
  url: string;
  close(): Promise<void>;
}

const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]),
  ),
  data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

function readBody(req: http.IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (b: Buffer) => {
      n += b.length;
      if (n > MAX_BODY_BYTES) {
        resolve(undefined);
        req.destroy();
      } else parts.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/** Serve `codec` over HTTP until closed. */
export async function startCodecServer(codec: PayloadCodec, o: CodecServerOptions): Promise<CodecServer> {
  const origins = o.origins?.length ? o.origins : DEV_UI_ORIGINS;
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    if (origin && (origins.includes('*') || origins.includes(origin))) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Vary', 'Origin');
    }
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'OPTIONS') {
      res.writeHead(204);
      res.end();
      return;
    }
    const route = /\/(encode|decode)\/?$/.exec(new URL(req.url ?? '/', 'http://x').pathname)?.[1];
    if (!route) return send(404, { error: 'not found: POST /encode or /decode' });
    if (req.method !== 'POST') return send(405, { error: 'method not allowed: POST only' });
    const ns = req.headers['x-namespace'];
    if (typeof ns === 'string' && ns !== '' && ns !== o.namespace)
      return send(403, { error: `namespace '${ns}' is not served here (only '${o.namespace}')` });
    void (async () => {
      const text = await readBody(req);
      if (text === undefined) return send(413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
      let payloads: Payload[];
      try {
        const body = JSON.parse(text) as { payloads?: unknown };
        if (!Array.isArray(body.payloads)) throw new Error('expected {"payloads": [...]}');
        payloads = (body.payloads as JsonPayload[]).map(fromJson);
      } catch (err) {
        return send(400, { error: `bad request: ${(err as Error).message}` });
      }
      try {
        const out = route === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
        send(200, { payloads: out.map(toJson) });
      } catch (err) {
        send(400, { error: `${(err as Error).name}: ${(err as Error).message}` });
      }
    })().catch((err: unknown) => send(500, { error: String(err) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8888, o.host ?? '127.0.0.1', () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export const codecServerCommand = command(
  'codec-server [--port N] [--host H] [--origin URL]...   decode encrypted payloads for the Web UI and CLI',
  { port: { type: 'string' }, host: { type: 'string' }, origin: { type: 'string', multiple: true } },
  async ({ config, out, values }) => {
    const port = values.port === undefined ? 8888 : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--port must be a port number, not '${String(values.port)}'`);
    const codec = codecOf(config);
    if (!codec)
      throw new CodecKeyError(
        'no codec keys configured: set PROVENANT_CODEC_KEYS_FILE (or codec.keysFile in the config)',
      );
    const s = await startCodecServer(codec, {
      port,
      host: values.host as string | undefined,
      namespace: config.temporal.namespace,
      origins: values.origin as string[] | undefined,
    });
    out.info(`provenant codec-server: ${s.url} (namespace ${config.temporal.namespace}, key ${codec.currentKeyId})`);
    out.result({ url: s.url, namespace: config.temporal.namespace, keyId: codec.currentKeyId }, s.url);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await s.close();
  },
);
