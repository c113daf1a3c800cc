// `tokenwatch backfill`: read everything committed up to now, then exit.
import { SingleBar, Presets } from 'cli-progress';
import { loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { openRuntime } from './runtime.ts';

export async function backfillCommand(options: CommonOptions & { progress: boolean }): Promise<void> {
  const { loaded, logger } = loadOrExit(options);
  const runtime = await openRuntime(loaded, logger);
  const started = Date.now();
  const showBar = options.progress && process.stderr.isTTY === true;
  const bar = showBar ? new SingleBar({ format: 'backfill {stream} |{bar}| {value} rows | {rate} rows/s', stream: process.stderr, hideCursor: true }, Presets.shades_classic) : undefined;
  let current = '';
  let rows = 0;
  let lastLog = Date.now();
  try {
    // The total is the planner's estimate of the tables' sizes; rows already read in earlier
    // runs are not read again, so the bar may end early.
    const estimate = bar ? await runtime.pipeline.estimateRows() : 0;
    bar?.start(Math.max(estimate, 1), 0, { stream: '', rate: 0 });
    const result = await runtime.pipeline.backfill((stream, n) => {
      rows += n;
      const rate = Math.round(rows / Math.max((Date.now() - started) / 1000, 0.001));
      if (bar) {
        if (stream !== current) current = stream;
        if (rows > bar.getTotal()) bar.setTotal(rows);
        bar.update(rows, { stream, rate });
      } else if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        logger.info({ stream, rows, rowsPerSecond: rate }, 'backfill progress');
      }
    });
    bar?.stop();
    const statuses = runtime.pipeline.statuses();
    logger.info(
      {
        rows: result.rows,
        seconds: (Date.now() - started) / 1000,
        streams: Object.fromEntries(statuses.map((s) => [s.id, { rowsRead: s.rowsRead, events: s.eventsEmitted, rejected: s.rowsRejected }])),
        invalid: runtime.pipeline.quality.snapshot(),
      },
      'backfill complete',
    );
  } finally {
    bar?.stop();
    await runtime.close();
  }
}
