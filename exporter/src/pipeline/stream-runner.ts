// One incremental stream at run time: its reader, status, journal and reconciler, and what a
// poll of it does (repair after a crash, the straggler sweep when due, reconciliation when
// due, the reader's poll), with each page mapped through the adapter and delivered as row
// versions. The pipeline owns the sources, the sinks and the timers; this owns one stream.
import type { CanonicalEvent } from '../model/events.ts';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import type { IncrementalStream, MapContext } from '../sources/adapter.ts';
import { PollAborted, type CheckpointCompanion, type IncrementalReader, type PollResult } from '../reader/incremental-reader.ts';
import { cursorTime } from '../reader/chunked-read.ts';
import type { RowQuality } from '../quality/row-quality.ts';
import { mapRowChecked } from '../quality/map-row.ts';
import { fitStoreLimits } from '../quality/store-limits.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { StoredVersion, VersionLedger } from '../model/row-versions.ts';
import type { StreamReconciler } from './stream-reconciler.ts';
import type { VersionJournal } from './version-journal.ts';
import type { StreamStatus } from './status.ts';
import { deliverPage } from './deliver-page.ts';

export type PageHandler = (rows: Record<string, unknown>[]) => Promise<void>;

/** What every stream shares: the pipeline's services. */
export interface StreamServices {
  logger: Logger;
  metrics: MetricsRegistry | undefined;
  quality: RowQuality;
  ledger: VersionLedger;
  now(): number;
  mapContext(streamId: string, rowId: () => string): MapContext;
  emit(events: CanonicalEvent[], stored?: ReadonlyMap<string, StoredVersion>): Promise<void>;
  /** Lets the sinks repair what a crash cut short, before the stream's first read (once per source). */
  recover(runner: StreamRunner): Promise<void>;
  /** Aborted on shutdown: a poll stops between pages. */
  stopping: AbortSignal;
}

export interface StreamParts {
  stream: IncrementalStream;
  reader: IncrementalReader;
  status: StreamStatus;
  /** The checkpoint this process started from: writes after it may be half done (Pipeline.recover). */
  resumedFrom: { at: Date; watermark: Date | null } | undefined;
  /** How often it is polled: pollInterval, or unindexedIntervalMs while its cursor column has no index. */
  intervalMs: number;
  /** Compares it with the event store now and then (streams with rows in ClickHouse, when there is a ClickHouse sink). */
  reconciler: StreamReconciler | undefined;
  /** Classifications of its pages since the last durable checkpoint (version-journal.ts). */
  journal: VersionJournal;
  /** What moves with the stream's checkpoint (its counters, the journal's carried entries). */
  companion: CheckpointCompanion;
}

export class StreamRunner implements StreamParts {
  readonly stream: IncrementalStream;
  readonly reader: IncrementalReader;
  readonly status: StreamStatus;
  resumedFrom: StreamParts['resumedFrom'];
  readonly intervalMs: number;
  readonly reconciler: StreamReconciler | undefined;
  readonly journal: VersionJournal;
  readonly companion: CheckpointCompanion;
  private readonly services: StreamServices;

  constructor(parts: StreamParts, services: StreamServices) {
    ({ stream: this.stream, reader: this.reader, status: this.status, resumedFrom: this.resumedFrom, intervalMs: this.intervalMs, reconciler: this.reconciler, journal: this.journal, companion: this.companion } = parts);
    this.services = services;
  }

  get id(): string {
    return this.stream.spec.id;
  }

  /**
   * Maps rows through the stream's adapter; rejected rows are counted and skipped. `keepRequest`
   * false drops a row's request event (the bulk path stored it already).
   */
  mapRows(rows: readonly Record<string, unknown>[], keepRequest: (row: Record<string, unknown>) => boolean = () => true): CanonicalEvent[] {
    const { stream, status } = this;
    const { quality } = this.services;
    const events: CanonicalEvent[] = [];
    let current: Record<string, unknown> = {};
    const ctx = this.services.mapContext(this.id, () => stream.rowId(current));
    // Copies of a row (same id; the reader returns them side by side, in timestamp and id
    // order) are delivered once.
    const ids = new Set<string>();
    for (const row of rows) {
      current = row;
      const id = stream.rowId(row);
      if (ids.has(id)) {
        status.rowsRejected += 1;
        quality.record(this.id, 'rejected', 'duplicate_id', `another row of this page has the same ${stream.spec.idColumn}`, id);
        continue;
      }
      ids.add(id);
      const outcome = mapRowChecked(() => stream.map(row, ctx));
      if (outcome.rejected) {
        status.rowsRejected += 1;
        quality.record(this.id, 'rejected', outcome.rejected.reason, outcome.rejected.message, id);
        continue;
      }
      for (const event of outcome.events) fitStoreLimits(event, ctx);
      events.push(...(keepRequest(row) ? outcome.events : outcome.events.filter((e) => e.kind !== 'request')));
    }
    return events;
  }

