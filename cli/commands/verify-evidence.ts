/**
 * provenant verify-evidence FILE [--trust PUBKEY.pem]… [--source DIR | --restored DIR]: check an
 * evidence bundle offline (no server, no network): every CID and hash, every audit link, every
 * signature, and with a directory every file's sha256. Exit 0 when all holds, 1 naming each
 * broken link. Only --trust keys count as trusted; given any, the manifest and the audit head
 * must be signed by one of them.
 */
import { loadVerifyingKey } from '../../activities/evidence/keys.js';
import { describeEvidence, verifyEvidence } from '../../activities/evidence/verify-evidence.js';
import { UsageError } from '../kit.js';
import { command } from './run.js';

export const verifyEvidenceCommand = command(
  'verify-evidence FILE [--trust PUBKEY.pem]... [--source DIR | --restored DIR]   check a bundle offline',
  { trust: { type: 'string', multiple: true }, source: { type: 'string' }, restored: { type: 'string' } },
  async ({ out, positionals, values }) => {
    const [file] = positionals;
    if (!file) throw new UsageError('verify-evidence needs FILE');
    if (values.source && values.restored) throw new UsageError('give --source or --restored, not both');
    const trusted = ((values.trust as string[] | undefined) ?? []).map((f) => loadVerifyingKey(f));
    const dir = values.source
      ? { path: values.source as string, as: 'source' as const }
      : values.restored
        ? { path: values.restored as string, as: 'restored' as const }
        : undefined;
    const report = await verifyEvidence(file, { trusted, ...(dir ? { dir } : {}) });
    out.result(report, describeEvidence(report));
    return report.ok ? 0 : 1;
  },
);
