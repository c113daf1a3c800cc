// The ClickHouse side of a bulk backfill: one chunk of source rows arrives as PostgreSQL COPY
// text, ClickHouse maps it to request rows in SQL, and the chunk is committed to `requests`
// exactly once. No row is parsed in JavaScript.
//
// Per chunk:
//  1. load: COPY text -> staging table (in memory, one chunk), mapped on the way by the
//     source's SQL, each row flagged clean (stored as mapped) or not (map() handles it). The
//     embedded engine reads the bytes from a FIFO with file() (chdb parses inline data several
//     times slower than a file); a server receives them as a streamed HTTP insert.
//  2. commit: the clean requests whose ids are not stored yet (the same rule as the
//     row-by-row sink, so a chunk repeated after a crash adds nothing twice and the rollup
//     views stay exact). The chunk reaches `requests` only after COPY succeeded: a chunk that
//     failed half-way leaves rows in staging only, which the next load clears.
//  3. aggregate: the clean rows' metric increments, one row per label combination.
//  4. rest: the ids of the rows map() still has to see.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, constants, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventStore } from './clickhouse.ts';
import { METRICS, type MetricDef } from '../metrics/catalog.ts';
import type { RequestGroup } from '../metrics/registry.ts';
import type { BucketedObservations } from '../metrics/families.ts';

/** The columns of `requests` a writer fills (ingested_at has its default). */
export const REQUEST_COLUMNS = [
  'tenant', 'source', 'request_id', 'started_at', 'ended_at', 'conversation_id', 'branch_id', 'parent_request_id',
  'parent_task_request_id', 'is_subtask', 'account', 'user', 'model', 'provider', 'operation', 'http_status', 'error_type',
  'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cost_usd', 'cost_known', 'duration_ms',
  'ttft_ms', 'tool_calls', 'streaming', 'rate_limit_status',
] as const;

export type BulkTransport = 'fifo' | 'stream';

export interface BulkLoaderOptions {
  /** Commits and aggregates. */
  store: EventStore;
  /**
   * A second connection to the same store, for loads: a chunk loads while the previous one
   * commits (chdb runs one statement at a time per connection).
   */
  loadStore: EventStore;
  streamId: string;
  source: string;
  /** ClickHouse structure of the copied columns, e.g. "request_id String, ts DateTime64(6, 'UTC')". */
  structure: string;
  /** ClickHouse select list over the copied columns that yields REQUEST_COLUMNS, in order. */
  mapping: string;
  /** ClickHouse condition over the copied columns: the row is stored as mapped. */
  clean: string;
  /** ClickHouse condition: a clean row that map() must also see (for its other events). */
  otherEvents: string;
  /** fifo (embedded engine on a system with mkfifo) or stream (any store). */
  transport?: BulkTransport;
}

function sqlString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Per-bucket (not cumulative) counts of `value` as JS observeInto() sorts them, then sum and count. */
function histogramSql(value: string, buckets: readonly number[], present = 'true'): string {
  const counts = buckets.map((b, i) => `countIf(${present} AND ${i === 0 ? '' : `${value} > ${buckets[i - 1]} AND `}${value} <= ${b})`);
  counts.push(`countIf(${present} AND ${value} > ${buckets[buckets.length - 1]})`);
  return `[${counts.join(', ')}], sumIf(${value}, ${present}), countIf(${present})`;
}

function bucketsOf(key: 'tokenUsage' | 'operationDuration' | 'timeToFirstToken'): readonly number[] {
  return (METRICS[key] as MetricDef).buckets!;
}