  /** After an unclean stop, lets the sinks repair what the crash cut short (once per source and process; Pipeline.recover). */
  repairIfResumed(): Promise<void> {
    return this.services.recover(this);
  }

  /** Runs one poll, keeping the status; a failed poll forgets the metrics and classifications of its unsaved pages. */
  async track(poll: () => Promise<PollResult>): Promise<number> {
    await this.repairIfResumed();
    const { status } = this;
    const now = () => this.services.now();
    status.lastPollStartedAt = now();
    status.polls += 1;
    try {
      const result = await poll();
      status.lastSuccessAt = now();
      status.lastSuccessStartedAt = status.lastPollStartedAt;
      if (result.checkpoint.watermark) status.watermarkAt = cursorTime(result.checkpoint.watermark);
      status.lastError = null;
      return result.rows;
    } catch (error) {
      // Rows of pages not checkpointed will be read again: forget what they recorded.
      this.services.metrics?.rollbackStream(this.id);
      this.journal.rolledBack();
      if (!(error instanceof PollAborted)) status.lastError = errorText(error);
      throw error;
    } finally {
      status.lastPollDurationMs = now() - status.lastPollStartedAt;
    }
  }

  /**
   * Maps, delivers and counts one page of the stream's rows. `fresh`: ids of rows known never to
   * have been delivered (the replication reader's inserts), whose events are not looked up.
   */
  pageHandler(onPage?: (rows: number) => void, fresh?: ReadonlySet<string>): PageHandler {
    const { status, journal, stream } = this;
    const { ledger, metrics, logger } = this.services;
    return async (rows) => {
      let events: CanonicalEvent[];
      let unseen: CanonicalEvent[] = [];
      if (fresh === undefined || fresh.size === 0) events = this.mapRows(rows);
      else {
        events = this.mapRows(rows.filter((r) => !fresh.has(stream.rowId(r))));
        unseen = this.mapRows(rows.filter((r) => fresh.has(stream.rowId(r))));
      }
      const delivered = await deliverPage([...events, ...unseen], {
        streamId: this.id, ledger, journal, metrics, unseen: new Set(unseen),
        emit: (toWrite, stored) => this.services.emit(toWrite, stored),
      });
      status.rowsRead += rows.length;
      status.eventsEmitted += delivered.written;
      status.rowsRevised += delivered.revised;
      status.rowsIncomplete += rows.filter((r) => r.__complete === false).length;
      logger.debug({ stream: this.id, rows: rows.length, ...delivered }, 'page delivered');
      onPage?.(rows.length);
    };
  }

  /** One poll: everything committed since the previous poll (and the straggler sweep and reconciliation when due). */
  poll(onPage?: (rows: number) => void): Promise<number> {
    const handle = this.pageHandler(onPage);
    return this.track(async () => {
      const swept = await this.sweepIfDue(handle);
      // Between two polls' reads, so what it delivers is checkpointed with the next poll.
      const reconciled = this.reconciler?.due() ? await this.reconciler.run(handle) : 0;
      const result = await this.reader.poll(handle, this.services.stopping);
      return { ...result, rows: result.rows + swept + reconciled };
    });
  }

  /**
   * Runs the straggler sweep when it is due (docs/how-rows-are-read.md, "Rows that commit
   * late"): rows that committed after the polls covering their timestamp had passed are
   * delivered now, once, and counted.
   */
  async sweepIfDue(handle: PageHandler): Promise<number> {
    if (!this.reader.sweepDue()) return 0;
    const { status } = this;
    const result = await this.reader.sweep(handle);
    if (result.rows === 0) return 0;
    status.rowsLate += result.rows;
    status.rowsBeyondSweepWindow += result.beyondWindow;
    status.lateMaxDelayMs = Math.max(status.lateMaxDelayMs, result.maxDelayMs);
    const fields = { stream: status.id, rows: result.rows, beyondSweepWindow: result.beyondWindow, maxDelaySeconds: Math.round(result.maxDelayMs / 1000), maxCommitDelaySeconds: (status.maxCommitDelayMs ?? 0) / 1000 };
    const { logger } = this.services;
    if (result.beyondWindow > 0) logger.error(fields, 'rows committed later than the sweep window: rows committing even later are missed (raise sweepWindow)');
    else logger.warn(fields, 'late rows delivered by the straggler sweep (they committed later than maxCommitDelay)');
    return result.rows;
  }
}
