// Reconciliation: proof, per day, that the event store holds every row of an incremental
// table. Whatever the reader's guarantees, this compares the two sides after the fact: the
// source's rows per UTC day (over the timestamp index) against the store's rows per day, for
// closed days only (older than the sweep window, so no row can still arrive), a bounded
// number of days back. For a day that differs it compares ids, and sorts the source's ids the
// store lacks into rows the stream rejects by design (bad rows, counted when read) and rows
// that are missing. The runner delivers missing rows (pipeline.ts); `tokenwatch verify`
// prints the comparison.
import type pg from 'pg';
import { withReadTransaction } from '../db/postgres.ts';
import { mapRowChecked } from '../quality/map-row.ts';
import type { IncrementalStream, MapContext } from '../sources/adapter.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { unquoteIdent } from '../reader/sql.ts';

const DAY_MS = 86_400_000;

export interface DayComparison {
  /** UTC day, YYYY-MM-DD. */
  day: string;
  sourceRows: number;
  storedRows: number;
  /** Source rows the store lacks that the stream rejects when mapping them (counted as bad rows when read). */
  rejected: number;
  /** Ids of source rows the store lacks although they map to events. */
  missing: string[];
  /** Rows in the store whose id the source does not have (deleted at the source, or another source of the same type). */
  extra: number;
}

export interface StreamComparison {
  stream: string;
  days: DayComparison[];
  /** The closed days compared: [from, to). */
  from: string;
  to: string;
}

/**
 * The closed UTC days to compare: the `days` whole days that end by `settledBefore` (all
 * their rows are final), not before `startFrom`.
 */