/** The embedded engine reads a FIFO when the system can make one. */
export function defaultTransport(store: EventStore): BulkTransport {
  if (!store.embedded || process.platform === 'win32') return 'stream';
  try {
    const dir = mkdtempSync(join(tmpdir(), 'tokenwatch-fifo-check-'));
    try {
      execFileSync('mkfifo', [join(dir, 'probe')], { stdio: 'ignore' });
      return 'fifo';
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } catch {
    return 'stream';
  }
}

/** Two staging slots: chunk k loads into one while chunk k-1 commits from the other. */
export type Slot = 0 | 1;

export class BulkLoader {
  private readonly store: EventStore;
  private readonly loadStore: EventStore;
  private readonly options: BulkLoaderOptions;
  readonly transport: BulkTransport;
  private readonly tableBase: string;
  private fifoDir: string | undefined;

  private constructor(options: BulkLoaderOptions) {
    this.store = options.store;
    this.loadStore = options.loadStore;
    this.options = options;
    this.transport = options.transport ?? defaultTransport(options.store);
    // Tables per stream: a stream has one writer (one tokenwatch per source).
    const suffix = createHash('sha256').update(options.streamId).digest('hex').slice(0, 12);
    this.tableBase = `${options.store.database}.bulk_${suffix}`;
  }

  private staging(slot: Slot): string {
    return `${this.tableBase}_staging_${slot}`;
  }

  private raw(slot: Slot): string {
    return `${this.tableBase}_raw_${slot}`;
  }

  static async open(options: BulkLoaderOptions): Promise<BulkLoader> {
    const loader = new BulkLoader(options);
    const db = options.store.database;
    for (const slot of [0, 1] as const) {
      // One chunk per slot, in memory (bounded by bulkChunkRows), flagged per row.
      await loader.store.command(`CREATE TABLE IF NOT EXISTS ${loader.staging(slot)} ENGINE = Memory AS
        SELECT ${REQUEST_COLUMNS.join(', ')}, true AS bulk_clean, true AS bulk_rest FROM ${db}.requests LIMIT 0`);
      if (loader.transport === 'stream') await loader.store.command(`CREATE TABLE IF NOT EXISTS ${loader.raw(slot)} (${options.structure}) ENGINE = Memory`);
    }
    if (loader.transport === 'fifo') loader.fifoDir = mkdtempSync(join(tmpdir(), 'tokenwatch-bulk-'));
    return loader;
  }

  /** Loads one chunk of COPY text (tab-separated, PostgreSQL's text format) into staging; returns its rows. */
  async load(slot: Slot, copy: Readable): Promise<number> {
    const store = this.loadStore;
    const staging = this.staging(slot);
    await store.command(`TRUNCATE TABLE ${staging}`);
    const columns = `${REQUEST_COLUMNS.join(', ')}, bulk_clean, bulk_rest`;
    const clean = `ifNull((${this.options.clean}), false)`;
    const select = `${this.options.mapping}, ${clean}, NOT ${clean} OR ifNull((${this.options.otherEvents}), false)`;
    // Query-level SETTINGS stay with this statement (settings passed through the client
    // would stay on chdb's session).
    const settings = `SETTINGS date_time_input_format = 'best_effort'`;
    if (this.transport === 'fifo') {
      const fifo = join(this.fifoDir!, `chunk-${Date.now()}.fifo`);
      execFileSync('mkfifo', [fifo]);
      try {
        const insert = store.command(
          `INSERT INTO ${staging} (${columns}) SELECT ${select} FROM file(${sqlString(fifo)}, 'TSV', ${sqlString(this.options.structure)}) ${settings}`,
        );
        const [inserted, written] = await Promise.allSettled([insert, writeToFifo(fifo, copy, insert)]);
        // Report the cause: a failed COPY (PostgreSQL's error) before the statement's error,
        // and the statement's error before the broken pipe it leaves the writer with.
        if (written.status === 'rejected' && (written.reason as NodeJS.ErrnoException).code !== 'EPIPE') throw written.reason;
        if (inserted.status === 'rejected') throw inserted.reason;
        if (written.status === 'rejected') throw written.reason;
      } finally {
        rmSync(fifo, { force: true });
      }
    } else {
      const raw = this.raw(slot);
      await store.command(`TRUNCATE TABLE ${raw}`);
      await store.client.insert({ table: raw, values: copy, format: 'TabSeparated' });
      await store.command(`INSERT INTO ${staging} (${columns}) SELECT ${select} FROM ${raw}`);
    }
    const [row] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${staging}`);
    return Number(row!.n);
  }

  /** Writes the clean requests of the staged chunk that are not stored yet. */
  async commit(slot: Slot): Promise<void> {
    const db = this.store.database;
    const staging = this.staging(slot);
    // optimize_on_insert = 0: no ReplacingMergeTree collapse of the inserted block (it holds
    // distinct ids); that pass would double the cost of the insert.
    await this.store.command(`INSERT INTO ${db}.requests (${REQUEST_COLUMNS.join(', ')})
      SELECT ${REQUEST_COLUMNS.join(', ')} FROM ${staging}
      WHERE bulk_clean AND request_id NOT IN (
        SELECT request_id FROM ${db}.requests
        WHERE source = ${sqlString(this.options.source)}
          AND started_at >= (SELECT min(started_at) FROM ${staging}) AND started_at <= (SELECT max(started_at) FROM ${staging}))
      SETTINGS optimize_on_insert = 0`);
  }

  /** Ids of the staged rows map() has to see, and whether each is clean (its request is stored). */
  async rest(slot: Slot): Promise<{ id: string; clean: boolean }[]> {
    const rows = await this.loadStore.query<{ id: string; clean: boolean | number }>(`SELECT request_id AS id, bulk_clean AS clean FROM ${this.staging(slot)} WHERE bulk_rest`);
    return rows.map((r) => ({ id: r.id, clean: r.clean === true || r.clean === 1 }));
  }

  /** The staged chunk's metric increments, one group per label combination. */
  async aggregate(slot: Slot): Promise<RequestGroup[]> {
    const tokenBuckets = bucketsOf('tokenUsage');
    const rows = await this.store.query<Record<string, unknown>>(`
      SELECT source, tenant, model, operation, provider, http_status, error_type, account, rate_limit_status,
        count() AS n_requests, countIf(is_subtask) AS n_subtask, sum(tool_calls) AS sum_tool_calls,
        sum(input_tokens) AS sum_input, sum(output_tokens) AS sum_output,
        sum(cache_read_tokens) AS sum_cache_read, sum(cache_write_tokens) AS sum_cache_write,
        toFloat64(sum(cost_usd)) AS sum_cost,
        tuple(${histogramSql('input_tokens', tokenBuckets)}) AS input_hist,
        tuple(${histogramSql('output_tokens', tokenBuckets)}) AS output_hist,
        tuple(${histogramSql('assumeNotNull(duration_ms) / 1000', bucketsOf('operationDuration'), 'duration_ms IS NOT NULL')}) AS duration_hist,
        tuple(${histogramSql('assumeNotNull(ttft_ms) / 1000', bucketsOf('timeToFirstToken'), 'ttft_ms IS NOT NULL')}) AS ttft_hist,
        max(toUnixTimestamp64Milli(started_at)) AS last_started_at
      FROM ${this.staging(slot)} WHERE bulk_clean
      GROUP BY source, tenant, model, operation, provider, http_status, error_type, account, rate_limit_status`);
    const hist = (value: unknown): BucketedObservations => {
      const [counts, sum, count] = value as [unknown[], unknown, unknown];
      return { counts: counts.map(Number), sum: Number(sum), count: Number(count) };
    };
    const orNull = (value: unknown): string | null => (value === '' ? null : String(value));
    return rows.map((r) => ({
      source: String(r.source), tenant: String(r.tenant), model: String(r.model), operation: String(r.operation), provider: String(r.provider),
      httpStatus: Number(r.http_status) === 0 ? null : Number(r.http_status),
      errorType: orNull(r.error_type), account: orNull(r.account), rateLimitStatus: orNull(r.rate_limit_status),
      requests: Number(r.n_requests), subtaskRequests: Number(r.n_subtask), toolCalls: Number(r.sum_tool_calls),
      inputTokens: Number(r.sum_input), outputTokens: Number(r.sum_output),
      cacheReadTokens: Number(r.sum_cache_read), cacheWriteTokens: Number(r.sum_cache_write), costUsd: Number(r.sum_cost),
      inputTokenUsage: hist(r.input_hist), outputTokenUsage: hist(r.output_hist),
      duration: hist(r.duration_hist), timeToFirstToken: hist(r.ttft_hist),
      lastStartedAt: Number(r.last_started_at),
    }));
  }

  /** Drops the staging tables (they hold only the last chunks). */
  async close(): Promise<void> {
    for (const slot of [0, 1] as const) {
      await this.store.command(`DROP TABLE IF EXISTS ${this.staging(slot)}`);
      await this.store.command(`DROP TABLE IF EXISTS ${this.raw(slot)}`);
    }
    if (this.fifoDir) rmSync(this.fifoDir, { recursive: true, force: true });
  }
}

/**
 * Pipes `copy` into the FIFO that `reader` (the ClickHouse statement) is reading. The write
 * end is opened non-blocking and retried until ClickHouse has opened the read end, so a
 * statement that fails before opening it cannot leave this side blocked; writes go through
 * a libuv pipe (net.Socket), so a reader that goes away fails the write instead of blocking.
 */
async function writeToFifo(fifo: string, copy: Readable, reader: Promise<unknown>): Promise<void> {
  let settled = false;
  reader.then(() => (settled = true), () => (settled = true));
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
      if (settled) {
        copy.destroy();
        // The statement ended without reading: its own error is the one to report.
        await reader;
        throw new Error('ClickHouse finished the bulk insert without reading its input', { cause: error });
      }
      await sleep(2);
    }
  }
  const socket = new Socket({ fd, readable: false, writable: true });
  try {
    await pipeline(copy, socket);
  } catch (error) {
    socket.destroy();
    copy.destroy();
    throw error;
  }
}
