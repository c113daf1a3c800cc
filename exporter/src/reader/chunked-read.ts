// A table's rows handed over in time-range chunks instead of pages, on one connection inside a
// transaction the caller opened: a bulk backfill's poll (incremental-reader.ts) or the initial
// load of a replication slot under its exported snapshot. Each chunk goes through four stages
// (ChunkStages). `copy` runs on the connection with the chunk's conditions as SQL with the
// values inlined (COPY takes no bind parameters), so a chunk sees exactly the rows a page query
// would; `rest` may use the connection too, through chunk.withClient. The stages overlap:
// PostgreSQL copies ahead (at most two chunks not yet loaded) while the writer loads one chunk
// and finishes an earlier one. Loads run in order, and so do finishes.
import type { PoolClient } from 'pg';
import { plannerRowEstimate } from '../db/postgres.ts';

/**
 * Rows the chunk at `index` should hold, `remaining` rows estimated to follow it. The first
 * two chunks are smaller (a quarter and a half), and so is the last one (a quarter): nothing
 * overlaps the first copy and the last commit, so small chunks there keep both cores busy
 * for more of the poll. Every chunk costs some fixed work too, so there are no more small
 * ones than that.
 */
export function chunkTarget(index: number, remaining: number, chunkRows: number): number {
  const small = chunkRows / 4;
  const rampUp = chunkRows / 2 ** Math.max(0, 2 - index);
  // A full chunk now would leave less than a small one: leave exactly a small one.
  const rampDown = remaining <= chunkRows + small ? remaining - small : chunkRows;
  return Math.max(small, Math.min(chunkRows, rampUp, rampDown));
}

/** The stages of a chunk, in order. */
export interface ChunkStages<C extends { rows: number }, L, R> {
  /** On the read's connection (chunk.client): the chunk's rows out of PostgreSQL. */
  copy(chunk: ReadChunk, index: number): Promise<C>;
  /** Without the connection, while later chunks are copied; loads run one after another. */
  load(copied: C, index: number): Promise<L>;
  /** What the chunk still needs from PostgreSQL, through chunk.withClient. */
  rest(chunk: ReadChunk, loaded: L): Promise<R>;
  /** Without the connection; finishes run one after another, in chunk order. */
  finish(rest: R): Promise<void>;
}

export interface ReadChunk {
  /** The read's connection, inside its transaction (for copy). */
  client: PoolClient;
  /** Runs statements on the connection when it is free (for rest: copies may be running). */
  withClient<T>(use: (client: PoolClient) => Promise<T>): Promise<T>;
  /** Conditions over alias `t` selecting the chunk's new rows, values inlined. */
  where: string;
  /** Cursor range of the chunk, [lower, upper); null = unbounded. */
  lower: string | null;
  upper: string | null;
}


export interface ChunkedRead {
  /** Qualified, quoted table name, and its quoted cursor (timestamp) column. */
  table: string;
  cursor: string;
  /** Conditions over alias `t` every chunk adds, values inlined. */
  where: string[];
  /** Only rows with a cursor at or above this (the reader's watermark); null: all. */
  since: string | null;
  /** Resume after this cursor (an interrupted read's last finished chunk); null: from the start. */
  after: string | null;
  chunkRows: number;
  /** Chunks loaded and not finished at most (the loader's staging slots). */
  slots: number;
  /** After each chunk's finish, in order: its upper bound (null for the last) and the rows finished so far. */
  finished?(upper: string | null, rows: number): void;
}

/**
 * Reads the rows of `read` in chunks through `stages`; returns the rows, the chunks, and the
 * lowest cursor (a lower bound of every row handed over; null when the table had none).
 * On a failure, every stage in flight is awaited before it is thrown (the caller then closes
 * the connection: a COPY cut short leaves it unusable).
 */
