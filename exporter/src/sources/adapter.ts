// The small interface every source adapter implements, and the helpers adapters share for
// naming columns and turning raw column values into canonical fields. The runner
// (pipeline/) owns polling, timing, checkpoints and self-metrics; an adapter only declares
// what to read and how a row maps to events.
import { clientDatabaseName, type SourceConfig } from '../config/schema.ts';
import type pg from 'pg';
import type { CanonicalEvent, SourceName } from '../model/events.ts';
import type { IncrementalStreamSpec } from '../reader/incremental-reader.ts';
import { RowRejected, type RepairReason } from '../quality/row-quality.ts';
import { qualifiedTable, quoteIdent } from '../reader/sql.ts';
import type { PricedModel, Pricing } from '../pricing/pricing.ts';
import type { BulkTarget } from '../store/bulk-load.ts';

/**
 * A source as the runner reads it: its configuration, its name, and for a database that belongs
 * to one tenant (a Sidekick Forge dedicated client), that tenant.
 */
export type NamedSource = SourceConfig & {
  name: string;
  /** Set on a part of a source that is one tenant's own database (see SourceAdapter.parts). */
  clientOf?: { clientId: string; tenant: string };
  /**
   * On a source with parts: the tenants whose rows live in the parts' databases (known once
   * the parts are resolved), so its own rows in the event store can be told from theirs.
   */
  partTenants?: string[];
};

/** A source's part that is one client's own database (Sidekick Forge clientDatabases), named "<source>.<name>". */
export function clientDatabasePart(source: NamedSource, db: SourceConfig['clientDatabases'][number], tenant: string): NamedSource {
  return { ...source, name: `${source.name}.${clientDatabaseName(db)}`, databaseUrl: db.databaseUrl, clientDatabases: [], clientOf: { clientId: db.client, tenant } };
}

export interface MapContext {
  /** Records a repaired field; the row flows on. */
  repaired(reason: RepairReason, detail: string): void;
  maxContentBytes: number;
  futureToleranceMs: number;
  pricing: Pricing;
  /** Wall clock used for the future-timestamp check. */
  now: number;
}

/** An append-only table read incrementally. */
export interface IncrementalStream {
  kind: 'incremental';
  spec: IncrementalStreamSpec;
  /** Reference table name, e.g. "api_requests". */
  table: string;
  rowId(row: Record<string, unknown>): string;
  /** Maps one row to zero or more events; throws RowRejected to skip it. */
  map(row: Record<string, unknown>, ctx: MapContext): CanonicalEvent[];
  /** How a bulk backfill moves this stream's request rows without map(); absent: row by row. */
  bulk?: BulkSpec;
  /**
   * For a table whose real schema has no index on the cursor column: while the database has
   * none, every poll scans the table, so it is polled this often instead of pollInterval
   * (checked when the source connects; `check` names the index that makes it cheap). Once the
   * index exists, pollInterval applies.
   */
  unindexedIntervalMs?: number;
  /**
   * Where the event store keeps one row per source row of this stream, so reconciliation can
   * compare the two per day (absent: not reconciled).
   */
  stored?: StoredRows;
}

/**
 * A stream's rows in the event store: one row per source row, found by source and id. A
 * store row may hold the events of other databases of the same source type (a Sidekick Forge
 * platform and its client databases): `where` keeps this stream's own.
 */
export interface StoredRows {
  table: 'requests' | 'messages' | 'activity_events' | 'conversations';
  /** The event kind that becomes that row. */
  eventKind: 'request' | 'message' | 'activity' | 'conversation';
  /**
   * ClickHouse expression of the source row's id (a column, or the id inside an activity's
   * event_id "<type>:<id>"), and the column holding its cursor timestamp.
   */
  idColumn: string;
  timeColumn: string;
  /** Value of the store's `source` column. */
  source: string;
  /** A ClickHouse condition on the table's columns that further selects this stream's rows. */
  where?: string;
}

/** The id of an activity event's source row, inside its event_id "<event_type>:<id>". */
export const ACTIVITY_SOURCE_ID = 'substring(event_id, length(event_type) + 2)';

export interface BulkContext {
  pricing: Pricing;
  /** Rows with a cursor after this ISO time are rejected as future timestamps by map(). */
  futureLimit: string;
  /**
   * The model names in the table when the backfill started (BulkSpec.models): the ClickHouse
   * cost is written for these; a row with another model goes through map().
   */
  models: PricedModel[];
  /**
   * ClickHouse expression of the value BulkSpec.lookups[name] gives for the text `key` ('' where
   * it has none): what a row path's subquery finds, without a subquery per row.
   */
  lookup(name: string, key: string): string;
  /** ClickHouse condition: BulkSpec.lookups[name] has the text `key`. */
  lookupKnown(name: string, key: string): string;
}

/**
 * The bulk path of a stream (docs/event-store.md, "Backfill at bulk speed"). PostgreSQL copies columns of
 * every row of a chunk; ClickHouse maps them to rows of the target table in SQL and decides
 * which rows are clean, the rows map() would take as they are (nothing to repair or reject).
 * The other rows, and clean rows that carry more than their target row (message content), are
 * read again by id and go through map(); of a clean row only the other events are kept. A
 * test checks that both paths store and count the same.
 */
