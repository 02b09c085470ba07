/**
 * Croissant 1.1 JSON-LD for an archived dataset: one FileObject per file, with its sha256, its
 * media type, its path in the archive as contentUrl (relative, so it resolves in a restored tree)
 * and its IPFS URI as sameAs; name, description and license come from the manifest's meta.
 */
import crypto from 'node:crypto';
import { encodingFormatOf } from './formats.js';
import type { ManifestFacts } from './manifest-facts.js';

export const CROISSANT_1_1 = 'http://mlcommons.org/croissant/1.1';

/** The standard Croissant 1.1 @context (as mlcroissant 1.1 writes it). */
const CONTEXT = {
  '@language': 'en',
  '@vocab': 'https://schema.org/',
  arrayShape: 'cr:arrayShape',
  citeAs: 'cr:citeAs',
  column: 'cr:column',
  conformsTo: 'dct:conformsTo',
  containedIn: 'cr:containedIn',
  cr: 'http://mlcommons.org/croissant/',
  rai: 'http://mlcommons.org/croissant/RAI/',
  data: { '@id': 'cr:data', '@type': '@json' },
  dataType: { '@id': 'cr:dataType', '@type': '@vocab' },
  dct: 'http://purl.org/dc/terms/',
  description: { '@container': '@language' },
  equivalentProperty: 'cr:equivalentProperty',
  examples: { '@id': 'cr:examples', '@type': '@json' },
  extract: 'cr:extract',
  field: 'cr:field',
  fileProperty: 'cr:fileProperty',
  fileObject: 'cr:fileObject',
  fileSet: 'cr:fileSet',
  format: 'cr:format',
  includes: 'cr:includes',
  isArray: 'cr:isArray',
  isLiveDataset: 'cr:isLiveDataset',
  jsonPath: 'cr:jsonPath',
  key: 'cr:key',
  md5: 'cr:md5',
  name: { '@container': '@language' },
  parentField: 'cr:parentField',
  path: 'cr:path',
  recordSet: 'cr:recordSet',
  references: 'cr:references',
  regex: 'cr:regex',
  repeated: 'cr:repeated',
  replace: 'cr:replace',
  samplingRate: 'cr:samplingRate',
  sc: 'https://schema.org/',
  separator: 'cr:separator',
  source: 'cr:source',
  subField: 'cr:subField',
  transform: 'cr:transform',
};

/** An archive path as a relative URL: each segment percent-encoded, the slashes kept. */
function relativeUrl(archivePath: string): string {
  return archivePath.split('/').map(encodeURIComponent).join('/');
}

/** A FileObject's @id: mlcroissant refuses whitespace in ids even escaped, so a digest of the path. */
function fileId(archivePath: string): string {
  return `file-${crypto.createHash('sha256').update(archivePath).digest('hex').slice(0, 24)}`;
}

export function croissant(f: ManifestFacts): Record<string, unknown> {
  const note =
    `Archived by ${f.tool.name} ${f.tool.version}: manifest ${f.manifestCid}, root ${f.rootCid}. ` +
    `Restore with \`provenant restore ${f.manifestCid} DIR\`; contentUrl is each file's path in that tree.`;
  return {
    '@context': CONTEXT,
    '@type': 'sc:Dataset',
    '@id': `ipfs://${f.rootCid}`,
    conformsTo: CROISSANT_1_1,
    name: f.meta.name ?? f.datasetId,
    description: f.meta.description ?? `Dataset ${f.datasetId}, archived from ${f.source.uri}.`,
    ...(f.meta.license ? { license: f.meta.license } : {}),
    url: f.meta.url ?? `ipfs://${f.rootCid}`,
    ...(f.meta.version ? { version: f.meta.version } : {}),
    ...(f.meta.citeAs ? { citeAs: f.meta.citeAs } : {}),
    datePublished: f.createdAt,
    identifier: `ipfs://${f.manifestCid}`,
    disambiguatingDescription: note,
    distribution: f.files.map((file) => ({
      '@type': 'cr:FileObject',
      '@id': fileId(file.path),
      name: file.path,
      contentUrl: relativeUrl(file.path),
      contentSize: `${file.size} B`,
      encodingFormat: encodingFormatOf(file.path),
      sha256: file.sha256,
      sameAs: [`ipfs://${file.cid}`],
    })),
  };
}