export async function readInChunks<C extends { rows: number }, L, R>(client: PoolClient, read: ChunkedRead, stages: ChunkStages<C, L, R>): Promise<{ rows: number; chunks: number; low: string | null }> {
  const inFlight = new Set<Promise<unknown>>();
  let failure: { error: unknown } | undefined;
  // Every stage promise is tracked: the first failure stops the copying, the others are
  // awaited before the connection goes, and no rejection counts as unhandled.
  const track = <T>(promise: Promise<T>): Promise<T> => {
    inFlight.add(promise);
    promise.then(() => inFlight.delete(promise), (error: unknown) => (failure ??= { error }));
    return promise;
  };
  // One statement at a time on the connection: copies and the rest stages take turns.
  let clientTurn: Promise<unknown> = Promise.resolve();
  const withClient = <T>(use: (c: PoolClient) => Promise<T>): Promise<T> => {
    const turn = clientTurn.then(() => use(client));
    clientTurn = turn.catch(() => undefined);
    return turn;
  };
  const inline = (value: string) => client.escapeLiteral(value);
  const { table, cursor, where, chunkRows } = read;
  try {
    const plan = await client.query<{ low: string | null; high: string | null }>(
      `SELECT min(t.${cursor})::text AS low, max(t.${cursor})::text AS high
       FROM ${table} t ${read.since !== null ? `WHERE t.${cursor} >= ${inline(read.since)}::timestamptz` : ''}`,
    );
    const { low, high } = plan.rows[0]!;
    if (low === null || high === null) return { rows: 0, chunks: 0, low: null };
    const estimate = await plannerRowEstimate(client, table);
    let rowsTotal = 0;
    let chunks = 0;
    // Chunks are time ranges; their width starts from the planner's row estimate of the
    // table (a 256th of the range when the planner has none) and adapts to the rows the
    // previous chunk held.
    const from = Math.max(cursorTime(low), read.after !== null ? cursorTime(read.after) : -Infinity);
    const to = cursorTime(high);
    const rowsEstimate = estimate > 0 ? Math.max(estimate, chunkRows) : chunkRows * 256;
    let width = Math.max(1, ((to - from + 1) * chunkTarget(0, rowsEstimate, chunkRows)) / rowsEstimate);
    let boundary = from;
    let lower: string | null = null;
    const loads: Promise<L>[] = [];
    const finishes: Promise<void>[] = [];
    for (let index = 0; ; index++) {
      if (index >= 2) await loads[index - 2];
      if (failure) throw failure.error;
      boundary += width;
      const upper = boundary > to ? null : new Date(boundary).toISOString();
      const conditions = [...where];
      if (lower !== null) conditions.push(`t.${cursor} >= ${inline(lower)}::timestamptz`);
      if (upper !== null) conditions.push(`t.${cursor} < ${inline(upper)}::timestamptz`);
      const chunk: ReadChunk = { client, withClient, where: conditions.length > 0 ? conditions.join(' AND ') : 'true', lower, upper };
      const copied = await track(withClient(() => stages.copy(chunk, index)));
      rowsTotal += copied.rows;
      chunks += 1;
      // Rows still to come, at the density of the chunk just copied; the next chunk's
      // width aims at chunkTarget() of them.
      const remaining = (Math.max(0, to - boundary) * copied.rows) / width;
      width *= Math.min(4, Math.max(0.5, chunkTarget(index + 1, remaining, chunkRows) / Math.max(copied.rows, 1)));
      // A load waits for the previous load and for its staging slot to be finished with.
      const loaded = track(Promise.all([loads[index - 1], finishes[index - read.slots]]).then(() => stages.load(copied, index)));
      loads.push(loaded);
      const rest = track(loaded.then((l) => stages.rest(chunk, l)));
      const done = rowsTotal;
      finishes.push(track(Promise.all([rest, finishes[index - 1]]).then(([r]) => stages.finish(r)).then(() => read.finished?.(upper, done))));
      if (upper === null) break;
      lower = upper;
    }
    await finishes[finishes.length - 1];
    return { rows: rowsTotal, chunks, low };
  } catch (error) {
    await Promise.allSettled([...inFlight]);
    throw error;
  }
}

/** Milliseconds of a cursor value as PostgreSQL prints it in UTC ("2026-01-02 03:04:05.6+00"), or ISO. */
export function cursorTime(text: string): number {
  const iso = text.replace(' ', 'T').replace(/\+00$/, 'Z');
  return Date.parse(/(Z|[+-]\d\d(:?\d\d)?)$/.test(iso) ? iso : `${iso}Z`);
}
