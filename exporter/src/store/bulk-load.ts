// The ClickHouse side of a bulk backfill: one chunk of source rows arrives as PostgreSQL COPY
// text, ClickHouse maps it to request rows in SQL, and the chunk is committed to `requests`
// exactly once. No row is parsed in JavaScript.
//
// Per chunk:
//  1. spool: the COPY text goes to a temporary file as it arrives (no backpressure between
//     PostgreSQL and ClickHouse: PostgreSQL can copy the next chunk while this one loads).
//  2. load: file -> staging table (in memory, one chunk per slot), mapped on the way by the
//     source's SQL, each row flagged clean (stored as mapped) or not (map() handles it). The
//     embedded engine reads the file itself; a server receives it as a streamed insert.
//  3. commit: the clean requests whose ids are not stored yet (the same rule as the
//     row-by-row sink, so a chunk repeated after a crash adds nothing twice and the rollup
//     views stay exact). A chunk reaches `requests` only after its COPY succeeded.
//  4. aggregate: the clean rows' metric increments, one row per label combination.
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventStore } from './clickhouse.ts';
import { clickhouseString } from './literal.ts';
import { METRICS, type MetricDef } from '../metrics/catalog.ts';
import type { RequestGroup } from '../metrics/registry.ts';
import type { BucketedObservations } from '../metrics/families.ts';

/** The columns of `requests` a writer fills (ingested_at has its default). */
export const REQUEST_COLUMNS = [
  'tenant', 'source', 'request_id', 'started_at', 'ended_at', 'conversation_id', 'branch_id', 'parent_request_id',
  'parent_task_request_id', 'is_subtask', 'account', 'user', 'model', 'provider', 'operation', 'http_status', 'error_type',
  'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cost_usd', 'cost_known', 'duration_ms',
  'ttft_ms', 'tool_calls', 'streaming', 'rate_limit_status',
  'cache_write_1h_tokens', 'web_search_requests', 'service_tier', 'cost_estimate_usd', 'priced_as',
] as const;

export type BulkTransport = 'file' | 'stream';

export interface BulkLoaderOptions {
  /** Commits and aggregates. */
  store: EventStore;
  /**
   * A second connection to the same store, for loads: a chunk loads while the previous one
   * commits (chdb runs one statement at a time per connection).
   */
  loadStore: EventStore;
  /** A third connection, for the metrics aggregate: it runs while the same chunk commits. */
  aggregateStore: EventStore;
  streamId: string;
  source: string;
  /** ClickHouse structure of the copied columns, e.g. "request_id String, ts DateTime64(6, 'UTC')". */
  structure: string;
  /** Columns computed once per row before the mapping (`expression AS name`, comma-separated, or ''). */
  derived: string;
  /** ClickHouse select list over the copied and derived columns that yields REQUEST_COLUMNS, in order. */
  mapping: string;
  /** ClickHouse condition over the copied columns: the row is stored as mapped. */
  clean: string;
  /** ClickHouse condition: a clean row that map() must also see (for its other events). */
  otherEvents: string;
  /** file (the embedded engine reads the spooled file) or stream (sent over the connection, for a server). */
  transport?: BulkTransport;
}

/**
 * Per-bucket (not cumulative) counts of `value`, then sum and count. A row's bucket is the
 * number of upper bounds it exceeds, as observeInto() counts them (NaN included: bucket 0);
 * countResample counts rows per bucket in one aggregate (a countIf per bucket made the
 * statement's analysis alone cost 40 ms per chunk). Rows without a value get bucket 255,
 * outside the resampled range.
 */
function histogramSql(value: string, buckets: readonly number[], present = 'true'): string {
  const bucket = buckets.map((b) => `(${value} > ${b})`).join(' + ');
  return `countResample(0, ${buckets.length + 1}, 1)(if(${present}, ${bucket}, 255)), sumIf(${value}, ${present}), countIf(${present})`;
}

function bucketsOf(key: 'tokenUsage' | 'operationDuration' | 'timeToFirstToken'): readonly number[] {
  return (METRICS[key] as MetricDef).buckets!;
}

/** Staging slots: chunk k+1 loads while chunk k commits and chunk k-1 may still be finishing. */
export const SLOTS = 3;

