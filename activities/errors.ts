/**
 * Activity-side error helpers. The errors themselves are defined once, from one table, in
 * shared/errors.ts (workflows import them from there); activities import them from here.
 */
export * from '../shared/errors.js';

/** Render a path for messages without lossy decoding (non-UTF-8 bytes as \xNN). */
export function showPath(p: string | Buffer): string {
  if (typeof p === 'string') return JSON.stringify(p);
  let out = '';
  const s = p.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(p)) return JSON.stringify(s);
  for (const b of p) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return `"${out}"`;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);
/** True when `err` (or a cause) says a server could not be reached or dropped the connection. */
export function isNetworkError(err: unknown): boolean {
  let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 6; depth++, e = e.cause as typeof e) {
    if (
      (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) ||
      e.name === 'TimeoutError' ||
      e.name === 'ConnectTimeoutError'
    )
      return true;
  }
  return false;
}
