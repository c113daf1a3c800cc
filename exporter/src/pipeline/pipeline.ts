// The runner: owns every source's pool, polls incremental streams and snapshot queries on
// their intervals, maps rows through the adapters, hands events to the sinks and records the
// status of every stream. Adapters never see timers, retries or sinks.
import type pg from 'pg';
import type { Config, SourceConfig } from '../config/schema.ts';
import type { CanonicalEvent } from '../model/events.ts';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import { beginRead, createPool, existingTables } from '../db/postgres.ts';
import { adapterFor } from '../sources/registry.ts';
import type { IncrementalStream, MapContext, SnapshotQuery, SourceAdapter } from '../sources/adapter.ts';
import { Pricing } from '../sources/pricing.ts';
import { IncrementalReader } from '../reader/incremental-reader.ts';
import type { CheckpointStore } from '../reader/checkpoint-store.ts';
import { RowQuality, RowRejected } from '../quality/row-quality.ts';
import type { Sink } from '../sinks/sink.ts';
import type { MetricsRegistry, SavedMetrics } from '../metrics/registry.ts';

export interface StreamStatus {
  id: string;
  source: string;
  sourceType: string;
  table: string;
  kind: 'incremental' | 'snapshot';
  rowsRead: number;
  eventsEmitted: number;
  rowsRejected: number;
  polls: number;
  lastPollStartedAt: number | null;
  lastSuccessAt: number | null;
  /** Start of the last successful poll: everything committed before it has been read. */
  lastSuccessStartedAt: number | null;
  lastPollDurationMs: number | null;
  /** Checkpoint watermark (incremental streams). */
  watermarkAt: number | null;
  lastError: string | null;
}

export interface SinkStatus {
  sink: string;
  /** false after a failed write, until the next write succeeds. */
  up: boolean;
  failures: number;
  eventsWritten: number;
}

interface ActiveSource {
  config: SourceConfig & { name: string };
  adapter: SourceAdapter;
  pool: pg.Pool;
  streams: { stream: IncrementalStream; reader: IncrementalReader; status: StreamStatus }[];
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
}

/** Milliseconds of a cursor value as PostgreSQL prints it in UTC ("2026-01-02 03:04:05.6+00"). */
export function cursorTime(text: string): number {
  const iso = text.replace(' ', 'T').replace(/\+00$/, 'Z');
  return Date.parse(/(Z|[+-]\d\d(:?\d\d)?)$/.test(iso) ? iso : `${iso}Z`);
}

function newStatus(id: string, source: ActiveSource['config'], table: string, kind: StreamStatus['kind']): StreamStatus {
  return {
    id, source: source.name, sourceType: source.type, table, kind,
    rowsRead: 0, eventsEmitted: 0, rowsRejected: 0, polls: 0,
    lastPollStartedAt: null, lastSuccessAt: null, lastSuccessStartedAt: null, lastPollDurationMs: null, watermarkAt: null,
    lastError: null,
  };
}

export class Pipeline {
  readonly sources: ActiveSource[] = [];
  readonly quality: RowQuality;
  private readonly options: PipelineOptions;
  private readonly pricing: Pricing;
  private readonly now: () => number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private stopped = false;
  private readonly sinkStatus = new Map<string, SinkStatus>();

  private constructor(options: PipelineOptions) {
    this.options = options;
    this.quality = options.quality ?? new RowQuality(options.logger, options.config.quality.logInterval);
    this.pricing = new Pricing(options.config.pricing);
    this.now = options.now ?? Date.now;
  }

  /** Connects to every source and checks its tables; throws naming what is missing. */
  static async open(options: PipelineOptions): Promise<Pipeline> {
    const pipeline = new Pipeline(options);
    try {
      for (const source of options.config.sources) await pipeline.addSource(source as ActiveSource['config']);
    } catch (error) {
      await pipeline.close();
      throw error;
    }
    if (pipeline.sources.length === 0) {
      throw new Error('no source has its tables in the database: set TOKENWATCH_SOURCES or `sources:` and check the schema and table names');
    }
    return pipeline;
  }