export class BulkLoader {
  private readonly store: EventStore;
  private readonly loadStore: EventStore;
  private readonly aggregateStore: EventStore;
  private readonly options: BulkLoaderOptions;
  readonly transport: BulkTransport;
  private readonly tableBase: string;
  private readonly spoolDir: string;
  private spooled = 0;

  private constructor(options: BulkLoaderOptions) {
    this.store = options.store;
    this.loadStore = options.loadStore;
    this.aggregateStore = options.aggregateStore;
    this.options = options;
    this.transport = options.transport ?? (options.store.embedded ? 'file' : 'stream');
    this.spoolDir = mkdtempSync(join(tmpdir(), 'tokenwatch-bulk-'));
    // Tables per stream: a stream has one writer (one tokenwatch per source).
    const suffix = createHash('sha256').update(options.streamId).digest('hex').slice(0, 12);
    this.tableBase = `${options.store.database}.bulk_${suffix}`;
  }

  /** The staging table of a slot (the floor benchmark fills one itself). */
  staging(slot: number): string {
    return `${this.tableBase}_staging_${slot}`;
  }

  private raw(slot: number): string {
    return `${this.tableBase}_raw_${slot}`;
  }

  static async open(options: BulkLoaderOptions): Promise<BulkLoader> {
    const loader = new BulkLoader(options);
    const db = options.store.database;
    for (let slot = 0; slot < SLOTS; slot++) {
      // One chunk per slot, in memory (bounded by bulkChunkRows), flagged per row.
      await loader.store.command(`CREATE TABLE IF NOT EXISTS ${loader.staging(slot)} ENGINE = Memory AS
        SELECT ${REQUEST_COLUMNS.join(', ')}, true AS bulk_clean, true AS bulk_rest FROM ${db}.requests LIMIT 0`);
      if (loader.transport === 'stream') await loader.store.command(`CREATE TABLE IF NOT EXISTS ${loader.raw(slot)} (${options.structure}) ENGINE = Memory`);
    }
    return loader;
  }

  private derived(): string {
    return this.options.derived === '' ? '' : `, ${this.options.derived}`;
  }

  /**
   * The staged rows, mapped and flagged, as INSERT … SELECT from `source` (a table or a
   * subquery with the copied columns).
   */
  stagedInsert(slot: number, source: string): string {
    const clean = `ifNull((${this.options.clean}), false)`;
    return `INSERT INTO ${this.staging(slot)} (${REQUEST_COLUMNS.join(', ')}, bulk_clean, bulk_rest)
      SELECT ${this.options.mapping}, ${clean}, NOT ${clean} OR ifNull((${this.options.otherEvents}), false) FROM (SELECT *${this.derived()} FROM ${source})`;
  }

  /** A new spool file's path, for one chunk of COPY text (PostgreSQL's text format). */
  spoolFile(): string {
    return join(this.spoolDir, `chunk-${this.spooled++}.tsv`);
  }