export interface BulkSpec {
  /** Copied columns in order: a PostgreSQL expression over alias `t`, and the ClickHouse type its text is read as. */
  columns: { name: string; sql: string; type: string }[];
  /** Where the rows go and what they count (store/bulk-load.ts: REQUESTS_TARGET, or a table's own). */
  target: BulkTarget;
  /** ClickHouse expression of the source row's id (what rowId() gives) over the copied columns. */
  rowId: string;
  /**
   * Requests only: PostgreSQL expressions over alias `t` for the model a row is priced by, and
   * the provider the source names for it (absent: none); their distinct values are read first.
   */
  models?: { model: string; provider?: string };
  /**
   * Small tables the mapping looks values up in (a client's name, an agent's slug): by name, a
   * PostgreSQL query yielding text columns `key` and `value`, read once per backfill.
   */
  lookups?: Record<string, string>;
  /** Columns computed once per row before the mapping: `expression AS name`, comma-separated (or ''). */
  derived(ctx: BulkContext): string;
  /** ClickHouse select list over the copied and derived columns that yields target.columns (then target.extra). */
  mapping(ctx: BulkContext): string;
  /** ClickHouse condition over the copied columns: the row is clean. */
  clean(ctx: BulkContext): string;
  /** ClickHouse condition over the copied columns: map() must still see this clean row for its other events. */
  otherEvents: string;
}

/** A table updated in place, re-read whole (or by a bounded query) on an interval. */
export interface SnapshotQuery {
  kind: 'snapshot';
  id: string;
  table: string;
  sql: string;
  params: unknown[];
  /** Maps one row of a read to its events; throws RowRejected to skip it (the other rows still count). */
  mapRow(row: Record<string, unknown>, ctx: MapContext, observedAt: string): CanonicalEvent[];
}

export interface SourceAdapter {
  type: SourceName;
  /** Reference names of the tables this adapter reads in this source's database; all must exist for it to run. */
  requiredTables(source: NamedSource): readonly string[];
  /**
   * Other databases this source reads, each as a source of its own with its own pool, streams
   * and checkpoints (Sidekick Forge's dedicated clients), resolved once the source's own
   * database is connected (the tenant of each comes from there). Throws naming what is wrong.
   */
  parts?(source: NamedSource, db: Pick<pg.Pool, 'query'>): Promise<NamedSource[]>;
  /** Columns never selected, whatever the configuration says (secrets, embeddings). */
  forbiddenColumns: Readonly<Record<string, readonly string[]>>;
  /**
   * Every column the adapter reads, by reference table and column name: the column grants of
   * a least-privilege role (`tokenwatch check --grants`). A test runs every adapter as a role
   * granted exactly these, so a column read but not declared fails it. Tables read
   * incrementally include the system column xmin (which transaction inserted the row).
   */
  reads: Readonly<Record<string, readonly string[]>>;
  build(source: NamedSource): { streams: IncrementalStream[]; snapshots: SnapshotQuery[] };
}

/** The reader settings every incremental stream of a source takes from its configuration. */
export function readerSettings(source: SourceConfig): Pick<IncrementalStreamSpec, 'maxCommitDelayMs' | 'batchSize' | 'startFrom' | 'sweepWindowMs' | 'sweepIntervalMs'> {
  return {
    maxCommitDelayMs: source.maxCommitDelay,
    batchSize: source.batchSize,
    startFrom: source.startFrom,
    sweepWindowMs: source.sweepWindow,
    sweepIntervalMs: source.sweepInterval,
  };
}

/** Physical names for one source: reference table/column names mapped through the config. */
export class SourceNames {
  readonly source: NamedSource;
  constructor(source: NamedSource) {
    this.source = source;
  }
  tableName(reference: string): string {
    return this.source.tables[reference] ?? reference;
  }
  table(reference: string): string {
    return qualifiedTable(this.source.schema, this.tableName(reference));
  }
  /** Quoted physical column, or null when the config marks it absent. */
  column(reference: string): string | null {
    const mapped = this.source.columns[reference];
    if (mapped === null) return null;
    return quoteIdent(mapped ?? reference);
  }
  /** `t."physical" AS "reference"`, or `NULL AS "reference"` for an absent column. */
  select(reference: string, alias = reference, tableAlias = 't'): string {
    const physical = this.column(reference);
    return `${physical === null ? 'NULL' : `${tableAlias}.${physical}`} AS ${quoteIdent(alias)}`;
  }
  /** An expression over a column, or NULL when absent; `$` in the template is the column. */
  expr(reference: string, template: string, alias: string, tableAlias = 't'): string {
    const physical = this.column(reference);
    return `${physical === null ? 'NULL' : template.replaceAll('$', `${tableAlias}.${physical}`)} AS ${quoteIdent(alias)}`;
  }
  required(reference: string): string {
    const physical = this.column(reference);
    if (physical === null) throw new Error(`column ${reference} is required by ${this.source.type} and cannot be marked absent`);
    return physical;
  }
}

