/** `provenant export --format hf-card`: Hugging Face front matter from the manifest meta, and a Provenance section. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hfCard } from '../../activities/evidence/hf-card.js';
import type { ManifestFacts } from '../../activities/evidence/manifest-facts.js';

function facts(meta: Record<string, string>, derivedFrom: string[] = []): ManifestFacts {
  return {
    manifestCid: 'bafyreimanifest',
    providerId: 'local-0',
    manifestPieceCid: 'bafkzcibmanifestpiece',
    datasetId: 'llama-ft',
    rootCid: 'bafybeiroot',
    createdAt: '2025-01-02T03:04:05.000Z',
    source: { kind: 'dir', uri: 'file:///data/llama-ft' },
    meta,
    derivedFrom,
    tool: { name: 'provenant', version: '0.1.0' },
    totals: { files: 2, bytes: 10, shards: 2, carBytes: 100 },
    shards: [
      { index: 0, pieceCid: 'bafkzcibpiece0', carCid: 'bagcar0', rootCid: 'bafyr0', carBytes: 50 },
      { index: 1, pieceCid: 'bafkzcibpiece1', carCid: 'bagcar1', rootCid: 'bafyr1', carBytes: 50 },
    ],
    files: [],
  };
}

/** The front matter as key → value lines, and the body after it. */
function split(card: string): { front: string[]; body: string } {
  const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(card);
  assert.ok(m, `no front matter in:\n${card}`);
  return { front: m[1]!.split('\n'), body: m[2]! };
}

describe('Hugging Face card export', () => {
  it('puts license, datasets and base_model from the meta in the front matter', () => {
    const { front } = split(
      hfCard(facts({ license: 'apache-2.0', datasets: 'org/a, org/b', base_model: 'meta-llama/Llama-3.1-8B' })),
    );
    assert.deepEqual(front, [
      'license: "apache-2.0"',
      'datasets:',
      '- "org/a"',
      '- "org/b"',
      'base_model: "meta-llama/Llama-3.1-8B"',
    ]);
  });

  it('lists several base models, and leaves out fields the meta does not give', () => {
    const { front } = split(hfCard(facts({ base_model: 'a/one,b/two', run: 'not-a-card-field' })));
    assert.deepEqual(front, ['base_model:', '- "a/one"', '- "b/two"']);
  });

  it('names each parent manifest of a derived dataset in the Provenance section', () => {
    const body = hfCard(facts({}, ['bafyreiparentone', 'bafyreiparenttwo']));
    assert.match(
      body,
      /- Derived from manifest CID: `bafyreiparentone`\n- Derived from manifest CID: `bafyreiparenttwo`/,
    );
    assert.doesNotMatch(hfCard(facts({})), /Derived from/);
  });

  it('quotes values so that YAML cannot read them as something else', () => {
    const { front } = split(hfCard(facts({ license: 'other: "mine"\nnext' })));
    assert.deepEqual(front, ['license: "other: \\"mine\\"\\nnext"']);
  });

  it('names the manifest CID, the root CID and every piece CID in a Provenance section', () => {
    const body = hfCard(facts({ name: 'Llama FT', description: 'Fine-tuned.', run: 'x' }));
    assert.match(body, /^# Llama FT\n\nFine-tuned\.\n/, 'no card field in the meta: no front matter');
    const provenance = body.slice(body.indexOf('## Provenance'));
    assert.ok(provenance.startsWith('## Provenance'));
    for (const cid of ['bafyreimanifest', 'bafybeiroot', 'bafkzcibmanifestpiece', 'bafkzcibpiece0', 'bafkzcibpiece1'])
      assert.ok(provenance.includes(`\`${cid}\``), `${cid} missing from:\n${provenance}`);
    assert.match(provenance, /\| 1 \| `bafkzcibpiece1` \| `bagcar1` \|/);
  });
});
