// `tokenwatch backfill`: read everything committed up to now, then exit.
import { loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { openRuntime } from './runtime.ts';
import { startProgress } from './progress.ts';

/** After Ctrl-C, how long the page in flight may take to finish and be checkpointed. */
const INTERRUPT_GRACE_MS = 8_000;
/** The shell's convention: 128 + the signal's number. */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

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
    // Ctrl-C: stop after the page in flight (checkpointed, so the next backfill resumes there),
    // say so, and exit with the signal's code; a page that does not finish in time is repaired
    // on the next start, as after a crash.
    let interruptedBy: keyof typeof SIGNAL_EXIT_CODES | undefined;
    const interrupt = (signal: keyof typeof SIGNAL_EXIT_CODES) => {
      if (interruptedBy) return;
      interruptedBy = signal;
      progress.stop();
      process.stderr.write(`tokenwatch: backfill interrupted by ${signal} after ${rows} rows; what was read is checkpointed: run backfill again to resume\n`);
      runtime.pipeline.interrupt();
      setTimeout(() => process.exit(SIGNAL_EXIT_CODES[signal]), INTERRUPT_GRACE_MS).unref();
    };
    process.on('SIGINT', () => interrupt('SIGINT'));
    process.on('SIGTERM', () => interrupt('SIGTERM'));
    const result = await runtime.pipeline.backfill((stream, n) => progress.update((rows += n), stream))
      .catch((error: unknown) => {
        if (interruptedBy) return { rows }; // the page in flight was aborted, not failed
        throw error;
      })
      .finally(() => progress.stop());
    if (interruptedBy) {
      await runtime.close();
      process.exit(SIGNAL_EXIT_CODES[interruptedBy]);
    }
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
