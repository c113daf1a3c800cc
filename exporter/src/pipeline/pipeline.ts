// The runner: owns every source's pool, polls incremental streams and snapshot queries on
// their intervals, maps rows through the adapters, hands events to the sinks and records the
// status of every stream. Adapters never see timers, retries or sinks.
import { StreamReconciler, reconcileWindow } from './stream-reconciler.ts';
import { compareStream, idTypeOf, type StreamComparison } from './reconcile.ts';
import type pg from 'pg';
import type { Config } from '../config/schema.ts';
import type { CanonicalEvent } from '../model/events.ts';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import { createPool, existingTables, plannerRowEstimate } from '../db/postgres.ts';
import { adapterFor } from '../sources/registry.ts';
import type { BulkContext, IncrementalStream, MapContext, NamedSource, SnapshotQuery, SourceAdapter } from '../sources/adapter.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { Pricing } from '../sources/pricing.ts';
import { IncrementalReader, PollAborted, cursorTime, type PollResult } from '../reader/incremental-reader.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { BulkLoader, SLOTS, type BulkTransport } from '../store/bulk-load.ts';
import { copyToFile } from '../db/copy-to-file.ts';
import { quoteIdent, unquoteIdent } from '../reader/sql.ts';
import { indexStatement, unindexedCursors } from '../reader/cursor-index.ts';
import type { CheckpointStore } from '../reader/checkpoint-store.ts';
import { RowQuality } from '../quality/row-quality.ts';
import { mapRowChecked } from '../quality/map-row.ts';
import { fitStoreLimits } from '../quality/store-limits.ts';
import { restoreStreamCounters, saveStreamCounters } from './stream-counters.ts';
import type { Sink } from '../sinks/sink.ts';
import type { MetricsRegistry, SavedMetrics } from '../metrics/registry.ts';
import { newStreamStatus, type SinkStatus, type StreamStatus } from './status.ts';
import { MemoryLedger, type JournalEntry, type StoredVersion, type VersionLedger } from '../model/row-versions.ts';
import { VersionJournal } from './version-journal.ts';
import { deliverPage } from './deliver-page.ts';
import { CONNECT_BACKOFF, retryDelayMs } from './backoff.ts';
import { PollScheduler } from './poll-scheduler.ts';
import { pollSnapshot } from './snapshot-poll.ts';

export type { SinkStatus, StreamStatus } from './status.ts';

interface ActiveSource {
  config: NamedSource;
  adapter: SourceAdapter;
  pool: pg.Pool;
  streams: {
    stream: IncrementalStream;
    reader: IncrementalReader;
    status: StreamStatus;
    /** The checkpoint this process started from: writes after it may be half done (see recover()). */
    resumedFrom: { at: Date; watermark: Date | null } | undefined;
    /** How often it is polled: pollInterval, or unindexedIntervalMs while its cursor column has no index. */
    intervalMs: number;
    /** Compares it with the event store now and then (streams with rows in ClickHouse, when there is a ClickHouse sink). */
    reconciler: StreamReconciler | undefined;
    /** Classifications of its pages since the last durable checkpoint (version-journal.ts). */
    journal: VersionJournal;
  }[];
  snapshots: { query: SnapshotQuery; status: StreamStatus }[];
}

export interface PipelineOptions {
  config: Config;
  logger: Logger;
  sinks: Sink[];
  store: CheckpointStore;
  /** Skip sources whose tables are missing instead of failing (sources chosen automatically). */
  autoSources: boolean;
  quality?: RowQuality;
  /** Records metrics from the events; its stream counters are checkpointed with the reader. */
  metrics?: MetricsRegistry;
  now?: () => number;
  /**
   * The previous process stopped cleanly (every write finished and checkpointed): nothing to
   * repair when streams resume. Default false: a resumed stream lets the sinks repair.
   */
  previousRunClean?: boolean;
  /**
   * `run`: a source that cannot be reached (or has no tables yet) does not fail open(); its
   * streams show as failing and it is retried with backoff until it connects. Without it,
   * open() throws (backfill, check).
   */
  waitForSources?: boolean;
  /** Called when waiting for sources ends in a state the process cannot run in. */
  onFatal?: (error: Error) => void;
}

function newStatus(id: string, source: NamedSource, table: string, kind: StreamStatus['kind'], spec?: IncrementalStream['spec']): StreamStatus {
  return newStreamStatus({
    id, source: source.name, sourceType: source.type, table, kind,
    ...(spec ? { maxCommitDelayMs: spec.maxCommitDelayMs, sweepWindowMs: spec.sweepWindowMs ?? 0 } : {}),
  });
}

