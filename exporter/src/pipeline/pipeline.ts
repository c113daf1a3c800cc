// The runner: owns every source's pool, polls incremental streams and snapshot queries on
// their intervals, maps rows through the adapters, hands events to the sinks and records the
// status of every stream. Adapters never see timers, retries or sinks.
import { StreamReconciler, reconcileWindow } from './stream-reconciler.ts';
import { compareStream, type StreamComparison } from './reconcile.ts';
import type pg from 'pg';
import type { Config } from '../config/schema.ts';
import type { CanonicalEvent } from '../model/events.ts';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import { plannerRowEstimate } from '../db/postgres.ts';
import type { IncrementalStream, MapContext, NamedSource, SnapshotQuery, SourceAdapter } from '../sources/adapter.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { Pricing } from '../pricing/pricing.ts';
import { IncrementalReader } from '../reader/incremental-reader.ts';
import { cursorTime } from '../reader/chunked-read.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import type { BulkTransport } from '../store/bulk-load.ts';
import { indexStatement } from '../reader/cursor-index.ts';
import type { CheckpointStore } from '../reader/checkpoint-store.ts';
import { RowQuality } from '../quality/row-quality.ts';
import { restoreStreamCounters, saveStreamCounters } from './stream-counters.ts';
import type { Sink } from '../sinks/sink.ts';
import type { MetricsRegistry, SavedMetrics } from '../metrics/registry.ts';
import type { SinkStatus, StreamStatus } from './status.ts';
import { MemoryLedger, type JournalEntry, type StoredVersion, type VersionLedger } from '../model/row-versions.ts';
import { VersionJournal } from './version-journal.ts';
import { PollScheduler } from './poll-scheduler.ts';
import { pollSnapshot } from './snapshot-poll.ts';
import { StreamRunner, type StreamServices } from './stream-runner.ts';
import { bulkSinkFor, pollBulk, type BulkPollDeps } from './bulk-poll.ts';
import { SourceUnavailable, connectSource, newStatus, snapshotTable, type ConnectedSource } from './source-connect.ts';
import { SourceRetry } from './source-retry.ts';
import { repriceStream, type RepriceResult } from './reprice.ts';
import { ReplicationRunner } from './replication-runner.ts';

export type { SinkStatus, StreamStatus } from './status.ts';

interface ActiveSource {
  config: NamedSource;
  adapter: SourceAdapter;
  pool: pg.Pool;
  streams: StreamRunner[];
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

const NO_SOURCE_TABLES = 'no source has its tables in the database: set TOKENWATCH_SOURCES or `sources:` and check the schema and table names';

export class Pipeline {
  readonly sources: ActiveSource[] = [];
  readonly quality: RowQuality;
  private readonly options: PipelineOptions;
  private readonly pricing: Pricing;
  private readonly now: () => number;
  private readonly scheduler: PollScheduler;
  private readonly waiting: SourceRetry;
  private stopped = false;
  private started = false;
  /** Aborted by close(): a long poll stops between pages with its progress saved. */
  private readonly stopping = new AbortController();
  private readonly sinkStatus = new Map<string, SinkStatus>();
  /** What every stream runner shares. */
  private readonly services: StreamServices;
  /** Sources read by logical replication (mode: replication), once started. */
  private readonly replication: ReplicationRunner[] = [];