  /** Loads a spooled chunk into a staging slot, mapped and flagged; returns its rows. The file is removed. */
  async load(slot: number, file: string): Promise<number> {
    const store = this.loadStore;
    const staging = this.staging(slot);
    await store.command(`TRUNCATE TABLE ${staging}`);
    try {
      if (this.transport === 'file') {
        // Query-level SETTINGS stay with this statement (settings passed through the client
        // would stay on chdb's session). One thread: parallel parsing halves the wall time
        // of a lone parse but doubles its CPU, and here the parse shares the cores with
        // PostgreSQL and the previous chunk's commit (1.1 s against 2.0 s per million rows).
        await store.command(
          `${this.stagedInsert(slot, `file(${clickhouseString(file)}, 'TSV', ${clickhouseString(this.options.structure)})`)}
           SETTINGS date_time_input_format = 'best_effort', input_format_parallel_parsing = 0, max_threads = 1`,
        );
      } else {
        const raw = this.raw(slot);
        await store.command(`TRUNCATE TABLE ${raw}`);
        // (On chdb this setting would stay on the session; it only widens what DateTime parses.)
        await store.client.insert({ table: raw, values: createReadStream(file), format: 'TabSeparated', clickhouse_settings: { date_time_input_format: 'best_effort' } });
        await store.command(this.stagedInsert(slot, raw));
      }
    } finally {
      rmSync(file, { force: true });
    }
    const [row] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${staging}`);
    return Number(row!.n);
  }

  /** Writes the clean requests of the staged chunk that are not stored yet. */
  async commit(slot: number): Promise<void> {
    const db = this.store.database;
    const staging = this.staging(slot);
    // optimize_on_insert = 0: no ReplacingMergeTree collapse of the inserted block (it holds
    // distinct ids); that pass would double the cost of the insert.
    await this.store.command(`INSERT INTO ${db}.requests (${REQUEST_COLUMNS.join(', ')})
      SELECT ${REQUEST_COLUMNS.join(', ')} FROM ${staging}
      WHERE bulk_clean AND request_id NOT IN (
        SELECT request_id FROM ${db}.requests
        WHERE source = ${clickhouseString(this.options.source)}
          AND started_at >= (SELECT min(started_at) FROM ${staging}) AND started_at <= (SELECT max(started_at) FROM ${staging}))
      SETTINGS optimize_on_insert = 0, max_threads = 1, max_insert_threads = 1`);
  }

  /** Ids of the staged rows map() has to see, and whether each is clean (its request is stored). */
  async rest(slot: number): Promise<{ id: string; clean: boolean }[]> {
    const rows = await this.loadStore.query<{ id: string; clean: boolean | number }>(`SELECT request_id AS id, bulk_clean AS clean FROM ${this.staging(slot)} WHERE bulk_rest`);
    return rows.map((r) => ({ id: r.id, clean: r.clean === true || r.clean === 1 }));
  }

  /** The staged chunk's metric increments, one group per label combination. */
  async aggregate(slot: number): Promise<RequestGroup[]> {
    const tokenBuckets = bucketsOf('tokenUsage');
    const rows = await this.aggregateStore.query<Record<string, unknown>>(`
      SELECT source, tenant, model, operation, provider, http_status, error_type, account, rate_limit_status,
        count() AS n_requests, countIf(is_subtask) AS n_subtask, sum(tool_calls) AS sum_tool_calls,
        sum(input_tokens) AS sum_input, sum(output_tokens) AS sum_output,
        sum(cache_read_tokens) AS sum_cache_read, sum(cache_write_tokens) AS sum_cache_write,
        toFloat64(sum(cost_usd)) AS sum_cost, toFloat64(sum(ifNull(cost_estimate_usd, 0))) AS sum_estimate, countIf(cost_estimate_usd IS NULL) AS n_unknown,
        tuple(${histogramSql('input_tokens', tokenBuckets)}) AS input_hist,
        tuple(${histogramSql('output_tokens', tokenBuckets)}) AS output_hist,
        tuple(${histogramSql('assumeNotNull(duration_ms) / 1000', bucketsOf('operationDuration'), 'duration_ms IS NOT NULL')}) AS duration_hist,
        tuple(${histogramSql('assumeNotNull(ttft_ms) / 1000', bucketsOf('timeToFirstToken'), 'ttft_ms IS NOT NULL')}) AS ttft_hist,
        max(toUnixTimestamp64Milli(started_at)) AS last_started_at
      FROM ${this.staging(slot)} WHERE bulk_clean
      GROUP BY source, tenant, model, operation, provider, http_status, error_type, account, rate_limit_status
      SETTINGS max_threads = 1`);
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
      costEstimateUsd: Number(r.sum_estimate), costUnknown: Number(r.n_unknown),
      inputTokenUsage: hist(r.input_hist), outputTokenUsage: hist(r.output_hist),
      duration: hist(r.duration_hist), timeToFirstToken: hist(r.ttft_hist),
      lastStartedAt: Number(r.last_started_at),
    }));
  }

  /** Drops the staging tables (they hold only the last chunks) and the spool directory. */
  async close(): Promise<void> {
    for (let slot = 0; slot < SLOTS; slot++) {
      await this.store.command(`DROP TABLE IF EXISTS ${this.staging(slot)}`);
      await this.store.command(`DROP TABLE IF EXISTS ${this.raw(slot)}`);
    }
    rmSync(this.spoolDir, { recursive: true, force: true });
  }
}