/** The statuses a source's streams and snapshots will have, before it is connected. */
function plannedStatuses(adapter: SourceAdapter, config: NamedSource): StreamStatus[] {
  const built = adapter.build(config);
  return [
    ...built.streams.map((s) => newStatus(s.spec.id, config, s.table, 'incremental', s.spec)),
    ...built.snapshots.map((q) => newStatus(q.id, config, snapshotTable(q), 'snapshot')),
  ];
}

/** Snapshot queries are named by their id (two may read the same table). */
function snapshotTable(query: SnapshotQuery): string {
  return query.id.slice(query.id.indexOf('/') + 1);
}

/** Why a source could not be added: its database is unreachable, or its tables are missing. */
class SourceUnavailable extends Error {
  readonly missingTables: boolean;
  constructor(message: string, missingTables: boolean, cause?: unknown) {
    super(message, { cause });
    this.missingTables = missingTables;
  }
}

/** A source `run` could not connect to yet: its streams show as failing while it retries. */
interface PendingSource {
  config: NamedSource;
  statuses: StreamStatus[];
  failures: number;
  missingTables: boolean;
  timer?: NodeJS.Timeout;
}

const NO_SOURCE_TABLES = 'no source has its tables in the database: set TOKENWATCH_SOURCES or `sources:` and check the schema and table names';

export class Pipeline {
  readonly sources: ActiveSource[] = [];
  readonly quality: RowQuality;
  private readonly options: PipelineOptions;
  private readonly pricing: Pricing;
  private readonly now: () => number;
  private readonly scheduler: PollScheduler;
  private stopped = false;
  private started = false;
  /** Aborted by close(): a long poll stops between pages with its progress saved. */
  private readonly stopping = new AbortController();
  private readonly sinkStatus = new Map<string, SinkStatus>();
  private readonly pending: PendingSource[] = [];
  /** Where delivered row versions are looked up: the event store, or this process's memory. */
  private readonly ledger: VersionLedger;

  private constructor(options: PipelineOptions) {
    this.options = options;
    const store = options.sinks.find((s) => s.storedVersions !== undefined);
    const keepMs = Math.max(0, ...options.config.sources.map((s) => s.maxCommitDelay + s.sweepWindow));
    this.ledger = store ? { storedVersions: (events) => store.storedVersions!(events) } : new MemoryLedger(keepMs);
    this.quality = options.quality ?? new RowQuality(options.logger, options.config.quality.logInterval);
    this.pricing = new Pricing(options.config.pricing);
    this.now = options.now ?? Date.now;
    this.scheduler = new PollScheduler(options.logger);
  }

  /** Connects to every source and checks its tables; throws naming what is missing. */
  static async open(options: PipelineOptions): Promise<Pipeline> {
    const pipeline = new Pipeline(options);
    try {
      for (const source of options.config.sources as NamedSource[]) {
        try {
          await pipeline.addSource(source);
        } catch (error) {
          if (!(error instanceof SourceUnavailable)) throw error;
          if (options.waitForSources) pipeline.waitFor(source, error);
          else if (!(error.missingTables && options.autoSources)) throw error;
          else options.logger.info({ source: source.name }, `source skipped: ${error.message}`);
        }
      }
    } catch (error) {
      await pipeline.close();
      throw error;
    }
    pipeline.dropSkippedSources();
    if (pipeline.sources.length === 0 && pipeline.pending.length === 0) {
      await pipeline.close();
      throw new Error(NO_SOURCE_TABLES);
    }
    return pipeline;
  }

  /**
   * Connects a source and checks its tables, then adds its parts (the other databases it
   * reads, each a source of its own); throws SourceUnavailable when the source's own database
   * cannot be used. A part that cannot be used yet is waited for like any source (`run`), or
   * fails the open (backfill). Returns the sources added.
   */
  private async addSource(config: NamedSource): Promise<ActiveSource[]> {
    const adapter = adapterFor(config.type);
    const pool = createPool(config.databaseUrl!, { applicationName: `tokenwatch/${config.name}` });
    const wanted = adapter.requiredTables(config).map((t) => config.tables[t] ?? t);
    let present: Set<string>;
    try {
      present = await existingTables(pool, config.schema, wanted);
    } catch (error) {
      await pool.end();
      throw new SourceUnavailable(`source ${config.name}: cannot connect to PostgreSQL: ${errorText(error)}`, false, error);
    }
    const missing = wanted.filter((t) => !present.has(t));
    if (missing.length > 0) {
      await pool.end();
      throw new SourceUnavailable(`source ${config.name} (${config.type}): tables not found in schema "${config.schema}": ${missing.join(', ')}`, true);
    }
    let parts: NamedSource[];
    try {
      parts = (await adapter.parts?.(config, pool)) ?? [];
    } catch (error) {
      await pool.end();
      throw new SourceUnavailable(errorText(error), false, error);
    }
    if (parts.length > 0) config = { ...config, partTenants: parts.flatMap((p) => (p.clientOf ? [p.clientOf.tenant] : [])) };
    let built: ReturnType<SourceAdapter['build']>;
    let unindexed: Set<string>;
    try {
      built = adapter.build(config);
      unindexed = await unindexedCursors(pool, built.streams);
    } catch (error) {
      await pool.end();
      throw new SourceUnavailable(`source ${config.name}: ${errorText(error)}`, false, error);
    }
    const added = [this.activate(config, adapter, pool, built, unindexed)];
    for (const part of parts) {
      try {
        added.push(...(await this.addSource(part)));
      } catch (error) {
        if (!(error instanceof SourceUnavailable) || !this.options.waitForSources) throw error;
        this.waitFor(part, error);
      }
    }
    return added;
  }

