/** Failure types no retry can fix (names of the classes in activities/errors.ts). Pure data: safe in workflows. */
export const NON_RETRYABLE = [
  'ConfigError', 'UnknownProviderError', 'PolicyUnsatisfiableError', 'SourceNotFoundError',
  'NotADirectoryError', 'EmptyDatasetError', 'UnreadableFileError', 'SymlinkLoopError',
  'SymlinkEscapesRootError', 'BrokenSymlinkError', 'InvalidFileNameError', 'FileChangedError',
  'StagingMissingError', 'PieceSizeExceededError', 'ManifestNotFoundError', 'ManifestInvalidError',
  'NoHealthyReplicaError', 'TargetNotEmptyError', 'PathEscapeError', 'PieceNotFoundError',
  'IntegrityError',
  'ProviderAuthError', 'BucketNotFoundError',
  'SourceAccessDeniedError', 'PathConflictError', 'UnsupportedSourceError',
  'InsufficientFundsError', 'DeletionUnsupportedError',
];
