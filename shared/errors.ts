/**
 * The one error hierarchy, derived from one table. Each error names the state of the data,
 * carries context in its message (`[provider=…, piece=…]`) and its cause, and says whether a
 * retry can help (`retryable`) and whether a failure of it is expected while waiting (`benign`:
 * a chain commit or renewal not landed yet, retried by Temporal without logging a failure).
 *
 * From the table derive: the classes below, `reviveError` (errors sent from worker threads), the
 * workflows' non-retryable list, and `toFailure` at the activity boundary, which turns an error
 * into an ApplicationFailure whose `type` is the error's name, so that workflows and clients
 * branch on the type, never on message text.
 *
 * Pure: imported by workflows (sandboxed) as well as activities, so no Node built-ins here.
 */
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';

interface ErrorSpec {
  readonly retryable: boolean;
  readonly benign?: boolean;
  /** What it means, for the docs and for whoever adds the next one. */
  readonly doc: string;
}

export const ERROR_TABLE = {
  // ---- configuration and requests -------------------------------------------------------
  ConfigError: { retryable: false, doc: 'the config or a request is invalid' },
  UnknownProviderError: { retryable: false, doc: 'a provider id that is not configured' },
  PolicyUnsatisfiableError: { retryable: false, doc: 'the placement policy cannot be met' },
  TemporalUnavailableError: {
    retryable: true,
    doc: 'the Temporal server cannot be reached or refused the connection (address, TLS, client certificate, API key)',
  },
  // ---- source: nothing read yet, or the source is unusable ------------------------------
  SourceNotFoundError: { retryable: false, doc: 'the source path or object does not exist' },
  NotADirectoryError: { retryable: false, doc: 'a local source is not a directory' },
  EmptyDatasetError: { retryable: false, doc: 'the source holds no file' },
  UnreadableFileError: { retryable: false, doc: 'a file of the source cannot be read' },
  SymlinkLoopError: { retryable: false, doc: 'symlinks of the source form a loop' },
  SymlinkEscapesRootError: { retryable: false, doc: 'a symlink points outside the source' },
  BrokenSymlinkError: { retryable: false, doc: 'a symlink points to nothing' },
  InvalidFileNameError: { retryable: false, doc: 'a file name cannot be archived faithfully' },
  FileChangedError: { retryable: false, doc: 'a file changed between scan and read: the archive would be wrong' },
  SourceAccessDeniedError: { retryable: false, doc: 'the source refused the credentials' },
  SourceUnavailableError: { retryable: true, doc: 'the source could not be read completely right now' },
  SourceChangedError: { retryable: true, doc: 'an object changed between its listing and its download' },
  PathConflictError: { retryable: false, doc: 'two source entries claim the same path' },
  UnsupportedSourceError: { retryable: false, doc: 'the source answers in a way that cannot be archived' },
  // ---- staging and packing ---------------------------------------------------------------
  StagingMissingError: { retryable: false, doc: 'a staged file is gone' },
  PieceSizeExceededError: { retryable: false, doc: 'a piece is larger than a provider takes' },
  // ---- providers: StoreError = nothing stored; IntegrityError = stored bytes are wrong ---
  StoreError: { retryable: true, doc: 'nothing was stored' },
  ProviderUnavailableError: { retryable: true, doc: 'the provider cannot be reached right now' },
  PieceNotFoundError: { retryable: false, doc: 'the provider does not hold the piece' },
  IntegrityError: { retryable: false, doc: 'bytes read back do not match their CID' },
  ProviderAuthError: { retryable: false, doc: 'the provider refused the credentials' },
  BucketNotFoundError: { retryable: false, doc: 'the configured bucket does not exist' },
  // ---- Filecoin providers ------------------------------------------------------------------
  CommitPendingError: { retryable: true, benign: true, doc: 'stored; its on-chain commit has not landed yet' },
  RenewalPendingError: { retryable: true, benign: true, doc: 'a renewal was sent and has not landed yet' },
  InsufficientFundsError: { retryable: false, doc: 'the wallet cannot pay for the storage' },
  DeletionUnsupportedError: { retryable: false, doc: 'a Filecoin deal cannot be removed by a client' },
  // ---- restore -------------------------------------------------------------------------------
  ManifestNotFoundError: { retryable: false, doc: 'no provider holds the manifest' },
  ManifestInvalidError: { retryable: false, doc: 'the manifest does not decode or does not hash to its CID' },
  NoHealthyReplicaError: { retryable: false, doc: 'no replica of a piece matches its CID' },
  TargetNotEmptyError: { retryable: false, doc: 'the restore target is not empty' },
  PathEscapeError: { retryable: false, doc: 'a manifest path would write outside the target' },
  PathNotInArchiveError: { retryable: false, doc: 'a requested path is not in the archive' },
  // ---- evidence ------------------------------------------------------------------------------
  SigningKeyError: { retryable: false, doc: 'the signing key cannot be read or is not Ed25519 or ECDSA P-256' },
  EvidenceInvalidError: { retryable: false, doc: 'an evidence bundle is malformed or fails a check' },
  // ---- payload codec ---------------------------------------------------------------------------
  CodecKeyError: { retryable: false, doc: 'the codec keys cannot be read, or a payload names a key id not among them' },
  PayloadDecryptError: { retryable: false, doc: 'an encrypted payload fails authentication: altered or truncated' },
  // ---- client-side encryption of shard data -----------------------------------------------------
  EncryptionKeyError: {
    retryable: false,
    doc: 'the key-encryption key is missing, unreadable or not the one that wrapped the dataset key',
  },
  EncryptionUnsupportedError: {
    retryable: false,
    doc: 'encrypted shards cannot go to this provider kind (Filecoin and Kubo check the bytes as the plaintext CAR)',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof ERROR_TABLE;

const names = Object.keys(ERROR_TABLE) as ErrorName[];
/** Every error type that no retry can fix; workflows list these as non-retryable. */
export const NON_RETRYABLE_ERROR_TYPES: readonly ErrorName[] = names.filter((n) => !ERROR_TABLE[n].retryable);
/** Error types that mean "not yet" (chain waits): reported to Temporal as BENIGN failures. */
export const BENIGN_ERROR_TYPES: readonly ErrorName[] = names.filter(
  (n) => (ERROR_TABLE[n] as ErrorSpec).benign === true,
);

function describeCause(cause: unknown): unknown {
  if (cause instanceof ProvenantError) return cause.toJSON();
  if (cause instanceof Error) return { name: cause.name, message: cause.message };
  return cause === undefined ? undefined : String(cause);
}

export abstract class ProvenantError extends Error {
  abstract override readonly name: ErrorName;
  /** Whether a retry of the same call may succeed (transient). */
  get retryable(): boolean {
    return ERROR_TABLE[this.name].retryable;
  }
  /** Whether this failure is an expected wait (see BENIGN_ERROR_TYPES). */
  get benign(): boolean {
    return (ERROR_TABLE[this.name] as ErrorSpec).benign === true;
  }
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  /** True for an instance of the class it is called on (`StoreError.is(e)` narrows to StoreError). */
  static is<T extends ProvenantError>(this: abstract new (...args: never[]) => T, value: unknown): value is T {
    return value instanceof this;
  }
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, message: this.message, retryable: this.retryable };
    if (this.benign) out.benign = true;
    if (this.cause !== undefined) out.cause = describeCause(this.cause);
    return out;
  }
}