  private constructor(options: PipelineOptions) {
    this.options = options;
    const store = options.sinks.find((s) => s.storedVersions !== undefined);
    const keepMs = Math.max(0, ...options.config.sources.map((s) => s.maxCommitDelay + s.sweepWindow));
    // Where delivered row versions are looked up: the event store, or this process's memory.
    const ledger: VersionLedger = store ? { storedVersions: (events) => store.storedVersions!(events) } : new MemoryLedger(keepMs);
    this.quality = options.quality ?? new RowQuality(options.logger, options.config.quality.logInterval);
    this.pricing = new Pricing(options.config.pricing);
    this.now = options.now ?? Date.now;
    this.scheduler = new PollScheduler(options.logger);
    this.waiting = new SourceRetry({
      logger: options.logger, now: () => this.now(),
      connect: (config) => this.connectWaited(config),
      onFatal: (error) => options.onFatal?.(error),
      afterAttempt: () => this.dropSkippedSources(),
    });
    this.services = {
      logger: options.logger, metrics: options.metrics, quality: this.quality, ledger, stopping: this.stopping.signal,
      now: () => this.now(),
      mapContext: (streamId, rowId) => this.mapContext(streamId, rowId),
      emit: (events, stored) => this.emit(events, stored),
      recover: (runner) => this.recover(runner),
    };
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
          if (options.waitForSources) pipeline.waiting.waitFor(source, error);
          else if (!(error.missingTables && options.autoSources)) throw error;
          else options.logger.info({ source: source.name }, `source skipped: ${error.message}`);
        }
      }
    } catch (error) {
      await pipeline.close();
      throw error;
    }
    pipeline.dropSkippedSources();
    if (pipeline.sources.length === 0 && pipeline.waiting.size === 0) {
      await pipeline.close();
      throw new Error(NO_SOURCE_TABLES);
    }
    return pipeline;
  }

  /**
   * Connects a source (source-connect.ts), then adds its parts, each a source of its own;
   * throws SourceUnavailable when the source's own database cannot be used. A part that
   * cannot be used yet is waited for like any source (`run`), or fails the open (backfill).
   * Returns the sources added.
   */
  private async addSource(config: NamedSource): Promise<ActiveSource[]> {
    const connected = await connectSource(config);
    const added = [this.activate(connected)];
    for (const part of connected.parts) {
      try {
        added.push(...(await this.addSource(part)));
      } catch (error) {
        if (!(error instanceof SourceUnavailable) || !this.options.waitForSources) throw error;
        this.waiting.waitFor(part, error);
      }
    }
    return added;
  }

  /** A source `run` waited for has connected: it starts polling (unless the pipeline stopped meanwhile). */
  private async connectWaited(config: NamedSource): Promise<void> {
    const added = await this.addSource(config);
    if (this.stopped) {
      for (const source of added) {
        this.sources.splice(this.sources.indexOf(source), 1);
        await source.pool.end();
      }
      return;
    }
    if (this.started) for (const source of added) this.startSource(source);
  }

  /** A connected source with its streams and snapshots, resumed from their checkpoints. */
  private activate({ config, adapter, pool, built, unindexed, absent }: ConnectedSource): ActiveSource {
    if (absent.length > 0) this.options.logger.info({ source: config.name, columns: absent }, 'columns not in this version of the source schema: read as empty');
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
      const journal = new VersionJournal(this.options.store.journalPath?.(id), checkpoint?.updatedAt, saved?.versions);
      // Saved in the same atomic write as the reader's position: the counters and the
      // classifications not yet counted move with it.
      const companion = {
        save: () => ({ metrics: metrics?.saveStream(id), counters: saveStreamCounters(status, this.quality), versions: journal.carried() }),
        saved: (state: unknown, saved: { updatedAt: string }) => {
          const { metrics: savedMetrics, versions } = state as { metrics?: SavedMetrics; versions: JournalEntry[] };
          if (metrics && savedMetrics) metrics.committed(id, savedMetrics);
          journal.checkpointed(saved.updatedAt, versions);
        },
      };
      if (checkpoint?.watermark) status.watermarkAt = cursorTime(checkpoint.watermark);
      if (unindexed.has(id)) {
        this.options.logger.warn(
          { stream: id, intervalMs, index: indexStatement(stream.spec) },
          `${stream.spec.table} has no index on ${stream.spec.cursorColumn}: each poll scans it, so it is polled every ${Math.round(intervalMs / 1000)} s; create the index to poll it every ${Math.round(config.pollInterval / 1000)} s`,
        );
      }
      active.streams.push(new StreamRunner({
        stream, reader: new IncrementalReader(stream.spec, this.options.store, connect, companion), status, intervalMs,
        reconciler: this.reconcilerFor(config, pool, stream, status), journal, companion,
        resumedFrom: checkpoint ? { at: new Date(checkpoint.updatedAt), watermark: checkpoint.watermark ? new Date(cursorTime(checkpoint.watermark)) : null } : undefined,
      }, this.services));
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
   * Sources chosen automatically whose tables are missing are skipped once another source is
   * in use (that database simply is not that kind of source); while none is, all are retried.
   */
  private dropSkippedSources(): void {
    if (this.options.autoSources && this.sources.length > 0) this.waiting.dropMissingTables();
  }

  statuses(): StreamStatus[] {
    return [
      ...this.sources.flatMap((s) => [...s.streams.map((x) => x.status), ...s.snapshots.map((x) => x.status)]),
      ...this.waiting.statuses(),
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

  /**
   * `tokenwatch reprice`: the stored costs of the requests with a timestamp in [from, to),
   * computed again with the current prices (reprice.ts). Counters are not changed.
   */
  async reprice(from: number, to: number, onDay?: (stream: string, day: string, rows: number) => void): Promise<RepriceResult[]> {
    const sink = this.options.sinks.find((s): s is ClickHouseSink => s instanceof ClickHouseSink);
    if (!sink) throw new Error('reprice rewrites costs in the ClickHouse event store, and no ClickHouse sink is configured');
    const out: RepriceResult[] = [];
    for (const source of this.sources) {
      for (const runner of source.streams) {
        if (runner.stream.stored?.table !== 'requests') continue;
        out.push(await repriceStream(source.pool, sink, runner, from, to, (day, rows) => onDay?.(runner.id, day, rows)));
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

  /** One poll of an incremental stream: everything committed since the previous poll (stream-runner.ts). */
  pollStream(entry: StreamRunner, onPage?: (rows: number) => void): Promise<number> {
    return entry.poll(onPage);
  }

  /**
   * Once per process and source, before the first stream of the source that resumes from a
   * checkpoint is read: lets the sinks repair writes a crash may have cut short since the
   * oldest checkpoint of the source's streams (they share the event tables).
   */
  private async recover(entry: StreamRunner): Promise<void> {
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
   * configuration allows it (clickhouse.bulkBackfill; bulk-poll.ts).
   */
  async backfill(onProgress?: (stream: string, rows: number) => void, options: { transport?: BulkTransport } = {}): Promise<{ rows: number }> {
    let rows = 0;
    for (const source of this.sources) {
      if (source.config.mode === 'replication' && source.streams.length > 0) {
        // Its tables are loaded by `run`, under the replication slot's snapshot.
        this.options.logger.warn({ source: source.config.name }, 'source in mode: replication: backfill reads its snapshot tables only; `run` loads its incremental tables from the replication slot');
      }
      for (const entry of source.config.mode === 'replication' ? [] : source.streams) {
        if (this.stopped) return { rows };
        const progress = (n: number) => onProgress?.(entry.id, n);
        const bulk = await this.bulkDeps(source, entry, options.transport);
        rows += bulk ? await pollBulk(entry, bulk, progress) : await entry.poll(progress);
      }
      for (const entry of source.snapshots) {
        if (this.stopped) return { rows };
        rows += await this.pollSnapshot(source, entry);
      }
    }
    return { rows };
  }

  /** What a stream's bulk path needs, or undefined when it reads row by row (bulkSinkFor says why). */
  private async bulkDeps(source: ActiveSource, entry: StreamRunner, transport?: BulkTransport): Promise<BulkPollDeps | undefined> {
    const { config, sinks, logger, metrics } = this.options;
    const sink = await bulkSinkFor(source.pool, entry, sinks, config.clickhouse.bulkBackfill, logger);
    if (!sink) return undefined;
    return {
      sink, source: source.config, pool: source.pool, chunkRows: config.clickhouse.bulkChunkRows, metrics, logger, transport,
      context: { pricing: this.pricing, futureLimit: new Date(this.now() + config.quality.futureTolerance).toISOString() },
      emit: (events) => this.emit(events),
      written: (events) => (this.sinkStatusOf(sink.name).eventsWritten += events),
    };
  }

  /**
   * Asks a backfill to end: row-by-row polls stop after their current page, the backfill
   * after its current stream; every finished page is checkpointed. close() still follows.
   */
  interrupt(): void {
    this.stopped = true;
    this.stopping.abort();
  }

  private sourceOf(entry: StreamRunner): ActiveSource {
    return this.sources.find((s) => s.streams.includes(entry))!;
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
    if (source.config.mode === 'replication') {
      // A lost slot with onSlotLost: polling: the streams are polled from then on.
      const runner = new ReplicationRunner(source, {
        store: this.options.store, logger: this.options.logger,
        onFallback: () => {
          if (!this.stopped) this.pollStreams(source);
        },
        bulkFor: (entry) => this.bulkDeps(source, entry),
      });
      this.replication.push(runner);
      runner.start();
    } else {
      this.pollStreams(source);
    }
    for (const entry of source.snapshots) {
      this.scheduler.every(entry.status.id, source.config.snapshotInterval, () => this.pollSnapshot(source, entry));
    }
  }

  private pollStreams(source: ActiveSource): void {
    for (const entry of source.streams) {
      this.scheduler.every(entry.status.id, entry.intervalMs, () => entry.poll());
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
    this.waiting.stop();
    await Promise.allSettled(this.replication.map((r) => r.stop()));
    await this.scheduler.stop();
    await Promise.allSettled(this.sources.map((s) => s.pool.end()));
    for (const sink of this.options.sinks) await sink.close();
  }
}
