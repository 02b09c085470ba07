import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { safeJoin } from '../../../activities/restore/restore.js';

const escape = (e: unknown) => e instanceof Error && e.name === 'PathEscapeError';

describe('restore paths', () => {
  it('joins ordinary relative paths below the target', () => {
    assert.equal(safeJoin('/restore', 'a/b c/ü.txt'), path.join('/restore', 'a', 'b c', 'ü.txt'));
  });
  it('refuses any path that would escape the target with PathEscapeError', () => {
    for (const rel of ['..', '../x', 'a/../../x', 'a/./b', '/etc/passwd', 'a//b', 'a\\..\\b', 'nul\0byte']) {
      assert.throws(() => safeJoin('/restore', rel), escape, rel);
    }
  });
});
