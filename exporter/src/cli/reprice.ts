// `tokenwatch reprice --from DATE [--to DATE]`: after a price change (a new tokenwatch with a
// newer catalog, or an edited pricing: section), recompute the stored costs of a date range in
// the event store and say how much they changed (pipeline/reprice.ts). The counters on
// /metrics keep what they counted: they never go down.
import { UsageError, loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { openRuntime } from './runtime.ts';
import type { RepriceResult } from '../pipeline/reprice.ts';

export interface RepriceOptions extends CommonOptions {
  from: string;
  to?: string;
  json?: boolean;
}

function day(text: string, flag: string): number {
  const at = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : NaN;
  if (Number.isNaN(at)) throw new UsageError(`${flag} ${text}: not a date (use YYYY-MM-DD, a UTC day)`);
  return at;
}

export function renderReprice(results: RepriceResult[], from: string, to: string): string {
  const lines = [`repriced requests from ${from} to ${to} (exclusive), UTC:`];
  for (const r of results) {
    const delta = (Number(r.after.cost) - Number(r.before.cost)).toFixed(9).replace(/\.?0+$/, '');
    lines.push(`  ${r.stream}: ${r.rows} rows read, ${r.changed} repriced; cost ${r.before.cost} -> ${r.after.cost} USD (${delta.startsWith('-') ? delta : `+${delta}`}); list-price estimate ${r.before.estimate} -> ${r.after.estimate} USD`);
  }
  if (results.length === 0) lines.push('  no request table to reprice');
  lines.push('The counters on /metrics are unchanged (counters never go down); dashboards on ClickHouse show the new costs.', '');
  return lines.join('\n');
}

export async function repriceCommand(options: RepriceOptions): Promise<void> {
  const from = day(options.from, '--from');
  const toText = options.to ?? new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  const to = day(toText, '--to');
  if (to <= from) throw new UsageError(`--to ${toText} is not after --from ${options.from}`);
  const { loaded, logger } = loadOrExit(options);
  const runtime = await openRuntime(loaded, logger);
  let results: RepriceResult[];
  try {
    results = await runtime.pipeline.reprice(from, to, (stream, d, rows) => logger.info({ stream, day: d, rows }, 'day repriced'));
  } finally {
    await runtime.close();
  }
  process.stdout.write(options.json ? `${JSON.stringify({ from: options.from, to: toText, streams: results })}\n` : renderReprice(results, options.from, toText));
}
