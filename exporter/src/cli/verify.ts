// `tokenwatch verify`: proof, per closed day, that the event store holds every source row:
// the source's rows per day against the store's, for each table whose rows are stored one
// per source row. Nothing is repaired (`run` repairs on its own, every reconcileInterval).
import { UsageError, loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { openRuntime } from './runtime.ts';
import { comparisonTotals, type StreamComparison } from '../pipeline/reconcile.ts';

export async function verifyCommand(options: CommonOptions & { days?: string; json?: boolean }): Promise<void> {
  const days = options.days === undefined ? undefined : Number(options.days);
  if (days !== undefined && (!Number.isInteger(days) || days < 1 || days > 366)) {
    throw new UsageError(`--days ${options.days}: must be a whole number of days from 1 to 366`);
  }
  const { loaded, logger } = loadOrExit(options);
  const runtime = await openRuntime(loaded, logger);
  let comparisons: StreamComparison[];
  try {
    comparisons = await runtime.pipeline.verify(days);
  } finally {
    await runtime.close();
  }
  const differs = comparisons.some((c) => c.days.some((d) => d.missing.length > 0 || d.extra > 0));
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok: !differs, streams: comparisons.map((c) => ({ ...c, ...comparisonTotals(c), days: c.days.map((d) => ({ ...d, missing: d.missing.length, missingIds: d.missing.slice(0, 100) })) })) })}\n`);
  } else {
    process.stdout.write(renderComparisons(comparisons));
  }
  if (differs) process.exitCode = 1;
}

export function renderComparisons(comparisons: StreamComparison[]): string {
  const lines: string[] = [];
  for (const c of comparisons) {
    if (c.days.length === 0) {
      lines.push(`${c.stream}: no closed day to compare yet (days close after maxCommitDelay plus sweepWindow, once read)`, '');
      continue;
    }
    const totals = comparisonTotals(c);
    const verdict = totals.missing > 0 || totals.extra > 0 ? 'DIFFERS' : 'ok';
    lines.push(`${c.stream}: ${c.from} to ${c.to} (exclusive): ${verdict}`);
    lines.push(`  ${'day'.padEnd(10)}  ${'source'.padStart(10)}  ${'stored'.padStart(10)}  ${'rejected'.padStart(8)}  ${'missing'.padStart(8)}  ${'extra'.padStart(8)}`);
    for (const d of c.days) {
      lines.push(`  ${d.day}  ${String(d.sourceRows).padStart(10)}  ${String(d.storedRows).padStart(10)}  ${String(d.rejected).padStart(8)}  ${String(d.missing.length).padStart(8)}  ${String(d.extra).padStart(8)}`);
    }
    const examples = c.days.flatMap((d) => d.missing).slice(0, 5);
    if (examples.length > 0) lines.push(`  missing ids (first ${examples.length}): ${examples.join(', ')}`);
    lines.push('');
  }
  lines.push('rejected: source rows tokenwatch rejects as invalid (counted when read); missing: rows that should be in the store and are not; extra: stored rows the source no longer has.');
  return `${lines.join('\n')}\n`;
}
