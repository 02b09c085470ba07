/**
 * Reading a byte range of a piece over HTTP (`GET <url>` with a Range header, as Boost, Curio and
 * PDP providers serve `/piece/<cid>`), for the Filecoin providers.
 */
import { ProviderUnavailableError } from '../errors.js';
import { httpStatusError } from './kit/http-status.js';

/** fetch, with a timeout that runs until the response headers (a streamed body may take longer). */
export async function fetchWithTimeout(url: URL | string, init: RequestInit, timeoutMs: number): Promise<Response> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new DOMException('request timed out', 'TimeoutError')), timeoutMs);
  try {
    return await fetch(url, {
      ...init,
      signal: init.signal ? AbortSignal.any([init.signal, timeout.signal]) : timeout.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

export interface PieceRangeOptions {
  /** First and last byte wanted (inclusive); the caller has cut `last` at the piece's end. */
  offset: number;
  last: number;
  signal?: AbortSignal;
  timeoutMs: number;
  /** `[provider=…, piece=…]`, for messages. */
  where: string;
}

/**
 * The bytes [offset, last] of a piece served over HTTP. 416 (offset past the end) yields nothing;
 * other failures follow the kit's HTTP status rules; a network failure or a body that breaks off
 * is ProviderUnavailableError; an abort by the caller's signal is passed on as it is.
 */
export async function* readPieceRange(url: URL, o: PieceRangeOptions): AsyncGenerator<Buffer> {
  let res: Response;
  try {
    res = await fetchWithTimeout(
      url,
      { headers: { Range: `bytes=${o.offset}-${o.last}` }, signal: o.signal },
      o.timeoutMs,
    );
  } catch (err) {
    if (o.signal?.aborted) throw err;
    throw new ProviderUnavailableError(`retrieval failed ${o.where}: ${(err as Error).message}`, { cause: err });
  }
  if (res.status === 416) return;
  if (res.status !== 206 && res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    throw httpStatusError(res.status, { side: 'provider', op: 'read', message: `retrieval ${o.where}` });
  }
  try {
    yield* rangeOfBody(res.body as unknown as AsyncIterable<Uint8Array>, {
      status: res.status,
      offset: o.offset,
      last: o.last,
    });
  } catch (err) {
    if (o.signal?.aborted) throw err;
    throw new ProviderUnavailableError(`retrieval broke off ${o.where}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The bytes [offset, last] of an HTTP piece retrieval, whether the server honoured the Range
 * header (206) or sent the whole piece (200).
 */
export async function* rangeOfBody(
  body: AsyncIterable<Uint8Array>,
  r: { status: number; offset: number; last: number },
): AsyncGenerator<Buffer> {
  let skip = r.status === 200 ? r.offset : 0; // a server that ignores Range sends everything
  let left = r.last - r.offset + 1;
  for await (const chunk of body) {
    let c = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (skip > 0) {
      const n = Math.min(skip, c.length);
      c = c.subarray(n);
      skip -= n;
    }
    if (c.length > left) c = c.subarray(0, left);
    left -= c.length;
    if (c.length > 0) yield c;
    if (left === 0) break;
  }
}