  /** A connected source with its streams and snapshots, resumed from their checkpoints. */
  private activate(config: NamedSource, adapter: SourceAdapter, pool: pg.Pool, built: ReturnType<SourceAdapter['build']>, unindexed: ReadonlySet<string>): ActiveSource {
    const active: ActiveSource = { config, adapter, pool, streams: [], snapshots: [] };
    const connect = () => pool.connect();
    const metrics = this.options.metrics;
    for (const stream of built.streams) {
      const id = stream.spec.id;
      const checkpoint = this.options.store.load(id);
      const saved = checkpoint?.extra as { metrics?: SavedMetrics; counters?: unknown; versions?: unknown } | undefined;
      metrics?.restoreStream(id, saved?.metrics);
      const status = newStatus(id, config, stream.table, 'incremental', stream.spec);
      const intervalMs = unindexed.has(id) ? stream.unindexedIntervalMs! : config.pollInterval;
      status.intervalMs = intervalMs;
      restoreStreamCounters(status, this.quality, saved?.counters);
      const companion = {
        save: () => ({ metrics: metrics?.saveStream(id), counters: saveStreamCounters(status, this.quality), versions: journal.carried() }),
        saved: (state: unknown, saved: { updatedAt: string }) => {
          const { metrics: savedMetrics, versions } = state as { metrics?: SavedMetrics; versions: JournalEntry[] };
          if (metrics && savedMetrics) metrics.committed(id, savedMetrics);
          journal.checkpointed(saved.updatedAt, versions);
        },
      };
      const journal = new VersionJournal(this.options.store.journalPath?.(id), checkpoint?.updatedAt, saved?.versions);
      if (checkpoint?.watermark) status.watermarkAt = cursorTime(checkpoint.watermark);
      if (unindexed.has(id)) {
        this.options.logger.warn(
          { stream: id, intervalMs, index: indexStatement(stream.spec) },
          `${stream.spec.table} has no index on ${stream.spec.cursorColumn}: each poll scans it, so it is polled every ${Math.round(intervalMs / 1000)} s; create the index to poll it every ${Math.round(config.pollInterval / 1000)} s`,
        );
      }
      active.streams.push({
        stream, reader: new IncrementalReader(stream.spec, this.options.store, connect, companion), status, intervalMs,
        reconciler: this.reconcilerFor(config, pool, stream, status), journal,
        resumedFrom: checkpoint ? { at: new Date(checkpoint.updatedAt), watermark: checkpoint.watermark ? new Date(cursorTime(checkpoint.watermark)) : null } : undefined,
      });
    }
    for (const query of built.snapshots) active.snapshots.push({ query, status: { ...newStatus(query.id, config, snapshotTable(query), 'snapshot'), intervalMs: config.snapshotInterval } });
    this.sources.push(active);
    this.options.logger.info(
      { source: config.name, type: config.type, streams: built.streams.map((s) => s.table), snapshots: built.snapshots.map((s) => s.table) },
      'source ready',
    );
    return active;
  }

  /**
   * `run` waits for a source it cannot use yet: its planned streams show as failing with the
   * reason, and connecting is retried with capped exponential backoff and jitter.
   */
  private waitFor(config: NamedSource, error: SourceUnavailable): void {
    const pending: PendingSource = { config, statuses: plannedStatuses(adapterFor(config.type), config), failures: 0, missingTables: error.missingTables };
    this.pending.push(pending);
    this.failedToConnect(pending, error);
  }

