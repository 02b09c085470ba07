/**
 * The one error hierarchy. Each error names the state of the data, carries context in its
 * message (`[provider=…, piece=…]`) and its cause, and says whether retrying can help.
 * At the activity boundary `toFailure` turns it into an ApplicationFailure whose `type` is the
 * error's name, so workflows and clients can branch on the type, never on message text.
 */
import { ApplicationFailure } from '@temporalio/common';

export abstract class ProvenantError extends Error {
  /** Whether a retry of the same call may succeed (transient). */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  static is(value: unknown): value is ProvenantError {
    return value instanceof ProvenantError;
  }
  toJSON(): Record<string, unknown> {
    return { name: this.name, message: this.message, retryable: this.retryable };
  }
}

function define<N extends string>(name: N, retryable: boolean) {
  const C = class extends ProvenantError {
    override readonly name: string = name;
    readonly retryable = retryable;
    static override is(value: unknown): value is ProvenantError {
      return value instanceof ProvenantError && value.name === name;
    }
  };
  Object.defineProperty(C, 'name', { value: name });
  return C;
}

// ---- configuration and requests -------------------------------------------------------------
export class ConfigError extends ProvenantError {
  override readonly name = 'ConfigError';
  readonly retryable = false;
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
export class UnknownProviderError extends define('UnknownProviderError', false) {}
export class PolicyUnsatisfiableError extends define('PolicyUnsatisfiableError', false) {}

// ---- source (nothing read yet or the source is unusable) ----------------------------------
export class SourceNotFoundError extends define('SourceNotFoundError', false) {}
export class NotADirectoryError extends define('NotADirectoryError', false) {}
export class EmptyDatasetError extends define('EmptyDatasetError', false) {}
export class UnreadableFileError extends define('UnreadableFileError', false) {}
export class SymlinkLoopError extends define('SymlinkLoopError', false) {}
export class SymlinkEscapesRootError extends define('SymlinkEscapesRootError', false) {}
export class BrokenSymlinkError extends define('BrokenSymlinkError', false) {}
export class InvalidFileNameError extends define('InvalidFileNameError', false) {}
/** The file changed between scan and read, or while it was read: the archive would be wrong. */
export class FileChangedError extends define('FileChangedError', false) {}

// ---- staging and packing ------------------------------------------------------------------
export class StagingMissingError extends define('StagingMissingError', false) {}
export class PieceSizeExceededError extends define('PieceSizeExceededError', false) {}

// ---- providers: StoreError = nothing stored; IntegrityError = stored bytes are wrong --------
export class StoreError extends define('StoreError', true) {}
export class ProviderUnavailableError extends define('ProviderUnavailableError', true) {}
export class PieceNotFoundError extends define('PieceNotFoundError', false) {}
export class IntegrityError extends define('IntegrityError', false) {}

// ---- restore ------------------------------------------------------------------------------
export class ManifestNotFoundError extends define('ManifestNotFoundError', false) {}
export class ManifestInvalidError extends define('ManifestInvalidError', false) {}
export class NoHealthyReplicaError extends define('NoHealthyReplicaError', false) {}
export class TargetNotEmptyError extends define('TargetNotEmptyError', false) {}
export class PathEscapeError extends define('PathEscapeError', false) {}

/** Every error type that no retry can fix; workflows list these as non-retryable. */
export { NON_RETRYABLE as NON_RETRYABLE_ERROR_TYPES } from '../workflows/failure-types.js';

/** Turn any thrown value into what an activity should throw to Temporal. */
export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (ProvenantError.is(err)) {
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nonRetryable: !err.retryable,
      cause: err.cause instanceof Error ? err.cause : undefined,
    });
  }
  return err;
}

