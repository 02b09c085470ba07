/**
 * A fault-injecting HTTP proxy for the reliability suites: put in front of a real server (MinIO,
 * Kubo, an HTTP source, the simulated Filecoin endpoints), it forwards every request, and a
 * seeded share of them (30 % by default) gets one fault:
 *
 *   5xx       a 503 answer; the request never reaches the server;
 *   reset     the connection is destroyed, before forwarding or after (the server did the work,
 *             the answer is lost);
 *   stall     no answer for `stallMs` (past the client's timeout), then the connection is destroyed;
 *   slow      the answer, its body dribbled out in small chunks with pauses;
 *   truncate  the answer's headers (its Content-Length kept), half its body, then a reset;
 *   bitflip   the answer with one bit flipped in its body, length unchanged.
 *
 * truncate and bitflip are for data: they apply to successful answers of at least
 * `minDataBytes` that are not JSON (piece reads, file reads); on any other answer the fault
 * becomes a 5xx. The same seed gives the same faults for the same sequence of requests.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultKind = '5xx' | 'reset' | 'stall' | 'slow' | 'truncate' | 'bitflip';
export const FAULT_KINDS: readonly FaultKind[] = ['5xx', 'reset', 'stall', 'slow', 'truncate', 'bitflip'];

export interface FaultProxyOptions {
  /** The server proxied, e.g. http://127.0.0.1:9000. */
  target: string;
  seed: string;
  /** Share of requests that get a fault. */
  rate?: number;
  kinds?: readonly FaultKind[];
  /** How long a stalled request hangs before its connection is dropped. */
  stallMs?: number;
  minDataBytes?: number;
  /** Only requests this returns true for may get a fault (all by default). */
  eligible?: (req: http.IncomingMessage) => boolean;
}

/** Seeded uniform numbers in [0, 1): sha256 of seed/counter. */
function rng(seed: string): () => number {
  let i = 0;
  return () => crypto.createHash('sha256').update(`${seed}/${i++}`).digest().readUInt32BE(0) / 2 ** 32;
}

async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export class FaultProxy {
  readonly counts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  requests = 0;
  /** Faults may be turned off (e.g. to check what the servers hold at the end). */
  enabled = true;
  url = '';
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly random: () => number;
  private readonly target: URL;

  private constructor(
    private readonly o: Required<Omit<FaultProxyOptions, 'eligible'>> & Pick<FaultProxyOptions, 'eligible'>,
    private readonly server: http.Server,
  ) {
    this.random = rng(o.seed);
    this.target = new URL(o.target);
  }

  static async start(o: FaultProxyOptions): Promise<FaultProxy> {
    const server = http.createServer();
    const proxy = new FaultProxy({ rate: 0.3, kinds: FAULT_KINDS, stallMs: 8_000, minDataBytes: 4096, ...o }, server);
    server.on('request', (req, res) => {
      proxy.handle(req, res).catch(() => res.destroy());
    });
    server.on('connection', (s) => {
      proxy.sockets.add(s);
      s.once('close', () => proxy.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return proxy;
  }

  /** Faults injected, all kinds. */
  get injected(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private pick(req: http.IncomingMessage): FaultKind | undefined {
    this.requests++;
    // Two draws per request whatever happens, so the sequence depends on the request count only.
    const [a, b] = [this.random(), this.random()];
    if (!this.enabled || a >= this.o.rate || (this.o.eligible && !this.o.eligible(req))) return undefined;
    return this.o.kinds[Math.floor(b * this.o.kinds.length)];
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let fault = this.pick(req);
    const body = await readAll(req);
    const count = (k: FaultKind) => this.counts[k]++;
    if (fault === '5xx') {
      count('5xx');
      return void res.writeHead(503, { 'content-type': 'text/plain' }).end('injected fault');
    }
    if (fault === 'stall') {
      count('stall');
      return this.later(this.o.stallMs, () => res.destroy());
    }
    const resetAfter = fault === 'reset' && this.random() < 0.5;
    if (fault === 'reset' && !resetAfter) {
      count('reset');
      return void req.socket.destroy();
    }
    const up = await this.forward(req, body).catch(() => undefined);
    if (!up) return void res.destroy();
    if (fault === 'reset') {
      count('reset');
      up.resume();
      return void req.socket.destroy();
    }
    const headers = { ...up.headers };
    const data = fault === 'truncate' || fault === 'bitflip' ? await readAll(up) : undefined;
    if (data) {
      const json = /json/i.test(String(headers['content-type'] ?? ''));
      const ok = (up.statusCode ?? 0) >= 200 && (up.statusCode ?? 0) < 300;
      if (!ok || json || data.length < this.o.minDataBytes) fault = '5xx';
    }
    if (fault === '5xx') {
      count('5xx');
      return void res.writeHead(503, { 'content-type': 'text/plain' }).end('injected fault');
    }
    if (fault === 'truncate') {
      count('truncate');
      // The whole length announced, half of it sent: the client must see the body end early.
      delete headers['transfer-encoding'];
      headers['content-length'] = String(data!.length);
      res.writeHead(up.statusCode!, headers);
      res.write(data!.subarray(0, Math.floor(data!.length / 2)));
      return this.later(20, () => res.destroy());
    }
    if (fault === 'bitflip') {
      count('bitflip');
      const flipped = Buffer.from(data!);
      const at = Math.floor(this.random() * flipped.length);
      flipped[at]! ^= 1 << Math.floor(this.random() * 8);
      delete headers['transfer-encoding'];
      headers['content-length'] = String(flipped.length);
      res.writeHead(up.statusCode!, headers);
      return void res.end(flipped);
    }
    res.writeHead(up.statusCode!, up.headers);
    if (fault === 'slow') {
      count('slow');
      for await (const chunk of up as AsyncIterable<Buffer>) {
        for (let i = 0; i < chunk.length; i += 64 * 1024) {
          res.write(chunk.subarray(i, i + 64 * 1024));
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      return void res.end();
    }
    up.pipe(res);
  }

  private forward(req: http.IncomingMessage, body: Buffer): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      // The Host header is passed on as it is: S3 signs it.
      const headers = { ...req.headers };
      const out = http.request(
        {
          host: this.target.hostname,
          port: this.target.port,
          method: req.method,
          path: req.url,
          headers,
        },
        resolve,
      );
      out.once('error', reject);
      out.end(body);
    });
  }
}
