// `tokenwatch backfill`: read everything committed up to now, then exit.
import { loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { openRuntime } from './runtime.ts';
import { startProgress } from './progress.ts';

export async function backfillCommand(options: CommonOptions & { progress: boolean; json?: boolean }): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const runtime = await openRuntime(loaded, logger);
  const started = Date.now();
  try {
    // The total is the planner's estimate of the tables' sizes; rows already read in earlier
    // runs are not read again, so the bar may end early.
    const progress = startProgress({ label: 'backfill', unit: 'rows', total: options.progress && process.stderr.isTTY ? await runtime.pipeline.estimateRows() : 0, logger, bar: options.progress });
    // The counters resume from the checkpoints (they are totals for /metrics); the summary
    // reports what this run did.
    const before = new Map(runtime.pipeline.statuses().map((s) => [s.id, { ...s }]));
    const qualityBefore = new Map(runtime.pipeline.quality.snapshot().map((q) => [`${q.stream} ${q.action} ${q.reason}`, q.count]));
    let rows = 0;
    const result = await runtime.pipeline.backfill((stream, n) => progress.update((rows += n), stream)).finally(() => progress.stop());
    const statuses = runtime.pipeline.statuses();
    const summary = {
      rows: result.rows,
      seconds: (Date.now() - started) / 1000,
      streams: Object.fromEntries(statuses.map((s) => {
        const b = before.get(s.id);
        return [s.id, { rowsRead: s.rowsRead - (b?.rowsRead ?? 0), events: s.eventsEmitted - (b?.eventsEmitted ?? 0), rejected: s.rowsRejected - (b?.rowsRejected ?? 0), late: s.rowsLate - (b?.rowsLate ?? 0) }];
      })),
      invalid: runtime.pipeline.quality.snapshot()
        .map((q) => ({ ...q, count: q.count - (qualityBefore.get(`${q.stream} ${q.action} ${q.reason}`) ?? 0) }))
        .filter((q) => q.count > 0),
    };
    logger.info(summary, 'backfill complete');
    if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    await runtime.close();
  }
}
