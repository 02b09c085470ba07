/** The error table is the one source: classes, revive registry, non-retryable list and benign-ness agree with it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import * as errors from '../../shared/errors.js';
import {
  BENIGN_ERROR_TYPES,
  CommitPendingError,
  ConfigError,
  ERROR_TABLE,
  IntegrityError,
  NON_RETRYABLE_ERROR_TYPES,
  ProvenantError,
  reviveError,
  StoreError,
  toFailure,
  type ErrorName,
} from '../../shared/errors.js';

const names = Object.keys(ERROR_TABLE) as ErrorName[];

describe('error table', () => {
  it('exports one class per row, whose name and retryability come from the row', () => {
    for (const name of names) {
      const C = (errors as unknown as Record<string, new (m: string) => ProvenantError>)[name];
      assert.ok(C, `no class exported for ${name}`);
      const e = name === 'ConfigError' ? new ConfigError('x', []) : new C('x');
      assert.equal(e.name, name);
      assert.equal(e.retryable, ERROR_TABLE[name].retryable, name);
      assert.ok(e instanceof ProvenantError);
    }
  });

  it('derives the non-retryable list and the benign list from the table', () => {
    assert.deepEqual([...NON_RETRYABLE_ERROR_TYPES].sort(), names.filter((n) => !ERROR_TABLE[n].retryable).sort());
    assert.ok(BENIGN_ERROR_TYPES.includes('CommitPendingError'));
    assert.ok(BENIGN_ERROR_TYPES.includes('RenewalPendingError'));
    for (const n of BENIGN_ERROR_TYPES)
      assert.equal(ERROR_TABLE[n].retryable, true, `${n} is benign but not retryable`);
  });

  it('is() narrows to the class it is called on, not to any ProvenantError', () => {
    const e: unknown = new StoreError('nothing stored');
    assert.equal(StoreError.is(e), true);
    assert.equal(IntegrityError.is(e), false);
    assert.equal(ProvenantError.is(e), true);
    assert.equal(StoreError.is(new Error('plain')), false);
  });

  it('toJSON keeps the cause', () => {
    const inner = new IntegrityError('bad block');
    const outer = new StoreError('could not store', { cause: inner });
    const json = outer.toJSON();
    assert.equal(json.name, 'StoreError');
    assert.deepEqual(json.cause, { name: 'IntegrityError', message: 'bad block', retryable: false });
    assert.deepEqual(new StoreError('x', { cause: new TypeError('t') }).toJSON().cause, {
      name: 'TypeError',
      message: 't',
    });
  });

  it('revives every row to its own class, and unknown names to a plain Error with that name', () => {
    for (const name of names) {
      const e = reviveError({ name, message: 'm' });
      assert.equal(e.name, name);
      assert.ok(e instanceof ProvenantError, name);
    }
    const other = reviveError({ name: 'EACCES', message: 'm' });
    assert.equal(other.name, 'EACCES');
    assert.ok(!(other instanceof ProvenantError));
  });

  it('toFailure carries type and retryability, and marks chain waits BENIGN', () => {
    const f = toFailure(new IntegrityError('bad')) as ApplicationFailure;
    assert.ok(f instanceof ApplicationFailure);
    assert.equal(f.type, 'IntegrityError');
    assert.equal(f.nonRetryable, true);
    assert.notEqual(f.category, ApplicationFailureCategory.BENIGN);
    const wait = toFailure(new CommitPendingError('not landed')) as ApplicationFailure;
    assert.equal(wait.type, 'CommitPendingError');
    assert.equal(wait.nonRetryable, false);
    assert.equal(wait.category, ApplicationFailureCategory.BENIGN);
    const plain = new Error('x');
    assert.equal(toFailure(plain), plain);
  });
});