  private failedToConnect(pending: PendingSource, error: SourceUnavailable): void {
    pending.failures += 1;
    pending.missingTables = error.missingTables;
    const now = this.now();
    for (const status of pending.statuses) {
      status.polls += 1;
      status.lastPollStartedAt = now;
      status.lastError = error.message;
    }
    const delay = retryDelayMs(pending.failures, CONNECT_BACKOFF);
    this.options.logger.error({ source: pending.config.name, error: error.message, retryInMs: delay }, 'source not available; retrying');
    pending.timer = setTimeout(() => void this.retryConnect(pending), delay);
  }

  private async retryConnect(pending: PendingSource): Promise<void> {
    if (this.stopped) return;
    let added: ActiveSource[];
    try {
      added = await this.addSource(pending.config);
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof SourceUnavailable) {
        this.failedToConnect(pending, error);
        this.dropSkippedSources();
        return;
      }
      this.pending.splice(this.pending.indexOf(pending), 1);
      this.options.onFatal?.(error as Error);
      return;
    }
    this.pending.splice(this.pending.indexOf(pending), 1);
    if (this.stopped) {
      for (const source of added) {
        this.sources.splice(this.sources.indexOf(source), 1);
        await source.pool.end();
      }
      return;
    }
    this.options.logger.info({ source: pending.config.name, afterAttempts: pending.failures + 1 }, 'source connected');
    this.dropSkippedSources();
    if (this.started) for (const source of added) this.startSource(source);
  }

  /**
   * Sources chosen automatically whose tables are missing are skipped once another source is
   * in use (that database simply is not that kind of source); while none is, all are retried.
   */
  private dropSkippedSources(): void {
    if (!this.options.autoSources || this.sources.length === 0) return;
    for (const pending of this.pending.filter((p) => p.missingTables)) {
      clearTimeout(pending.timer);
      this.pending.splice(this.pending.indexOf(pending), 1);
      this.options.logger.info({ source: pending.config.name }, 'source skipped: its tables are not in the database');
    }
  }

  statuses(): StreamStatus[] {
    return [
      ...this.sources.flatMap((s) => [...s.streams.map((x) => x.status), ...s.snapshots.map((x) => x.status)]),
      ...this.pending.flatMap((p) => p.statuses),
    ];
  }

  /** The ClickHouse store the events go to, if one of the sinks writes there. */
  private eventStore(): EventStore | undefined {
    return this.options.sinks.find((s): s is ClickHouseSink => s instanceof ClickHouseSink)?.store;
  }

  private reconcilerFor(config: NamedSource, pool: pg.Pool, stream: IncrementalStream, status: StreamStatus): StreamReconciler | undefined {
    const store = this.eventStore();
    if (!store || !stream.stored || config.reconcileInterval <= 0) return undefined;
    return new StreamReconciler({
      pool, store, stream, status, logger: this.options.logger, now: () => this.now(),
      settings: { intervalMs: config.reconcileInterval, days: config.reconcileDays, maxCommitDelayMs: config.maxCommitDelay, sweepWindowMs: config.sweepWindow, startFrom: config.startFrom },
      classify: () => this.classifyContext(),
    });
  }

  /** A mapping context that records nothing (reconciliation only asks whether a row maps). */
  private classifyContext(): MapContext {
    return { ...this.mapContext('', () => ''), repaired: () => undefined };
  }

  /**
   * `tokenwatch verify`: the per-day comparison of every reconcilable stream over its closed
   * days (`days` back), without repairing anything.
   */
  async verify(days?: number): Promise<StreamComparison[]> {
    const store = this.eventStore();
    if (!store) throw new Error('verify compares the sources with the ClickHouse event store, and no ClickHouse sink is configured');
    const out: StreamComparison[] = [];
    for (const source of this.sources) {
      for (const { stream, status } of source.streams) {
        if (!stream.stored) continue;
        const settings = { intervalMs: 0, days: days ?? source.config.reconcileDays, maxCommitDelayMs: source.config.maxCommitDelay, sweepWindowMs: source.config.sweepWindow, startFrom: source.config.startFrom };
        const window = reconcileWindow(settings, this.now(), status.watermarkAt);
        if (window === undefined) {
          out.push({ stream: stream.spec.id, days: [], from: '', to: '' });
          continue;
        }
        out.push(await compareStream(source.pool, store, stream, window, this.classifyContext()));
      }
    }
    return out;
  }

  private mapContext(streamId: string, rowId: () => string): MapContext {
    return {
      repaired: (reason, detail) => this.quality.record(streamId, 'repaired', reason, detail, rowId()),
      maxContentBytes: this.options.config.quality.maxContentBytes,
      futureToleranceMs: this.options.config.quality.futureTolerance,
      pricing: this.pricing,
      now: this.now(),
    };
  }

  private sinkStatusOf(name: string): SinkStatus {
    let status = this.sinkStatus.get(name);
    if (!status) this.sinkStatus.set(name, (status = { sink: name, up: true, failures: 0, eventsWritten: 0, rowsRejected: [] }));
    return status;
  }

  private async emit(events: CanonicalEvent[], stored?: ReadonlyMap<string, StoredVersion>): Promise<void> {
    if (events.length === 0) return;
    for (const sink of this.options.sinks) {
      const status = this.sinkStatusOf(sink.name);
      try {
        await sink.write(events, stored);
        status.up = true;
        status.eventsWritten += events.length;
      } catch (error) {
        status.up = false;
        status.failures += 1;
        throw new Error(`sink ${sink.name}: ${errorText(error)}`, { cause: error });
      }
    }
  }

  /** Failed writes counted by the previous process (metrics/durable-counters.ts). */
  restoreSinkFailures(sink: string, failures: number): void {
    const status = this.sinkStatusOf(sink);
    status.failures = Math.max(status.failures, failures);
  }

  sinks(): SinkStatus[] {
    return this.options.sinks.map((s) => ({ ...this.sinkStatusOf(s.name), rowsRejected: s.rejectedRows?.() ?? [] }));
  }

  /**
   * Maps rows through the stream's adapter; rejected rows are counted and skipped. `keepRequest`
   * false drops a row's request event (the bulk path stored it already).
   */
  private mapRows(entry: ActiveSource['streams'][number], rows: readonly Record<string, unknown>[], keepRequest: (row: Record<string, unknown>) => boolean = () => true): CanonicalEvent[] {
    const { stream, status } = entry;
    const events: CanonicalEvent[] = [];
    let current: Record<string, unknown> = {};
    const ctx = this.mapContext(stream.spec.id, () => stream.rowId(current));
    // Copies of a row (same id; the reader returns them side by side, in timestamp and id
    // order) are delivered once.
    const ids = new Set<string>();
    for (const row of rows) {
      current = row;
      const id = stream.rowId(row);
      if (ids.has(id)) {
        status.rowsRejected += 1;
        this.quality.record(stream.spec.id, 'rejected', 'duplicate_id', `another row of this page has the same ${stream.spec.idColumn}`, id);
        continue;
      }
      ids.add(id);
      const outcome = mapRowChecked(() => stream.map(row, ctx));
      if (outcome.rejected) {
        status.rowsRejected += 1;
        this.quality.record(stream.spec.id, 'rejected', outcome.rejected.reason, outcome.rejected.message, id);
        continue;
      }
      for (const event of outcome.events) fitStoreLimits(event, ctx);
      events.push(...(keepRequest(row) ? outcome.events : outcome.events.filter((e) => e.kind !== 'request')));
    }
    return events;
  }

  /** Runs one poll of a stream, keeping its status; a failed poll forgets the metrics of its unsaved pages. */
  private async trackPoll(entry: ActiveSource['streams'][number], poll: () => Promise<PollResult>): Promise<number> {
    await this.recover(entry);
    const { stream, status } = entry;
    status.lastPollStartedAt = this.now();
    status.polls += 1;
    try {
      const result = await poll();
      status.lastSuccessAt = this.now();
      status.lastSuccessStartedAt = status.lastPollStartedAt;
      if (result.checkpoint.watermark) status.watermarkAt = cursorTime(result.checkpoint.watermark);
      status.lastError = null;
      return result.rows;
    } catch (error) {
      // Rows of pages not checkpointed will be read again: forget what they recorded.
      this.options.metrics?.rollbackStream(stream.spec.id);
      entry.journal.rolledBack();
      if (!(error instanceof PollAborted)) status.lastError = errorText(error);
      throw error;
    } finally {
      status.lastPollDurationMs = this.now() - status.lastPollStartedAt;
    }
  }

  /** Maps, delivers and counts one page of a stream's rows. */
  private pageHandler(entry: ActiveSource['streams'][number], onPage?: (rows: number) => void): (rows: Record<string, unknown>[]) => Promise<void> {
    const { stream, status, journal } = entry;
    return async (rows) => {
      const events = this.mapRows(entry, rows);
      const delivered = await deliverPage(events, {
        streamId: stream.spec.id, ledger: this.ledger, journal, metrics: this.options.metrics,
        emit: (toWrite, stored) => this.emit(toWrite, stored),
      });
      status.rowsRead += rows.length;
      status.eventsEmitted += delivered.written;
      status.rowsRevised += delivered.revised;
      status.rowsIncomplete += rows.filter((r) => r.__complete === false).length;
      this.options.logger.debug({ stream: stream.spec.id, rows: rows.length, ...delivered }, 'page delivered');
      onPage?.(rows.length);
    };
  }

  /** One poll of an incremental stream: everything committed since the previous poll (and the straggler sweep when due). */
  async pollStream(entry: ActiveSource['streams'][number], onPage?: (rows: number) => void): Promise<number> {
    const handle = this.pageHandler(entry, onPage);
    return this.trackPoll(entry, async () => {
      const swept = await this.sweepIfDue(entry, handle);
      // Between two polls' reads, so what it delivers is checkpointed with the next poll.
      const reconciled = entry.reconciler?.due() ? await entry.reconciler.run(handle) : 0;
      const result = await entry.reader.poll(handle, this.stopping.signal);
      return { ...result, rows: result.rows + swept + reconciled };
    });
  }

  /**
   * Runs the stream's straggler sweep when it is due (docs/how-rows-are-read.md, "Rows that commit late"): rows
   * that committed after the polls covering their timestamp had passed are delivered now,
   * once, and counted.
   */
  private async sweepIfDue(entry: ActiveSource['streams'][number], handle: (rows: Record<string, unknown>[]) => Promise<void>): Promise<number> {
    if (!entry.reader.sweepDue()) return 0;
    const { status } = entry;
    const result = await entry.reader.sweep(handle);
    if (result.rows === 0) return 0;
    status.rowsLate += result.rows;
    status.rowsBeyondSweepWindow += result.beyondWindow;
    status.lateMaxDelayMs = Math.max(status.lateMaxDelayMs, result.maxDelayMs);
    const fields = { stream: status.id, rows: result.rows, beyondSweepWindow: result.beyondWindow, maxDelaySeconds: Math.round(result.maxDelayMs / 1000), maxCommitDelaySeconds: (status.maxCommitDelayMs ?? 0) / 1000 };
    if (result.beyondWindow > 0) this.options.logger.error(fields, 'rows committed later than the sweep window: rows committing even later are missed (raise sweepWindow)');
    else this.options.logger.warn(fields, 'late rows delivered by the straggler sweep (they committed later than maxCommitDelay)');
    return result.rows;
  }

  /**
   * Once per process and source, before the first stream of the source that resumes from a
   * checkpoint is read: lets the sinks repair writes a crash may have cut short since the
   * oldest checkpoint of the source's streams (they share the event tables).
   */
  private async recover(entry: ActiveSource['streams'][number]): Promise<void> {
    if (entry.resumedFrom === undefined) return;
    const active = this.sourceOf(entry);
    const resumed = active.streams.flatMap((s) => (s.resumedFrom ? [s.resumedFrom] : []));
    for (const s of active.streams) s.resumedFrom = undefined;
    if (this.options.previousRunClean) return;
    const since = new Date(Math.min(...resumed.map((r) => r.at.getTime())));
    // Every row a poll emits has its cursor at or above the checkpoint's watermark.
    const notBefore = resumed.some((r) => r.watermark === null) ? null : new Date(Math.min(...resumed.map((r) => r.watermark!.getTime())));
    for (const sink of this.options.sinks) {
      const repaired = (await sink.recover?.(active.config.type, since, notBefore)) ?? [];
      if (repaired.length > 0) this.options.logger.info({ source: active.config.name, sink: sink.name, repaired }, 'repaired rows written after the last checkpoint');
    }
  }

  /** One read of a table updated in place (snapshot-poll.ts). */
  pollSnapshot(source: ActiveSource, entry: ActiveSource['snapshots'][number]): Promise<number> {
    return pollSnapshot(source.pool, entry, {
      mapContext: (id) => this.mapContext(id, () => ''), quality: this.quality, emit: (events) => this.emit(events),
      metrics: this.options.metrics, now: () => this.now(),
    });
  }

  /**
   * Reads everything committed up to now, once: one poll per stream (a poll reads all rows
   * visible when it starts) and one read of every snapshot table. Safe to repeat. Streams
   * with a bulk path are read in chunks when the event store is the only sink and the
   * configuration allows it (clickhouse.bulkBackfill).
   */
  async backfill(onProgress?: (stream: string, rows: number) => void, options: { transport?: BulkTransport } = {}): Promise<{ rows: number }> {
    let rows = 0;
    for (const source of this.sources) {
      for (const entry of source.streams) {
        if (this.stopped) return { rows };
        const progress = (n: number) => onProgress?.(entry.stream.spec.id, n);
        const sink = await this.bulkSink(source, entry);
        rows += sink ? await this.pollStreamBulk(entry, sink, progress, options.transport) : await this.pollStream(entry, progress);
      }
      for (const entry of source.snapshots) {
        if (this.stopped) return { rows };
        rows += await this.pollSnapshot(source, entry);
      }
    }
    return { rows };
  }

  /**
   * Asks a backfill to end: row-by-row polls stop after their current page, the backfill
   * after its current stream; every finished page is checkpointed. close() still follows.
   */
  interrupt(): void {
    this.stopped = true;
    this.stopping.abort();
  }

  /** The ClickHouse sink a bulk backfill of this stream writes through, or undefined for row by row. */
  private async bulkSink(source: ActiveSource, entry: ActiveSource['streams'][number]): Promise<ClickHouseSink | undefined> {
    const sinks = this.options.sinks;
    if (!this.options.config.clickhouse.bulkBackfill || entry.stream.bulk === undefined) return undefined;
    if (sinks.length !== 1 || !(sinks[0] instanceof ClickHouseSink)) return undefined;
    // COPY text is passed to ClickHouse as bytes: only a UTF-8 database guarantees valid text
    // (map() repairs other bytes and counts them).
    const { rows } = await source.pool.query<{ encoding: string }>("SELECT current_setting('server_encoding') AS encoding");
    if (rows[0]?.encoding !== 'UTF8') {
      this.options.logger.info({ stream: entry.stream.spec.id, encoding: rows[0]?.encoding }, 'bulk backfill needs a UTF8 database: reading row by row');
      return undefined;
    }
    // Chunks are mapped and counted in ClickHouse, which cannot see two copies of a row:
    // only an id the database keeps unique makes that safe (the proxy's primary key).
    const { table, idColumn } = entry.stream.spec;
    const unique = await source.pool.query<{ unique: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnatts = 1 AND i.indpred IS NULL AND a.attname = $2) AS unique`,
      [table, unquoteIdent(idColumn)],
    );
    if (unique.rows[0]?.unique !== true) {
      this.options.logger.info({ stream: entry.stream.spec.id }, `bulk backfill needs a unique index on ${idColumn}: reading row by row`);
      return undefined;
    }
    return sinks[0];
  }

  /**
   * One poll of a stream through its bulk path, chunk by chunk (docs/event-store.md, "Backfill at bulk
   * speed"): clean rows go PostgreSQL COPY -> ClickHouse mapping -> requests; the others, and
   * clean rows with more events than their request, through map() as in pollStream.
   */
  private async pollStreamBulk(entry: ActiveSource['streams'][number], sink: ClickHouseSink, onPage: (rows: number) => void, transport?: BulkTransport): Promise<number> {
    const { stream, reader, status } = entry;
    const spec = stream.bulk!;
    const id = stream.spec.id;
    const ctx = this.bulkContext();
    const loadStore = await sink.store.connectAgain();
    const aggregateStore = await sink.store.connectAgain().catch(async (error: unknown) => {
      await loadStore.close();
      throw error;
    });
    const loader = await BulkLoader.open({
      store: sink.store, loadStore, aggregateStore, streamId: id, source: this.sourceOf(entry).config.type, transport,
      structure: spec.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', '),
      derived: spec.derived(ctx), mapping: spec.requests(ctx), clean: spec.clean(ctx), otherEvents: spec.otherEvents,
    }).catch(async (error: unknown) => {
      await loadStore.close();
      await aggregateStore.close();
      throw error;
    });
    const columns = spec.columns.map((c) => `${c.sql} AS ${quoteIdent(c.name)}`).join(', ');
    let idType: string | undefined;
    try {
      return await this.trackPoll(entry, async () => {
        const swept = await this.sweepIfDue(entry, this.pageHandler(entry, onPage));
        const result = await reader.pollInChunks({
        // PostgreSQL -> spool file, on the poll's connection.
        copy: async (chunk) => {
          const file = loader.spoolFile();
          const rows = await copyToFile(chunk.client, `COPY (SELECT ${columns} FROM ${stream.spec.table} t WHERE ${chunk.where}) TO STDOUT`, file);
          return { file, rows };
        },
        // File -> ClickHouse staging, mapped, while the next chunk is copied.
        load: async ({ file }, index) => {
          const slot = index % SLOTS;
          const started = performance.now();
          const rows = await loader.load(slot, file);
          return { slot, rows, rest: await loader.rest(slot), loadMs: performance.now() - started };
        },
        // The rows map() has to see, read again by id on the poll's connection.
        rest: async (chunk, loaded) => ({
          ...loaded,
          restEvents: loaded.rest.length === 0 ? [] : await chunk.withClient(async (client) => this.mapRestOfChunk(entry, client, loaded.rest, (idType ??= await idTypeOf(client, entry.stream)))),
        }),
        // Commit, and the metrics of the whole chunk, in chunk order.
        finish: async ({ rows, slot, rest, restEvents, loadMs }) => {
          const started = performance.now();
          // The aggregate reads the staged chunk while it commits (on its own connection); the
          // increments are recorded once the chunk is committed.
          const [, groups] = await Promise.all([loader.commit(slot), loader.aggregate(slot)]);
          this.options.metrics?.recordRequestGroups(id, groups);
          this.options.metrics?.recordStream(id, restEvents);
          const bulkEvents = rows - rest.filter((r) => !r.clean).length;
          status.rowsRead += rows;
          status.eventsEmitted += bulkEvents + restEvents.length;
          this.sinkStatusOf(sink.name).eventsWritten += bulkEvents;
          onPage(rows);
          this.options.logger.debug(
            { stream: id, rows, rowByRow: rest.length, loadMs: Math.round(loadMs), commitMs: Math.round(performance.now() - started) },
            'bulk chunk',
          );
        },
      }, { chunkRows: this.options.config.clickhouse.bulkChunkRows, slots: SLOTS });
        return { ...result, rows: result.rows + swept };
      });
    } finally {
      await loader.close().catch(() => undefined);
      await loadStore.close().catch(() => undefined);
      await aggregateStore.close().catch(() => undefined);
    }
  }

  private sourceOf(entry: ActiveSource['streams'][number]): ActiveSource {
    return this.sources.find((s) => s.streams.includes(entry))!;
  }

  private bulkContext(): BulkContext {
    return { pricing: this.pricing, futureLimit: new Date(this.now() + this.options.config.quality.futureTolerance).toISOString() };
  }


  /**
   * The rows of a chunk the bulk path does not finish, read again by id in the chunk's
   * transaction and mapped: rows that are not clean in full (requests included), clean rows
   * only for their other events (their request is stored already).
   */
  private async mapRestOfChunk(entry: ActiveSource['streams'][number], client: pg.PoolClient, rest: { id: string; clean: boolean }[], idType: string): Promise<CanonicalEvent[]> {
    const { stream } = entry;
    const { table, idColumn, selectList, batchSize } = stream.spec;
    const clean = new Map(rest.map((r) => [r.id, r.clean]));
    // Kept for the metrics, recorded when the chunk finishes; content is not needed there.
    const forMetrics: CanonicalEvent[] = [];
    for (let i = 0; i < rest.length; i += batchSize) {
      const ids = rest.slice(i, i + batchSize).map((r) => r.id);
      // = ANY of the column's own type, so the primary key index is used.
      const page = await client.query(`SELECT ${selectList} FROM ${table} t WHERE t.${idColumn} = ANY($1::${idType}[])`, [ids]);
      const events = this.mapRows(entry, page.rows, (row) => clean.get(stream.rowId(row)) !== true);
      await this.emit(events);
      for (const e of events) forMetrics.push(e.kind === 'message' ? { ...e, content: '' } : e);
    }
    return forMetrics;
  }

  /**
   * Rows a backfill would read at most: the planner's estimate of each append-only table's
   * size (no count(*) scan), for progress bars.
   */
  async estimateRows(): Promise<number> {
    let total = 0;
    for (const source of this.sources) {
      for (const { stream } of source.streams) {
        total += await plannerRowEstimate(source.pool, stream.spec.table);
      }
    }
    return total;
  }

  /**
   * Polls every stream and snapshot on its interval until close(); sources still being waited
   * for start when they connect. Failures are logged and retried with backoff.
   */
  start(): void {
    this.started = true;
    for (const source of this.sources) this.startSource(source);
  }

  private startSource(source: ActiveSource): void {
    for (const entry of source.streams) {
      this.scheduler.every(entry.status.id, entry.intervalMs, () => this.pollStream(entry));
    }
    for (const entry of source.snapshots) {
      this.scheduler.every(entry.status.id, source.config.snapshotInterval, () => this.pollSnapshot(source, entry));
    }
  }

  /**
   * True while a stream resumed after an unclean stop has not had its repair yet (it was
   * never polled): the next start must still repair, so this stop does not count as clean.
   */
  repairPending(): boolean {
    return !this.options.previousRunClean && this.sources.some((s) => s.streams.some((x) => x.resumedFrom !== undefined));
  }

  /**
   * Stops polling: a poll in flight stops after its current page (its progress saved) and
   * is awaited; then the pools and sinks close.
   */
  async close(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    for (const pending of this.pending) clearTimeout(pending.timer);
    await this.scheduler.stop();
    await Promise.allSettled(this.sources.map((s) => s.pool.end()));
    for (const sink of this.options.sinks) await sink.close();
  }
}
