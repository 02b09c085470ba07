/**
 * The one rule set that turns an HTTP status into a typed error, for providers and for remote
 * sources alike; the two sides differ only in which class each kind maps to.
 *
 *   status                          kind          provider side               source side
 *   401, 403                        auth          ProviderAuthError           SourceAccessDeniedError
 *   404, 410                        not-found     PieceNotFoundError          SourceNotFoundError
 *   408, 425, 429, 5xx              unavailable   ProviderUnavailableError    SourceUnavailableError
 *   any other (other 4xx, 3xx)      refused       StoreError on a write,      UnsupportedSourceError
 *                                                 else ProviderUnavailableError
 *
 * On an RPC endpoint (`endpoint: 'rpc'`: Kubo, Lotus, one URL for every call) 404 and 405 say
 * the URL is not the API, not that a piece is missing: unavailable; and 500 is how the command
 * itself failed (Kubo answers every failed command so): refused, like other 4xx.
 *
 * auth, not-found and a refused source are not retryable; unavailable is. A provider's refused
 * request stays retryable (nothing was stored; the put's attempts are bounded and the workflow
 * fails over to another provider). A caller whose protocol gives a status a narrower meaning
 * decides that first and says so where it does (an S3 source's 404 for a listed object means it
 * changed since the listing; Lotus's piece endpoint answers 400 to bytes that miss the piece CID).
 */
import {
  PieceNotFoundError,
  ProviderAuthError,
  ProviderUnavailableError,
  type ProvenantError,
  SourceAccessDeniedError,
  SourceNotFoundError,
  SourceUnavailableError,
  StoreError,
  UnsupportedSourceError,
} from '../../errors.js';

export type HttpStatusKind = 'auth' | 'not-found' | 'unavailable' | 'refused';

/** What a provider call was doing; writes fail with StoreError (nothing stored), the rest as unavailable. */
export type ProviderOp = 'put' | 'read' | 'status' | 'locate' | 'delete' | 'renew';
const WRITES: ReadonlySet<ProviderOp> = new Set(['put', 'delete', 'renew']);

export function httpStatusKind(status: number): HttpStatusKind {
  if (status === 401 || status === 403) return 'auth';
  if (status === 404 || status === 410) return 'not-found';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'unavailable';
  return 'refused';
}

function rpcStatusKind(status: number): HttpStatusKind {
  if (status === 404 || status === 405) return 'unavailable';
  if (status === 500) return 'refused';
  return httpStatusKind(status);
}

export type HttpErrorContext =
  | { side: 'provider'; op: ProviderOp; endpoint?: 'rpc'; message: string; cause?: unknown }
  | { side: 'source'; message: string; cause?: unknown };

type ErrorClass = new (message: string, options?: { cause?: unknown }) => ProvenantError;
const CLASSES: Record<'provider' | 'source', Record<HttpStatusKind, ErrorClass>> = {
  provider: {
    auth: ProviderAuthError,
    'not-found': PieceNotFoundError,
    unavailable: ProviderUnavailableError,
    refused: StoreError,
  },
  source: {
    auth: SourceAccessDeniedError,
    'not-found': SourceNotFoundError,
    unavailable: SourceUnavailableError,
    refused: UnsupportedSourceError,
  },
};

/** The typed error for an HTTP `status`; the message gets `HTTP <status>` prepended. */
export function httpStatusError(status: number, ctx: HttpErrorContext): ProvenantError {
  const kind = ctx.side === 'provider' && ctx.endpoint === 'rpc' ? rpcStatusKind(status) : httpStatusKind(status);
  const message = `HTTP ${status}: ${ctx.message}`;
  if (ctx.side === 'provider' && kind === 'refused') return providerFailure(ctx.op, message, ctx.cause);
  return new CLASSES[ctx.side][kind](message, { cause: ctx.cause });
}

/** A provider call that failed for no reason the rules above know: StoreError on a write, else unavailable. */
export function providerFailure(op: ProviderOp, message: string, cause?: unknown): ProvenantError {
  return WRITES.has(op) ? new StoreError(message, { cause }) : new ProviderUnavailableError(message, { cause });
}