  private async addSource(config: ActiveSource['config']): Promise<void> {
    const adapter = adapterFor(config.type);
    const pool = createPool(config.databaseUrl!, { applicationName: `tokenwatch/${config.name}` });
    const wanted = adapter.requiredTables.map((t) => config.tables[t] ?? t);
    let present: Set<string>;
    try {
      present = await existingTables(pool, config.schema, wanted);
    } catch (error) {
      await pool.end();
      throw new Error(`source ${config.name}: cannot connect to PostgreSQL: ${errorText(error)}`, { cause: error });
    }
    const missing = wanted.filter((t) => !present.has(t));
    if (missing.length > 0) {
      await pool.end();
      if (this.options.autoSources) {
        this.options.logger.info({ source: config.name, missing }, 'source skipped: its tables are not in the database');
        return;
      }
      throw new Error(`source ${config.name} (${config.type}): tables not found in schema "${config.schema}": ${missing.join(', ')}`);
    }
    const built = adapter.build(config);
    const active: ActiveSource = { config, adapter, pool, streams: [], snapshots: [] };
    const connect = () => pool.connect();
    const metrics = this.options.metrics;
    for (const stream of built.streams) {
      const id = stream.spec.id;
      const checkpoint = this.options.store.load(id);
      metrics?.restoreStream(id, (checkpoint?.extra as { metrics?: SavedMetrics } | undefined)?.metrics);
      const companion = metrics && {
        save: () => ({ metrics: metrics.saveStream(id) }),
        saved: (state: unknown) => metrics.committed(id, (state as { metrics: SavedMetrics }).metrics),
      };
      const status = newStatus(id, config, stream.table, 'incremental');
      if (checkpoint?.watermark) status.watermarkAt = cursorTime(checkpoint.watermark);
      active.streams.push({ stream, reader: new IncrementalReader(stream.spec, this.options.store, connect, companion), status });
    }
    // Snapshot queries are named by their id (two may read the same table).
    for (const query of built.snapshots) active.snapshots.push({ query, status: newStatus(query.id, config, query.id.slice(query.id.indexOf('/') + 1), 'snapshot') });
    this.sources.push(active);
    this.options.logger.info(
      { source: config.name, type: config.type, streams: built.streams.map((s) => s.table), snapshots: built.snapshots.map((s) => s.table) },
      'source ready',
    );
  }

