// The ClickHouse side of a bulk backfill: one chunk of source rows arrives as PostgreSQL COPY
// text, ClickHouse maps it to rows of the stream's target table in SQL (`requests`,
// `activity_events`, `conversations`), and the chunk is committed there exactly once. No row
// is parsed in JavaScript.
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
//
// A target other than `requests` is described by a BulkTarget: its columns, how a row is
// identified, what else each row writes (a conversation's conversation_started event) and
// which counters it adds (the same ones MetricsRegistry.recordStream adds for its events).
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventStore } from './clickhouse.ts';
import { clickhouseString } from './literal.ts';
import { METRICS, type MetricDef } from '../metrics/catalog.ts';
import type { CounterGroup, RequestGroup } from '../metrics/registry.ts';
import type { MetricKey } from '../metrics/catalog.ts';
import type { BucketedObservations } from '../metrics/families.ts';

/** The columns of `requests` a writer fills (ingested_at has its default). */
export const REQUEST_COLUMNS = [
  'tenant', 'source', 'request_id', 'started_at', 'ended_at', 'conversation_id', 'branch_id', 'parent_request_id',
  'parent_task_request_id', 'is_subtask', 'account', 'user', 'model', 'provider', 'operation', 'http_status', 'error_type',
  'input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cost_usd', 'cost_known', 'duration_ms',
  'ttft_ms', 'tool_calls', 'streaming', 'rate_limit_status',
  'cache_write_1h_tokens', 'web_search_requests', 'service_tier', 'cost_estimate_usd', 'priced_as',
] as const;

/** The columns of `activity_events` a writer fills. */
export const ACTIVITY_COLUMNS = ['tenant', 'source', 'event_id', 'event_type', 'event_time', 'agent', 'conversation_id', 'resource', 'value', 'details', 'version'] as const;

/** The columns of `conversations` a writer fills. */
export const CONVERSATION_COLUMNS = [
  'tenant', 'source', 'conversation_id', 'agent', 'user', 'channel', 'status', 'started_at', 'last_activity_at', 'duration_seconds', 'observed_at',
] as const;

/**
 * An activity event's version is this minus its time in epoch milliseconds: the earliest
 * occurrence of an event id wins (activity_events is ReplacingMergeTree(version)).
 */
export const ACTIVITY_MAX_VERSION = 2 ** 52;

/** activity_events' version (ACTIVITY_MAX_VERSION minus the time), over a DateTime64 column. */
export function activityVersionSql(time: string): string {
  return `toUInt64(${ACTIVITY_MAX_VERSION} - toUnixTimestamp64Milli(${time}))`;
}

/** A counter a staged row adds to: labels and value are ClickHouse expressions over the staged columns. */
export interface BulkCounter {
  metric: MetricKey;
  labels: readonly string[];
  value: string;
  /** Only rows where this holds add to it (absent: every clean row). */
  where?: string;
}

/** Rows a committed chunk writes to a table: a select over the staged columns, and how a row is known stored. */
export interface BulkRows {
  table: string;
  columns: readonly string[];
  select: string;
  /** The row's id column in that table, and the ClickHouse expressions of its id and time over the staged columns. */
  idColumn: string;
  narrowBy?: { column: string; value: string };
  timeColumn: string;
  id: string;
  time: string;
}

/** Where a stream's bulk rows are stored, and what they count. */
export interface BulkTarget {
  table: 'requests' | 'activity_events' | 'conversations';
  /** The table's columns the mapping yields, in order. */
  columns: readonly string[];
  /** The column that identifies a row among the source's rows, and its time (bounding the lookup). */
  idColumn: string;
  timeColumn: string;
  /**
   * A leading sort-key column of the table: the lookup of stored ids reads only its values
   * that the chunk has (activity_events: event_type, so one type's ids are not checked against
   * every other type's).
   */
  narrowBy?: string;
  /** Columns the mapping yields after `columns`, kept in staging for the counters only. */
  extra?: readonly { name: string; type: string }[];
  /** Rows of another table each committed row also writes. */
  also?: BulkRows;
  /** 'requests': the request metrics (RequestGroup); otherwise these counters. */
  counters: 'requests' | readonly BulkCounter[];
}

