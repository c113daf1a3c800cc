// The periodic reconciliation of one incremental stream (reconcile.ts compares): when it is
// due, which days it may look at, and the repair. It runs inside the stream's poll, between
// two polls' reads, so the rows it delivers are counted and checkpointed like any page.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import type { IncrementalStream, MapContext } from '../sources/adapter.ts';
import type { EventStore } from '../store/clickhouse.ts';
import type { StreamStatus } from './status.ts';
import { closedDays, compareStream, comparisonTotals, idTypeOf, readRowsById, type StreamComparison } from './reconcile.ts';
import { unquoteIdent } from '../reader/sql.ts';

const DAY_MS = 86_400_000;

export interface ReconcileSettings {
  intervalMs: number;
  days: number;
  maxCommitDelayMs: number;
  sweepWindowMs: number;
  startFrom: string;
}

/**
 * The closed days reconciliation may compare: whole UTC days whose rows can no longer arrive
 * (older than maxCommitDelay plus the sweep window) and that the stream's polls have passed
 * (below its watermark less the sweep window, so a catch-up in progress is never taken for
 * loss).
 */
export function reconcileWindow(settings: ReconcileSettings, now: number, watermarkAt: number | null): { from: number; to: number } | undefined {
  if (watermarkAt === null) return undefined;
  const settledBefore = Math.min(now - settings.maxCommitDelayMs - settings.sweepWindowMs, watermarkAt - settings.sweepWindowMs);
  return closedDays(settledBefore, settings.days, settings.startFrom, now);
}

export class StreamReconciler {
  private lastRunAt: number | null = null;
  private readonly options: {
    pool: pg.Pool;
    store: EventStore;
    stream: IncrementalStream;
    status: StreamStatus;
    settings: ReconcileSettings;
    /** A mapping context that records nothing: reconciliation only classifies rows. */
    classify: () => MapContext;
    logger: Logger;
    now: () => number;
  };

  constructor(options: StreamReconciler['options']) {
    this.options = options;
  }

  /**
   * Due once per interval, and never in the process's first poll of the stream: that poll may
   * resume a catch-up cut short, whose rows are not all read yet.
   */
  due(): boolean {
    const { settings, status, now } = this.options;
    if (settings.intervalMs <= 0 || status.lastSuccessAt === null) return false;
    return this.lastRunAt === null || now() - this.lastRunAt >= settings.intervalMs;
  }

  /** Compares, delivers the missing rows through `deliver` (counted as late), and records the outcome on the status. */
  async run(deliver: (rows: Record<string, unknown>[]) => Promise<void>): Promise<number> {
    const { pool, store, stream, status, settings, classify, now } = this.options;
    this.lastRunAt = now();
    const window = reconcileWindow(settings, now(), status.watermarkAt);
    if (window === undefined) return 0;
    let comparison = await compareStream(pool, store, stream, window, classify());
    const missing = comparison.days.flatMap((d) => d.missing);
    let delivered = 0;
    if (missing.length > 0) {
      const client = await pool.connect();
      try {
        const idType = await idTypeOf(client, stream);
        for (let i = 0; i < missing.length; i += stream.spec.batchSize) {
          const rows = await readRowsById(client, stream, missing.slice(i, i + stream.spec.batchSize), idType);
          await deliver(rows);
          delivered += rows.length;
          const cursor = unquoteIdent(stream.spec.cursorColumn);
          for (const row of rows) {
            const at = Date.parse(String(row[cursor] ?? row.timestamp ?? ''));
            if (Number.isFinite(at)) status.lateMaxDelayMs = Math.max(status.lateMaxDelayMs, now() - at);
          }
        }
      } finally {
        client.release();
      }
      status.rowsLate += delivered;
      status.rowsReconciled += delivered;
      // What is still missing after the repair is what the gauge and the alert show.
      comparison = await compareStream(pool, store, stream, window, classify());
    }
    this.record(comparison, delivered);
    return delivered;
  }

  private record(comparison: StreamComparison, delivered: number): void {
    const { status, logger, now } = this.options;
    const totals = comparisonTotals(comparison);
    status.reconcile = { at: now(), ...totals, days: Math.round((Date.parse(comparison.to) - Date.parse(comparison.from)) / DAY_MS) };
    const fields = { stream: status.id, from: comparison.from, to: comparison.to, delivered, ...totals };
    if (totals.missing > 0) logger.error(fields, 'reconciliation: rows of the source are still missing from the event store after repair');
    else if (delivered > 0) logger.warn(fields, 'reconciliation: rows missing from the event store were found and delivered');
    else logger.debug(fields, 'reconciliation: the event store holds every row of the closed days');
  }
}
