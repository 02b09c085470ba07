/** `provenant export`: one format of evidence about a manifest, written to a file (atomically). */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/schema.js';
import { archiveWorkflowId } from '../../shared/api.js';
import type { StorageProvider } from '../providers/provider.js';
import { croissant } from './croissant.js';
import { hfCard } from './hf-card.js';
import { loadSigningKey, signingKeyOf, type SigningKey } from './keys.js';
import { readManifestFacts, type ManifestFacts } from './manifest-facts.js';
import { omsBundle } from './oms.js';
import { slsaExport, type ArchiveInvocation } from './slsa.js';

export const EXPORT_FORMATS = ['croissant', 'hf-card', 'oms', 'slsa'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  /** Providers beyond the configured ones to look for the manifest on. */
  extra?: StorageProvider[];
  /** A PEM private key file to sign with instead of the configured one (oms, slsa). */
  keyFile?: string;
  /** Find the archive run of a dataset (slsa); without it, its workflow id alone (from the dataset id). */
  invocation?: (datasetId: string) => Promise<ArchiveInvocation>;
}

interface BuildContext {
  config: Config;
  key?: SigningKey;
  invocation?: ArchiveInvocation;
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

const BUILDERS: Record<ExportFormat, (f: ManifestFacts, c: BuildContext) => string> = {
  croissant: (f) => json(croissant(f)),
  'hf-card': hfCard,
  oms: (f, c) => json(omsBundle(f, c.key)),
  slsa: (f, c) =>
    json(
      slsaExport(
        f,
        c.invocation ?? { namespace: c.config.temporal.namespace, workflowId: archiveWorkflowId(f.datasetId) },
        c.key,
      ),
    ),
};

export interface ExportResult {
  format: ExportFormat;
  out: string;
  manifestCid: string;
  datasetId: string;
  files: number;
  /** The id of the key that signed the export (oms, and slsa with a key). */
  keyId?: string;
}

export async function exportManifest(
  config: Config,
  manifestCid: string,
  format: ExportFormat,
  out: string,
  opts: ExportOptions = {},
): Promise<ExportResult> {
  // The signed formats read the key first: a bad key fails before any provider is asked.
  const signed = format === 'oms' || format === 'slsa';
  const key = !signed ? undefined : opts.keyFile ? loadSigningKey(opts.keyFile) : signingKeyOf(config);
  const facts = await readManifestFacts(config, manifestCid, opts.extra ?? []);
  const invocation = format === 'slsa' && opts.invocation ? await opts.invocation(facts.datasetId) : undefined;
  const body = BUILDERS[format](facts, { config, ...(key ? { key } : {}), ...(invocation ? { invocation } : {}) });
  const target = path.resolve(out);
  const tmp = `${target}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, body);
  await fsp.rename(tmp, target);
  return {
    format,
    out: target,
    manifestCid,
    datasetId: facts.datasetId,
    files: facts.files.length,
    ...(key ? { keyId: key.keyId } : {}),
  };
}
