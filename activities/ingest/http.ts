/**
 * HTTP(S) URLs as a Source. Each URL becomes one file, named after the last segment of its path
 * (percent-decoded) or placed at the relative path given with it. The listing is a HEAD per URL
 * (Content-Length, Last-Modified); where HEAD is refused (a pre-signed GET URL answers 403, some
 * servers 405), the file's size and mtime come from the GET instead. Bytes are requested as they
 * are stored (`Accept-Encoding: identity`): a server that still compresses them is refused rather
 * than have the archive hold other bytes than the file.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { HttpSourceConfig } from '../../config/schema.js';
import { TOOL_NAME, TOOL_VERSION } from '../../version.js';
import { InvalidFileNameError, isNetworkError, SourceUnavailableError, UnsupportedSourceError } from '../errors.js';
import { requireEnv } from '../providers/kit/env.js';
import { httpStatusError } from '../providers/kit/http-status.js';
import {
  checkRelPath,
  compareUtf8,
  PathOrder,
  type ByteRange,
  type OpenedEntry,
  type Source,
  type SourceEntry,
} from './sources.js';

/** HEAD answers that say nothing about the file: the GET decides. */
const HEAD_REFUSED = new Set([403, 405, 501]);

/**
 * Where each URL goes in the mirror, sorted by path. Refuses, before any request, a URL without a
 * usable file name and paths that collide (the same path twice, a file that is also a directory).
 */
export function httpTargets(cfg: Pick<HttpSourceConfig, 'urls'>): { url: string; path: string }[] {
  const targets = cfg.urls
    .map((u) => {
      if (typeof u !== 'string') return { url: u.url, path: checkRelPath(u.path, u.url) };
      const last = new URL(u).pathname.split('/').pop() ?? '';
      let name: string;
      try {
        name = decodeURIComponent(last);
      } catch (err) {
        throw new InvalidFileNameError(`URL's file name is not valid percent-encoded UTF-8: ${u}`, { cause: err });
      }
      if (!name || name.includes('/'))
        throw new InvalidFileNameError(`URL has no file name to save it as (give it a path): ${u}`);
      return { url: u, path: checkRelPath(name, u) };
    })
    .sort((a, b) => compareUtf8(a.path, b.path));
  const order = new PathOrder();
  for (const t of targets) order.add({ path: t.path, ref: t.url });
  return targets;
}

export class HttpSource implements Source {
  readonly uri: string;
  private readonly targets: { url: string; path: string }[];
  private readonly headers: Record<string, string>;

  constructor(cfg: HttpSourceConfig, env: NodeJS.ProcessEnv = process.env) {
    this.uri = cfg.urls.map((u) => (typeof u === 'string' ? u : u.url)).join(' ');
    this.targets = httpTargets(cfg);
    this.headers = { 'accept-encoding': 'identity', 'user-agent': `${TOOL_NAME}/${TOOL_VERSION}` };
    if (cfg.authorizationEnv)
      this.headers.authorization = requireEnv(cfg.authorizationEnv, { path: 'source.authorizationEnv', env });
  }

  async *list(signal?: AbortSignal): AsyncIterable<SourceEntry> {
    for (const t of this.targets) {
      const res = await this.request('HEAD', t.url, signal);
      if (HEAD_REFUSED.has(res.status)) {
        yield { path: t.path, ref: t.url };
        continue;
      }
      if (!res.ok) throw typed(res.status, t.url);
      const encoded = isEncoded(res);
      yield { path: t.path, ref: t.url, ...(encoded ? {} : { size: contentLength(res) }), mtimeMs: lastModified(res) };
    }
  }

  async open(entry: SourceEntry, signal?: AbortSignal, range?: ByteRange): Promise<OpenedEntry> {
    const bytes = range && range.length > 0 ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined;
    const res = await this.request('GET', entry.ref, signal, bytes);
    if (!res.ok || !res.body || isEncoded(res)) {
      await res.body?.cancel().catch(() => {});
      if (!res.ok) throw typed(res.status, entry.ref);
      throw new UnsupportedSourceError(
        `server sent content-encoded bytes (${res.headers.get('content-encoding')}) despite Accept-Encoding: identity; the file's own bytes cannot be had [url=${entry.ref}]`,
      );
    }
    const body = Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>);
    if (bytes && res.status === 206) {
      const whole = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1];
      return { body, mtimeMs: lastModified(res), ...(whole ? { size: Number(whole) } : {}) };
    }
    // A server that ignores Range sends the whole file: the caller drops what precedes the range.
    return { body, size: contentLength(res), mtimeMs: lastModified(res), ...(bytes ? { skip: range!.offset } : {}) };
  }

  close(): void {}

  private async request(method: 'HEAD' | 'GET', url: string, signal?: AbortSignal, range?: string): Promise<Response> {
    try {
      const headers = range ? { ...this.headers, range } : this.headers;
      return await fetch(url, { method, headers, redirect: 'follow', signal });
    } catch (err) {
      if ((err as Error)?.name === 'AbortError') throw err;
      const why = isNetworkError(err) ? 'cannot reach' : 'request failed for';
      throw new SourceUnavailableError(
        `${why} ${url}: ${(err as Error)?.message}${(err as Error)?.cause ? ` (${((err as Error).cause as Error).message})` : ''}`,
        { cause: err },
      );
    }
  }
}

function typed(status: number, url: string): Error {
  return httpStatusError(status, { side: 'source', message: `[url=${url}]` });
}

function isEncoded(res: Response): boolean {
  const enc = res.headers.get('content-encoding');
  return !!enc && enc.toLowerCase() !== 'identity';
}

function contentLength(res: Response): number | undefined {
  const v = res.headers.get('content-length');
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}

function lastModified(res: Response): number | undefined {
  const v = res.headers.get('last-modified');
  const t = v ? Date.parse(v) : NaN;
  return Number.isFinite(t) ? t : undefined;
}
