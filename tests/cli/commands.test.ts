/** The CLI's command registry: each lazily loaded command's usage line is its module's. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMMANDS } from '../../cli/commands/index.js';

describe('CLI command registry', () => {
  it('names each command with the usage line its module declares', async () => {
    assert.ok(Object.keys(COMMANDS).length >= 9);
    for (const [name, c] of Object.entries(COMMANDS)) {
      const loaded = await c.load();
      assert.equal(c.usage, loaded.usage, `${name}: the registry's usage line is stale`);
      assert.ok(loaded.usage.startsWith(`${name} `) || loaded.usage === name, `${name}: usage starts with its name`);
    }
  });
});
