/**
 * A Hugging Face card for an archived tree: YAML front matter from the manifest's meta
 * (`license`, `datasets`, `base_model`, and `language`/`tags`/`pipeline_tag` when given; lists
 * are comma-separated), then a Provenance section naming the manifest, root and piece CIDs.
 */
import type { ManifestFacts } from './manifest-facts.js';

/** Meta keys that become card fields, and whether the field is a list. */
const CARD_FIELDS: [key: string, list: boolean][] = [
  ['license', false],
  ['datasets', true],
  ['base_model', true],
  ['language', true],
  ['tags', true],
  ['pipeline_tag', false],
];

/** A YAML double-quoted scalar (JSON strings are valid ones). */
const q = (s: string) => JSON.stringify(s);

function frontMatter(meta: Record<string, string>): string[] {
  const lines: string[] = [];
  for (const [key, list] of CARD_FIELDS) {
    const value = meta[key];
    if (value === undefined || value.trim() === '') continue;
    const items = list
      ? value
          .split(',')
          .map((v) => v.trim())
          .filter(Boolean)
      : [value.trim()];
    if (!list || (key === 'base_model' && items.length === 1)) lines.push(`${key}: ${q(items[0]!)}`);
    else lines.push(`${key}:`, ...items.map((v) => `- ${q(v)}`));
  }
  return lines;
}

export function hfCard(f: ManifestFacts): string {
  const title = f.meta.name ?? f.datasetId;
  const front = frontMatter(f.meta);
  // No card field in the meta: no front matter at all (an empty block is only noise to the Hub).
  const lines = [...(front.length ? ['---', ...front, '---', ''] : []), `# ${title}`, ''];
  if (f.meta.description) lines.push(f.meta.description, '');
  lines.push(
    '## Provenance',
    '',
    `Archived by ${f.tool.name} ${f.tool.version} on ${f.createdAt}; every file in it is content-addressed, and its sha256 is recorded in the manifest.`,
    '',
    `- Dataset id: \`${f.datasetId}\``,
    `- Manifest CID: \`${f.manifestCid}\` (restore with \`provenant restore ${f.manifestCid} DIR\`)`,
    `- Root CID: \`${f.rootCid}\` (the UnixFS tree of the ${f.totals.files} files, ${f.totals.bytes} bytes)`,
    `- Manifest piece CID: \`${f.manifestPieceCid}\``,
    ...f.derivedFrom.map((cid) => `- Derived from manifest CID: \`${cid}\``),
    `- Source: \`${f.source.uri}\` (${f.source.kind})`,
    '',
    '| shard | piece CID | CAR CID |',
    '| ----- | --------- | ------- |',
    ...f.shards.map((s) => `| ${s.index} | \`${s.pieceCid}\` | \`${s.carCid}\` |`),
    '',
  );
  return lines.join('\n');
}