export function closedDays(settledBefore: number, days: number, startFrom: string, now = Date.now()): { from: number; to: number } | undefined {
  const to = Math.floor(settledBefore / DAY_MS) * DAY_MS;
  let from = to - days * DAY_MS;
  if (startFrom !== 'earliest') {
    const start = startFrom === 'now' ? now : Date.parse(startFrom);
    // A day the stream was not asked to read from its beginning is not compared.
    from = Math.max(from, Math.ceil(start / DAY_MS) * DAY_MS);
  }
  return from < to ? { from, to } : undefined;
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** The stream's rows with a cursor in [from, to): a WHERE clause and its parameters. */
function inRange(stream: IncrementalStream, from: number, to: number): { where: string; params: unknown[] } {
  const { cursorColumn, filter } = stream.spec;
  const params: unknown[] = [new Date(from).toISOString(), new Date(to).toISOString()];
  const param = (value: unknown) => `$${params.push(value)}`;
  const where = [`t.${cursorColumn} >= $1::timestamptz`, `t.${cursorColumn} < $2::timestamptz`, ...(filter ? [filter(param)] : [])].join(' AND ');
  return { where, params };
}

/** The ids of the stream's rows with a cursor on UTC day `day` (YYYY-MM-DD), on the timestamp index. */
export async function dayIds(client: pg.ClientBase, stream: IncrementalStream, day: string): Promise<string[]> {
  const { table, idColumn } = stream.spec;
  const start = Date.parse(`${day}T00:00:00Z`);
  const one = inRange(stream, start, start + DAY_MS);
  const result = await client.query<{ id: string }>(`SELECT t.${idColumn}::text AS id FROM ${table} t WHERE ${one.where}`, one.params);
  return result.rows.map((r) => r.id);
}

/** The source side, in one read-only transaction: rows per day, and the ids of the days asked for. */
async function sourceSide(client: pg.PoolClient, stream: IncrementalStream, from: number, to: number): Promise<{ counts: Map<string, number>; ids: (day: string) => Promise<string[]> }> {
  const { table, cursorColumn } = stream.spec;
  const all = inRange(stream, from, to);
  const { rows } = await client.query<{ day: string; n: number }>(
    `SELECT to_char(t.${cursorColumn}, 'YYYY-MM-DD') AS day, count(*)::int AS n FROM ${table} t WHERE ${all.where} GROUP BY 1`, all.params,
  );
  return {
    counts: new Map(rows.map((r) => [r.day, r.n])),
    ids: (day) => dayIds(client, stream, day),
  };
}

/** The store side: rows of this stream per day, and a day's ids. */
function storeSide(store: EventStore, stream: IncrementalStream) {
  const stored = stream.stored!;
  const table = `${store.database}.${stored.table}`;
  const bySource = [`source = {source:String}`, ...(stored.where ? [`(${stored.where})`] : [])].join(' AND ');
  return {
    async counts(from: number, to: number): Promise<Map<string, number>> {
      const rows = await store.query<{ day: string; n: string | number }>(
        `SELECT toString(toDate(${stored.timeColumn}, 'UTC')) AS day, uniqExact(${stored.idColumn}) AS n FROM ${table}
         WHERE ${bySource} AND ${stored.timeColumn} >= fromUnixTimestamp64Milli({from:Int64}) AND ${stored.timeColumn} < fromUnixTimestamp64Milli({to:Int64})
         GROUP BY day`,
        { source: stored.source, from, to },
      );
      return new Map(rows.map((r) => [r.day, Number(r.n)]));
    },
    async ids(day: string): Promise<Set<string>> {
      const start = Date.parse(`${day}T00:00:00Z`);
      const rows = await store.query<{ id: string }>(
        `SELECT DISTINCT ${stored.idColumn} AS id FROM ${table}
         WHERE ${bySource} AND ${stored.timeColumn} >= fromUnixTimestamp64Milli({from:Int64}) AND ${stored.timeColumn} < fromUnixTimestamp64Milli({to:Int64})`,
        { source: stored.source, from: start, to: start + DAY_MS },
      );
      return new Set(rows.map((r) => r.id));
    },
  };
}

/** The SQL type of a stream's id column, for `= ANY($1::type[])` on its index. */
export async function idTypeOf(client: pg.ClientBase, stream: IncrementalStream): Promise<string> {
  const { table, idColumn } = stream.spec;
  const { rows } = await client.query<{ type: string }>(
    'SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2', [table, unquoteIdent(idColumn)],
  );
  return rows[0]?.type ?? 'text';
}

/** Reads rows of the stream by id, with the stream's own select list (the rows a repair delivers). */
export async function readRowsById(client: pg.ClientBase, stream: IncrementalStream, ids: string[], idType: string): Promise<Record<string, unknown>[]> {
  if (ids.length === 0) return [];
  const { table, idColumn, selectList } = stream.spec;
  const { rows } = await client.query<Record<string, unknown>>(`SELECT ${selectList} FROM ${table} t WHERE t.${idColumn} = ANY($1::${idType}[])`, [ids]);
  return rows;
}

/**
 * Compares the closed days of one stream. `ctx` maps the source's unstored rows to tell
 * rejected rows from missing ones (nothing is recorded or written).
 */
export async function compareStream(
  pool: pg.Pool,
  store: EventStore,
  stream: IncrementalStream,
  window: { from: number; to: number },
  ctx: MapContext,
): Promise<StreamComparison> {
  return withReadTransaction(pool, async (client) => {
    const source = await sourceSide(client, stream, window.from, window.to);
    const stored = storeSide(store, stream);
    const storeCounts = await stored.counts(window.from, window.to);
    let idType: string | undefined;
    const days: DayComparison[] = [];
    for (let at = window.from; at < window.to; at += DAY_MS) {
      const day = isoDay(at);
      const sourceRows = source.counts.get(day) ?? 0;
      const storedRows = storeCounts.get(day) ?? 0;
      const comparison: DayComparison = { day, sourceRows, storedRows, rejected: 0, missing: [], extra: 0 };
      if (sourceRows !== storedRows) {
        const sourceIds = await source.ids(day);
        const storedIds = await stored.ids(day);
        const sourceSet = new Set(sourceIds);
        comparison.extra = [...storedIds].filter((id) => !sourceSet.has(id)).length;
        const absent = sourceIds.filter((id) => !storedIds.has(id));
        const kind = stream.stored!.eventKind;
        for (const row of await readRowsById(client, stream, absent, (idType ??= await idTypeOf(client, stream)))) {
          const outcome = mapRowChecked(() => stream.map(row, ctx));
          if (!outcome.rejected && outcome.events.some((e) => e.kind === kind)) comparison.missing.push(stream.rowId(row));
          else comparison.rejected += 1;
        }
      }
      days.push(comparison);
    }
    return { stream: stream.spec.id, days, from: isoDay(window.from), to: isoDay(window.to) };
  });
}

/** Totals of a comparison, as /metrics shows them. */
export function comparisonTotals(comparison: StreamComparison): { missing: number; extra: number; rejected: number } {
  return comparison.days.reduce((t, d) => ({ missing: t.missing + d.missing.length, extra: t.extra + d.extra, rejected: t.rejected + d.rejected }), { missing: 0, extra: 0, rejected: 0 });
}