  statuses(): StreamStatus[] {
    return this.sources.flatMap((s) => [...s.streams.map((x) => x.status), ...s.snapshots.map((x) => x.status)]);
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

  private async emit(events: CanonicalEvent[]): Promise<void> {
    if (events.length === 0) return;
    for (const sink of this.options.sinks) {
      const status = this.sinkStatus.get(sink.name) ?? { sink: sink.name, up: true, failures: 0, eventsWritten: 0 };
      this.sinkStatus.set(sink.name, status);
      try {
        await sink.write(events);
        status.up = true;
        status.eventsWritten += events.length;
      } catch (error) {
        status.up = false;
        status.failures += 1;
        throw new Error(`sink ${sink.name}: ${errorText(error)}`, { cause: error });
      }
    }
  }

  sinks(): SinkStatus[] {
    return this.options.sinks.map((s) => ({ ...(this.sinkStatus.get(s.name) ?? { sink: s.name, up: true, failures: 0, eventsWritten: 0 }) }));
  }

  /** One poll of an incremental stream: everything committed since the previous poll. */
  async pollStream(entry: ActiveSource['streams'][number], onPage?: (rows: number) => void): Promise<number> {
    const { stream, reader, status } = entry;
    status.lastPollStartedAt = this.now();
    status.polls += 1;
    try {
      const result = await reader.poll(async (rows) => {
        const events: CanonicalEvent[] = [];
        let current: Record<string, unknown> = {};
        const ctx = this.mapContext(stream.spec.id, () => stream.rowId(current));
        for (const row of rows) {
          current = row;
          try {
            events.push(...stream.map(row, ctx));
          } catch (error) {
            if (!(error instanceof RowRejected)) throw error;
            status.rowsRejected += 1;
            this.quality.record(stream.spec.id, 'rejected', error.reason, error.message, stream.rowId(row));
          }
        }
        await this.emit(events);
        this.options.metrics?.recordStream(stream.spec.id, events);
        status.rowsRead += rows.length;
        status.eventsEmitted += events.length;
        onPage?.(rows.length);
      });
      status.lastSuccessAt = this.now();
      status.lastSuccessStartedAt = status.lastPollStartedAt;
      if (result.checkpoint.watermark) status.watermarkAt = cursorTime(result.checkpoint.watermark);
      status.lastError = null;
      return result.rows;
    } catch (error) {
      // Rows of pages not checkpointed will be read again: forget what they recorded.
      this.options.metrics?.rollbackStream(stream.spec.id);
      status.lastError = errorText(error);
      throw error;
    } finally {
      status.lastPollDurationMs = this.now() - status.lastPollStartedAt;
    }
  }

  /** One read of a table updated in place. */
  async pollSnapshot(source: ActiveSource, entry: ActiveSource['snapshots'][number]): Promise<number> {
    const { query, status } = entry;
    status.lastPollStartedAt = this.now();
    status.polls += 1;
    const client = await source.pool.connect();
    try {
      await beginRead(client);
      const { rows } = await client.query(query.sql, query.params);
      await client.query('COMMIT');
      const ctx = this.mapContext(query.id, () => '');
      const events = query.map(rows, ctx, new Date(this.now()).toISOString());
      await this.emit(events);
      this.options.metrics?.recordSnapshot(query.id, events);
      status.rowsRead += rows.length;
      status.eventsEmitted += events.length;
      status.lastSuccessAt = this.now();
      status.lastSuccessStartedAt = status.lastPollStartedAt;
      status.lastError = null;
      return rows.length;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      status.lastError = errorText(error);
      throw error;
    } finally {
      client.release();
      status.lastPollDurationMs = this.now() - status.lastPollStartedAt;
    }
  }

  /**
   * Reads everything committed up to now, once: one poll per stream (a poll reads all rows
   * visible when it starts) and one read of every snapshot table. Safe to repeat.
   */
  async backfill(onProgress?: (stream: string, rows: number) => void): Promise<{ rows: number }> {
    let rows = 0;
    for (const source of this.sources) {
      for (const entry of source.streams) rows += await this.pollStream(entry, (n) => onProgress?.(entry.stream.spec.id, n));
      for (const entry of source.snapshots) rows += await this.pollSnapshot(source, entry);
    }
    return { rows };
  }

  /**
   * Rows a backfill would read at most: the planner's estimate of each append-only table's
   * size (pg_class.reltuples; no count(*) scan), for progress bars. 0 when never analyzed.
   */
  async estimateRows(): Promise<number> {
    let total = 0;
    for (const source of this.sources) {
      for (const { stream } of source.streams) {
        const { rows } = await source.pool.query<{ n: string | null }>('SELECT greatest(reltuples, 0)::bigint::text AS n FROM pg_class WHERE oid = to_regclass($1)', [stream.spec.table]);
        total += Number(rows[0]?.n ?? 0);
      }
    }
    return total;
  }

  /** Polls every stream and snapshot on its interval until stop(). Failures are logged and retried. */
  start(): void {
    for (const source of this.sources) {
      for (const entry of source.streams) {
        this.loop(entry.status, source.config.pollInterval, () => this.pollStream(entry));
      }
      for (const entry of source.snapshots) {
        this.loop(entry.status, source.config.snapshotInterval, () => this.pollSnapshot(source, entry));
      }
    }
  }

  private loop(status: StreamStatus, intervalMs: number, poll: () => Promise<number>): void {
    let failures = 0;
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      const run = poll();
      this.inFlight.add(run);
      let delay = intervalMs;
      try {
        await run;
        failures = 0;
      } catch (error) {
        failures += 1;
        // Back off up to 10 intervals (at most 5 minutes) while a source keeps failing.
        delay = Math.min(intervalMs * Math.min(2 ** failures, 10), Math.max(intervalMs, 300_000));
        this.options.logger.error({ stream: status.id, error: errorText(error), retryInMs: delay }, 'poll failed');
      } finally {
        this.inFlight.delete(run);
      }
      if (this.stopped) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void tick();
      }, delay);
      this.timers.add(timer);
    };
    void tick();
  }

  /** Stops polling, waits for polls in flight, closes pools and sinks. */
  async close(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled(this.sources.map((s) => s.pool.end()));
    for (const sink of this.options.sinks) await sink.close();
  }
}