export const REQUESTS_TARGET: BulkTarget = { table: 'requests', columns: REQUEST_COLUMNS, idColumn: 'request_id', timeColumn: 'started_at', counters: 'requests' };

/**
 * A JSON object as JavaScript's JSON.stringify writes it, from ClickHouse expressions: each
 * field is a string (or NULL: null) or, with `number`, a number (or NULL). Text must pass
 * jsonSafeSql (ClickHouse escapes U+2028 and U+2029, JavaScript does not); a forward slash,
 * which ClickHouse may escape, is written plain as JavaScript does.
 */
export function jsonObjectSql(fields: readonly [key: string, expression: string, kind?: 'number'][]): string {
  const parts = fields.map(([key, expression], i) => `${clickhouseString(`${i === 0 ? '{' : ','}${JSON.stringify(key)}:`)}, ifNull(replaceAll(toJSONString(${expression}), '\\\\/', '/'), 'null')`);
  return `concat(${parts.join(', ')}, '}')`;
}

/** ClickHouse condition: jsonObjectSql writes this text (or NULL) as JSON.stringify does. */
export function jsonSafeSql(expression: string): string {
  return `(${expression} IS NULL OR (position(${expression}, ${clickhouseString('\u2028')}) = 0 AND position(${expression}, ${clickhouseString('\u2029')}) = 0))`;
}

/**
 * Activity events (the row sink's activity(); recordStream counts each under its type and
 * status, and a finished voice session's seconds).
 */
export const ACTIVITY_TARGET: BulkTarget = {
  table: 'activity_events', columns: ACTIVITY_COLUMNS, idColumn: 'event_id', timeColumn: 'event_time', narrowBy: 'event_type',
  extra: [{ name: 'activity_status', type: 'String' }, { name: 'has_duration', type: 'Bool' }],
  counters: [
    { metric: 'activities', labels: ['source', 'tenant', 'event_type', 'activity_status'], value: '1' },
    { metric: 'voiceSessionSeconds', labels: ['source', 'tenant'], value: 'value', where: "event_type = 'voice_session_finished' AND has_duration" },
  ],
};

/** ClickHouse expressions of one activity event, as the row sink writes an ActivityEvent. */
export interface ActivitySql {
  tenant: string;
  source: string;
  /** The source row's id (event_id is "<type>:<id>"). */
  id: string;
  type: string;
  /** DateTime64 of the event. */
  time: string;
  agent: string;
  resource: string;
  action: string;
  status: string;
  resourceName: string;
  /** Seconds, or NULL (stored as 0). */
  duration: string;
  /** The event's details after action, status and resource_name. */
  details: readonly [string, string, 'number'?][];
}

/** The mapping of ACTIVITY_TARGET: its columns and extras in order. */
export function activityMappingSql(a: ActivitySql): string {
  const time = `toDateTime64(${a.time}, 3, 'UTC')`;
  return [
    a.tenant, a.source, `concat(${a.type}, ':', ${a.id})`, a.type, time, a.agent, "''", a.resource, `ifNull(toFloat64(${a.duration}), 0)`,
    jsonObjectSql([['action', a.action], ['status', a.status], ['resource_name', a.resourceName], ...a.details]),
    activityVersionSql(time), a.status, `${a.duration} IS NOT NULL`,
  ].join(', ');
}

/** Conversations, and each one's conversation_started event (the row sink's conversation rows). */
export const CONVERSATIONS_TARGET: BulkTarget = {
  table: 'conversations', columns: CONVERSATION_COLUMNS, idColumn: 'conversation_id', timeColumn: 'started_at',
  also: {
    table: 'activity_events', columns: ACTIVITY_COLUMNS, idColumn: 'event_id', timeColumn: 'event_time',
    id: "concat('conversation_started:', conversation_id)", time: 'started_at', narrowBy: { column: 'event_type', value: "'conversation_started'" },
    select: `tenant, source, concat('conversation_started:', conversation_id), 'conversation_started', started_at, agent, conversation_id, '', 0,
      ${jsonObjectSql([['channel', 'channel']])}, ${activityVersionSql('started_at')}`,
  },
  counters: [{ metric: 'conversationsStarted', labels: ['source', 'tenant', 'channel'], value: '1' }],
};