// ---- value helpers shared by the adapters ------------------------------------------------

/**
 * A value as text, or null when empty. JSON objects (from json/jsonb columns) become their
 * JSON text rather than "[object Object]" (or a TypeError for an object with its own
 * `toString` key).
 */
export function optionalString(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const text = value instanceof Date ? toIso(value) ?? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return text.length > 0 ? text : null;
}

const YEAR_1 = Date.parse('0001-01-01T00:00:00.000Z');
const YEAR_9999_END = Date.parse('9999-12-31T23:59:59.999Z');

/** ISO time of a timestamp value, or null when it is not one or lies outside years 1 to 9999 (ISO's four-digit years). */
export function toIso(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const date = value instanceof Date ? value : typeof value === 'string' || typeof value === 'number' ? new Date(value) : new Date(NaN);
  const time = date.getTime();
  return Number.isNaN(time) || time < YEAR_1 || time > YEAR_9999_END ? null : date.toISOString();
}

/** An integer within the safe range, or null (NULL, not a number, a fraction, too large). */
export function optionalInteger(value: unknown, range: { min?: number; max?: number } = {}): number | null {
  if (value === null || value === undefined || typeof value === 'boolean' || typeof value === 'object') return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) return null;
  if (n < (range.min ?? Number.MIN_SAFE_INTEGER) || n > (range.max ?? Number.MAX_SAFE_INTEGER)) return null;
  return n;
}

/** An HTTP status code (100 to 999), or null. */
export function httpStatusOf(value: unknown): number | null {
  return optionalInteger(value, { min: 100, max: 999 });
}

/** A required timestamp: missing or further in the future than allowed rejects the row. */
export function requiredTimestamp(value: unknown, field: string, ctx: MapContext): string {
  const iso = toIso(value);
  if (iso === null) throw new RowRejected('missing_field', `${field} is missing or not a timestamp`);
  if (Date.parse(iso) > ctx.now + ctx.futureToleranceMs) {
    throw new RowRejected('future_timestamp', `${field} ${iso} is in the future`);
  }
  return iso;
}

/** Token counts: NULL is read as 0 (as SQL's SUM does) and counted; negative rejects the row. */
export function tokenCount(value: unknown, field: string, ctx: MapContext): number {
  if (value === null || value === undefined) {
    ctx.repaired('null_tokens', `${field} is NULL, counted as 0`);
    return 0;
  }
  const n = typeof value === 'object' || typeof value === 'boolean' ? NaN : Number(value);
  if (!Number.isFinite(n)) throw new RowRejected('invalid_event', `${field} is not a number: ${optionalString(value)?.slice(0, 100)}`);
  if (n < 0) throw new RowRejected('negative_tokens', `${field} is negative: ${n}`);
  if (n > Number.MAX_SAFE_INTEGER) throw new RowRejected('invalid_event', `${field} is too large to be a token count: ${n}`);
  return Math.trunc(n);
}

/** Measurements that may be absent without being an anomaly (durations, counts): a finite number ≥ 0, or null. */
export function nonNegativeOrNull(value: unknown): number | null {
  if (value === null || value === undefined || typeof value === 'object' || typeof value === 'boolean') return null;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

/** A count that may be absent: a safe integer ≥ 0 (fractions truncated), or null. */
export function nonNegativeIntegerOrNull(value: unknown): number | null {
  const n = nonNegativeOrNull(value);
  return n === null || n > Number.MAX_SAFE_INTEGER ? null : Math.trunc(n);
}

/**
 * Message text: invalid UTF-8 (decoded by the driver as U+FFFD) and oversized content are
 * repaired and counted; the rest of the row flows.
 */
export function contentText(value: unknown, ctx: MapContext): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text.includes('\uFFFD')) ctx.repaired('invalid_utf8', 'content had bytes that are not UTF-8; they were replaced with U+FFFD');
  if (Buffer.byteLength(text, 'utf8') > ctx.maxContentBytes) {
    ctx.repaired('oversized_body', `content is ${Buffer.byteLength(text, 'utf8')} bytes, truncated to ${ctx.maxContentBytes}`);
    text = Buffer.from(text, 'utf8').subarray(0, ctx.maxContentBytes).toString('utf8').replace(/\uFFFD$/, '');
  }
  return text;
}

/** JSON that may arrive as text (a column typed text in some deployments): bad JSON is repaired to null. */
export function jsonValue(value: unknown, field: string, ctx: MapContext): unknown {
  if (typeof value !== 'string') return value ?? null;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    ctx.repaired('malformed_json', `${field} is not valid JSON; ignored`);
    return null;
  }
}

/** Text of an Anthropic/OpenAI message content field (string or list of blocks). */
export function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((block) => (block && typeof block === 'object' && typeof (block as { text?: unknown }).text === 'string' ? (block as { text: string }).text : ''))
      .filter(Boolean)
      .join('\n');
  }
  return '';
}