/** Rebuild a typed error from a {name, message} pair (e.g. sent from a worker thread). */
const registry: Record<string, new (message: string) => ProvenantError> = {};
for (const C of [
  UnknownProviderError, PolicyUnsatisfiableError, SourceNotFoundError, NotADirectoryError,
  EmptyDatasetError, UnreadableFileError, SymlinkLoopError, SymlinkEscapesRootError,
  BrokenSymlinkError, InvalidFileNameError, FileChangedError, StagingMissingError,
  PieceSizeExceededError, StoreError, ProviderUnavailableError, PieceNotFoundError,
  IntegrityError, ManifestNotFoundError, ManifestInvalidError, NoHealthyReplicaError,
  TargetNotEmptyError, PathEscapeError,
]) {
  registry[C.name] = C as unknown as new (message: string) => ProvenantError;
}
export function reviveError(e: { name: string; message: string; stack?: string }): Error {
  const C = registry[e.name];
  const err = C ? new C(e.message) : Object.assign(new Error(e.message), { name: e.name });
  if (e.stack) err.stack = e.stack;
  return err;
}

/** Render a path for messages without lossy decoding (non-UTF-8 bytes as \xNN). */
export function showPath(p: string | Buffer): string {
  if (typeof p === 'string') return JSON.stringify(p);
  let out = '';
  const s = p.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(p)) return JSON.stringify(s);
  for (const b of p) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return `"${out}"`;
}

// ---- providers: refused before anything was stored (a retry cannot help; fix the config) -----
/** The provider rejected the credentials, or they may not touch this bucket or API. */
export class ProviderAuthError extends define('ProviderAuthError', false) {}
/** The configured bucket does not exist. */
export class BucketNotFoundError extends define('BucketNotFoundError', false) {}
for (const C of [ProviderAuthError, BucketNotFoundError]) {
  registry[C.name] = C as unknown as new (message: string) => ProvenantError;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);
/** True when `err` (or a cause) says a server could not be reached or dropped the connection. */
export function isNetworkError(err: unknown): boolean {
  let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 6; depth++, e = e.cause as typeof e) {
    if ((typeof e.code === 'string' && NETWORK_CODES.has(e.code)) || e.name === 'TimeoutError' || e.name === 'ConnectTimeoutError') return true;
  }
  return false;
}

// ---- remote sources (S3 prefixes, HTTP URLs) mirrored into staging before the scan ---------
/** The source refused the credentials, or they may not read this bucket or URL. */
export class SourceAccessDeniedError extends define('SourceAccessDeniedError', false) {}
/** The source could not be read completely right now (5xx, 429, network, cut-off transfer). */
export class SourceUnavailableError extends define('SourceUnavailableError', true) {}
/** An object changed or vanished between its listing and its download; a retry lists again. */
export class SourceChangedError extends define('SourceChangedError', true) {}
/** Two source entries claim the same path, or one is a file and a directory prefix at once. */
export class PathConflictError extends define('PathConflictError', false) {}
/** The source answers in a way that cannot be archived faithfully (e.g. an HTTP 400, content-encoded bytes). */
export class UnsupportedSourceError extends define('UnsupportedSourceError', false) {}
for (const C of [SourceAccessDeniedError, SourceUnavailableError, SourceChangedError, PathConflictError, UnsupportedSourceError]) {
  registry[C.name] = C as unknown as new (message: string) => ProvenantError;
}

// ---- Filecoin providers (Synapse/PDP, Lotus deals) --------------------------------------------
/** The piece is stored at the provider and its on-chain commit was sent but has not landed yet. */
export class CommitPendingError extends define('CommitPendingError', true) {}
/** A renewal (deposit top-up, claim extension, new deal) was sent but has not landed yet. */
export class RenewalPendingError extends define('RenewalPendingError', true) {}
/** The wallet cannot pay: too little balance or deposit for the lockup the storage needs. */
export class InsufficientFundsError extends define('InsufficientFundsError', false) {}
/** The provider keeps the piece until its deal ends: a client cannot remove a Filecoin deal. */
export class DeletionUnsupportedError extends define('DeletionUnsupportedError', false) {}
for (const C of [CommitPendingError, RenewalPendingError, InsufficientFundsError, DeletionUnsupportedError]) {
  registry[C.name] = C as unknown as new (message: string) => ProvenantError;
}