/** What a committed chunk adds to the metrics. */
export interface BulkIncrements {
  requests: RequestGroup[];
  counters: CounterGroup[];
}

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
  /** Where the rows go (REQUESTS_TARGET: the mapping yields REQUEST_COLUMNS). */
  target: BulkTarget;
  /** ClickHouse select list over the copied and derived columns that yields target.columns (then target.extra), in order. */
  mapping: string;
  /** ClickHouse expression of the source row's id over the copied columns (read again by it when map() must see the row). */
  rowId: string;
  /** ClickHouse condition over the copied columns: the row is stored as mapped. */
  clean: string;
  /** ClickHouse condition: a clean row that map() must also see (for its other events). */
  otherEvents: string;
  /** file (the embedded engine reads the spooled file) or stream (sent over the connection, for a server). */
  transport?: BulkTransport;
  /** Lookup tables by name (BulkSpec.lookups), loaded before the first chunk; lookupSql() reads them. */
  lookups?: Record<string, readonly { key: string; value: string }[]>;
}

/** The name of a stream's lookup table in the event store's database. */
function lookupTable(database: string, streamId: string, name: string): string {
  return `${database}.bulk_${createHash('sha256').update(streamId).digest('hex').slice(0, 12)}_lookup_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** ClickHouse expression of a lookup's value for a text key ('' where it has none), over the table BulkLoader.open loads. */
export function lookupSql(database: string, streamId: string, name: string, key: string): string {
  return `joinGet(${clickhouseString(lookupTable(database, streamId, name))}, 'value', ifNull(${key}, ''))`;
}

/** ClickHouse condition: the lookup has the text key. */
export function lookupKnownSql(database: string, streamId: string, name: string, key: string): string {
  return `joinGetOrNull(${clickhouseString(lookupTable(database, streamId, name))}, 'value', ifNull(${key}, '')) IS NOT NULL`;
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
  private readonly lookupTables: string[] = [];

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
    const { target } = options;
    const extra = (target.extra ?? []).map((e) => `, defaultValueOfTypeName(${clickhouseString(e.type)}) AS ${e.name}`).join('');
    for (let slot = 0; slot < SLOTS; slot++) {
      // One chunk per slot, in memory (bounded by bulkChunkRows), flagged per row. Dropped
      // first: a table left by a crash may have another stream version's columns.
      await loader.store.command(`DROP TABLE IF EXISTS ${loader.staging(slot)}`);
      await loader.store.command(`CREATE TABLE ${loader.staging(slot)} ENGINE = Memory AS
        SELECT ${target.columns.join(', ')}${extra}, '' AS bulk_id, true AS bulk_clean, true AS bulk_rest FROM ${db}.${target.table} LIMIT 0`);
      if (loader.transport === 'stream') {
        await loader.store.command(`DROP TABLE IF EXISTS ${loader.raw(slot)}`);
        await loader.store.command(`CREATE TABLE ${loader.raw(slot)} (${options.structure}) ENGINE = Memory`);
      }
    }
    for (const [name, rows] of Object.entries(options.lookups ?? {})) {
      const table = lookupTable(db, options.streamId, name);
      loader.lookupTables.push(table);
      await loader.store.command(`DROP TABLE IF EXISTS ${table}`);
      await loader.store.command(`CREATE TABLE ${table} (key String, value String) ENGINE = Join(ANY, LEFT, key)`);
      if (rows.length > 0) await loader.store.client.insert({ table, values: rows as { key: string; value: string }[], format: 'JSONEachRow' });
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
    const { target } = this.options;
    const columns = [...target.columns, ...(target.extra ?? []).map((e) => e.name)].join(', ');
    return `INSERT INTO ${this.staging(slot)} (${columns}, bulk_id, bulk_clean, bulk_rest)
      SELECT ${this.options.mapping}, toString(${this.options.rowId}), ${clean}, NOT ${clean} OR ifNull((${this.options.otherEvents}), false) FROM (SELECT *${this.derived()} FROM ${source})`;
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

  /** Writes the clean rows of the staged chunk that are not stored yet (and what each also writes). */
  async commit(slot: number): Promise<void> {
    const { target } = this.options;
    const staging = this.staging(slot);
    await this.insertNew(staging, {
      table: target.table, columns: target.columns, select: target.columns.join(', '),
      idColumn: target.idColumn, id: target.idColumn, timeColumn: target.timeColumn, time: target.timeColumn,
      narrowBy: target.narrowBy === undefined ? undefined : { column: target.narrowBy, value: target.narrowBy },
    });
    if (target.also) await this.insertNew(staging, target.also);
  }

  /**
   * INSERT … SELECT of the staged clean rows whose id (`rows.id` over the staged columns) is not
   * in the table yet, looked up within the chunk's time range.
   */
  private async insertNew(staging: string, rows: BulkRows): Promise<void> {
    const { table, columns, select, idColumn, id, timeColumn, time, narrowBy: narrow } = rows;
    const db = this.store.database;
    // optimize_on_insert = 0: no ReplacingMergeTree collapse of the inserted block (it holds
    // distinct ids); that pass would double the cost of the insert.
    await this.store.command(`INSERT INTO ${db}.${table} (${columns.join(', ')})
      SELECT ${select} FROM ${staging}
      WHERE bulk_clean AND (${id}) NOT IN (
        SELECT ${idColumn} FROM ${db}.${table}
        WHERE source = ${clickhouseString(this.options.source)}
          AND ${timeColumn} >= (SELECT min(${time}) FROM ${staging}) AND ${timeColumn} <= (SELECT max(${time}) FROM ${staging})
          ${narrow ? `AND ${narrow.column} IN (SELECT DISTINCT ${narrow.value} FROM ${staging})` : ''})
      SETTINGS optimize_on_insert = 0, max_threads = 1, max_insert_threads = 1`);
  }

  /** Ids of the staged rows map() has to see, and whether each is clean (its request is stored). */
  async rest(slot: number): Promise<{ id: string; clean: boolean }[]> {
    const rows = await this.loadStore.query<{ id: string; clean: boolean | number }>(`SELECT bulk_id AS id, bulk_clean AS clean FROM ${this.staging(slot)} WHERE bulk_rest`);
    return rows.map((r) => ({ id: r.id, clean: r.clean === true || r.clean === 1 }));
  }

  /** The staged chunk's metric increments, one group per label combination. */
  async aggregate(slot: number): Promise<BulkIncrements> {
    const { counters } = this.options.target;
    if (counters === 'requests') return { requests: await this.requestGroups(slot), counters: [] };
    const out: CounterGroup[] = [];
    for (const counter of counters) {
      const labels = counter.labels.map((l, i) => `toString(${l}) AS l${i}`).join(', ');
      const rows = await this.aggregateStore.query<Record<string, unknown>>(
        `SELECT ${labels}, toFloat64(sum(${counter.value})) AS value FROM ${this.staging(slot)}
         WHERE bulk_clean${counter.where ? ` AND (${counter.where})` : ''} GROUP BY ALL SETTINGS max_threads = 1`,
      );
      for (const r of rows) out.push({ metric: counter.metric, labels: counter.labels.map((_, i) => String(r[`l${i}`])), value: Number(r.value) });
    }
    return { requests: [], counters: out };
  }

  private async requestGroups(slot: number): Promise<RequestGroup[]> {
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
    for (const table of this.lookupTables) await this.store.command(`DROP TABLE IF EXISTS ${table}`);
    rmSync(this.spoolDir, { recursive: true, force: true });
  }
}