function define<N extends ErrorName>(name: N) {
  const C = class extends ProvenantError {
    override readonly name: N = name;
  };
  Object.defineProperty(C, 'name', { value: name });
  return C;
}

// ---- configuration and requests -------------------------------------------------------------
export class ConfigError extends ProvenantError {
  override readonly name = 'ConfigError' as const;
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
export class UnknownProviderError extends define('UnknownProviderError') {}
export class PolicyUnsatisfiableError extends define('PolicyUnsatisfiableError') {}
/** Connecting to Temporal failed; the message names the address and the TLS settings tried. */
export class TemporalUnavailableError extends define('TemporalUnavailableError') {}

// ---- source ------------------------------------------------------------------------------------
export class SourceNotFoundError extends define('SourceNotFoundError') {}
export class NotADirectoryError extends define('NotADirectoryError') {}
export class EmptyDatasetError extends define('EmptyDatasetError') {}
export class UnreadableFileError extends define('UnreadableFileError') {}
export class SymlinkLoopError extends define('SymlinkLoopError') {}
export class SymlinkEscapesRootError extends define('SymlinkEscapesRootError') {}
export class BrokenSymlinkError extends define('BrokenSymlinkError') {}
export class InvalidFileNameError extends define('InvalidFileNameError') {}
/** The file changed between scan and read, or while it was read: the archive would be wrong. */
export class FileChangedError extends define('FileChangedError') {}
/** The source refused the credentials, or they may not read this bucket or URL. */
export class SourceAccessDeniedError extends define('SourceAccessDeniedError') {}
/** The source could not be read completely right now (5xx, 429, network, cut-off transfer). */
export class SourceUnavailableError extends define('SourceUnavailableError') {}
/** An object changed or vanished between its listing and its download; a retry lists again. */
export class SourceChangedError extends define('SourceChangedError') {}
/** Two source entries claim the same path, or one is a file and a directory prefix at once. */
export class PathConflictError extends define('PathConflictError') {}
/** The source answers in a way that cannot be archived faithfully (e.g. an HTTP 400, content-encoded bytes). */
export class UnsupportedSourceError extends define('UnsupportedSourceError') {}

// ---- staging and packing ------------------------------------------------------------------
export class StagingMissingError extends define('StagingMissingError') {}
export class PieceSizeExceededError extends define('PieceSizeExceededError') {}

// ---- providers -------------------------------------------------------------------------------
export class StoreError extends define('StoreError') {}
export class ProviderUnavailableError extends define('ProviderUnavailableError') {}
export class PieceNotFoundError extends define('PieceNotFoundError') {}
export class IntegrityError extends define('IntegrityError') {}
/** The provider rejected the credentials, or they may not touch this bucket or API. */
export class ProviderAuthError extends define('ProviderAuthError') {}
/** The configured bucket does not exist. */
export class BucketNotFoundError extends define('BucketNotFoundError') {}

// ---- Filecoin providers (Synapse/PDP, Lotus deals) --------------------------------------------
/** The piece is stored at the provider and its on-chain commit was sent but has not landed yet. */
export class CommitPendingError extends define('CommitPendingError') {}
/** A renewal (deposit top-up, claim extension, new deal) was sent but has not landed yet. */
export class RenewalPendingError extends define('RenewalPendingError') {}
/** The wallet cannot pay: too little balance or deposit for the lockup the storage needs. */
export class InsufficientFundsError extends define('InsufficientFundsError') {}
/** The provider keeps the piece until its deal ends: a client cannot remove a Filecoin deal. */
export class DeletionUnsupportedError extends define('DeletionUnsupportedError') {}

// ---- restore ------------------------------------------------------------------------------
export class ManifestNotFoundError extends define('ManifestNotFoundError') {}
export class ManifestInvalidError extends define('ManifestInvalidError') {}
export class NoHealthyReplicaError extends define('NoHealthyReplicaError') {}
export class TargetNotEmptyError extends define('TargetNotEmptyError') {}
export class PathEscapeError extends define('PathEscapeError') {}
/** A path asked for in a partial restore is neither a file nor a directory of the archive. */
export class PathNotInArchiveError extends define('PathNotInArchiveError') {}
// ---- evidence -----------------------------------------------------------------------------
export class SigningKeyError extends define('SigningKeyError') {}
export class EvidenceInvalidError extends define('EvidenceInvalidError') {}
// ---- payload codec -------------------------------------------------------------------------
export class CodecKeyError extends define('CodecKeyError') {}
export class PayloadDecryptError extends define('PayloadDecryptError') {}
// ---- client-side encryption of shard data ----------------------------------------------------
export class EncryptionKeyError extends define('EncryptionKeyError') {}
export class EncryptionUnsupportedError extends define('EncryptionUnsupportedError') {}

/** The class of every name in the table (ConfigError is revived without its issues). */
const CLASSES: { [N in ErrorName]: new (message: string, options?: { cause?: unknown }) => ProvenantError } = {
  ConfigError: class extends ConfigError {
    constructor(message: string, options?: { cause?: unknown }) {
      super(message, [], options);
    }
  },
  UnknownProviderError,
  PolicyUnsatisfiableError,
  TemporalUnavailableError,
  SourceNotFoundError,
  NotADirectoryError,
  EmptyDatasetError,
  UnreadableFileError,
  SymlinkLoopError,
  SymlinkEscapesRootError,
  BrokenSymlinkError,
  InvalidFileNameError,
  FileChangedError,
  SourceAccessDeniedError,
  SourceUnavailableError,
  SourceChangedError,
  PathConflictError,
  UnsupportedSourceError,
  StagingMissingError,
  PieceSizeExceededError,
  StoreError,
  ProviderUnavailableError,
  PieceNotFoundError,
  IntegrityError,
  ProviderAuthError,
  BucketNotFoundError,
  CommitPendingError,
  RenewalPendingError,
  InsufficientFundsError,
  DeletionUnsupportedError,
  ManifestNotFoundError,
  ManifestInvalidError,
  NoHealthyReplicaError,
  TargetNotEmptyError,
  PathEscapeError,
  PathNotInArchiveError,
  SigningKeyError,
  EvidenceInvalidError,
  CodecKeyError,
  PayloadDecryptError,
  EncryptionKeyError,
  EncryptionUnsupportedError,
};

export function isErrorName(name: string): name is ErrorName {
  return Object.prototype.hasOwnProperty.call(ERROR_TABLE, name);
}

/** Rebuild a typed error from a {name, message} pair (e.g. sent from a worker thread). */
export function reviveError(e: { name: string; message: string; stack?: string }): Error {
  const err = isErrorName(e.name)
    ? new CLASSES[e.name](e.message)
    : Object.assign(new Error(e.message), { name: e.name });
  if (e.stack) err.stack = e.stack;
  return err;
}

/** Turn any thrown value into what an activity should throw to Temporal. */
export function toFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ProvenantError) {
    return ApplicationFailure.create({
      type: err.name,
      message: err.message,
      nonRetryable: !err.retryable,
      cause: err.cause instanceof Error ? err.cause : undefined,
      ...(err.benign ? { category: ApplicationFailureCategory.BENIGN } : {}),
    });
  }
  return err;
}
