// The initial load of one table of a source in mode: replication, inside the transaction that
// imported the new slot's exported snapshot: the load sees exactly what the slot's stream will
// not, so the two meet with no gap and no overlap (replication-runner.ts).
//
// A stream with a bulk path, when the event store is the only sink, is loaded in chunks the way
// a bulk backfill is (COPY -> ClickHouse, bulk-poll.ts); the others row by row through a
// cursor, page by page, on the row path. Rows of a table written in steps that are still
// incomplete are not loaded: their ids are returned, to wait for their completing UPDATE on
// the stream (or to be delivered as they are after maxCommitDelay).
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { inlineLiteral } from '../reader/incremental-reader.ts';
import { readInChunks } from '../reader/chunked-read.ts';
import { bulkRead, type BulkPollDeps } from './bulk-poll.ts';
import type { StreamRunner } from './stream-runner.ts';

/** Rows fetched from the cursor at a time on the row path. */
const LOAD_PAGE = 5000;
const PROGRESS_LOG_MS = 10_000;

export interface StreamLoad {
  /** A connection inside the read-only transaction that imported the slot's snapshot. */
  client: pg.PoolClient;
  runner: StreamRunner;
  /** The stream's select list, with `"__complete"` where the table is written in steps. */
  selectList: string;
  /** The bulk path's dependencies, or undefined for row by row. */
  bulk: BulkPollDeps | undefined;
  /**
   * After each bulk chunk is committed to the event store: its counters must be saved then
   * (the chunk's rows, read again after a crash, are found stored and not counted again).
   */
  chunkCommitted(rows: number): void;
  logger: Logger;
}

/** Loads the stream's rows under the snapshot; returns the rows handed over and the ids of incomplete rows left waiting. */
export async function loadStream(load: StreamLoad): Promise<{ rows: number; incomplete: string[] }> {
  const { client, runner } = load;
  const { table, idColumn, cursorColumn, filter, startFrom, complete } = runner.stream.spec;
  // startFrom: now loads nothing (every later commit is streamed); a timestamp loads the rows from it on.
  if (startFrom === 'now') return { rows: 0, incomplete: [] };
  const inline = (value: unknown) => inlineLiteral(client, value);
  const where = [...(filter ? [filter(inline)] : []), ...(startFrom === 'earliest' ? [] : [`t.${cursorColumn} >= ${inline(startFrom)}::timestamptz`])];
  const progress = progressLog(load);
  if (!load.bulk) return loadRowByRow(load, where, progress);
  const ready = complete === undefined ? where : [...where, `(${complete})`];
  const rows = await bulkRead(runner, load.bulk, progress, (stages, options) => readInChunks(client, { table, cursor: cursorColumn, where: ready, since: null, after: null, ...options, finished: (_upper, rows) => load.chunkCommitted(rows) }, stages).then((r) => r.rows));
  const incomplete = complete === undefined ? [] : (await client.query<{ id: string }>(
    `SELECT t.${idColumn}::text AS id FROM ${table} t WHERE ${[...where, `NOT (${complete})`].join(' AND ')}`,
  )).rows.map((r) => r.id);
  return { rows, incomplete };
}

/** The rows through a cursor (one pass over the table), complete rows delivered page by page. */
async function loadRowByRow(load: StreamLoad, where: string[], progress: (rows: number) => void): Promise<{ rows: number; incomplete: string[] }> {
  const { client, runner } = load;
  const handle = runner.pageHandler(progress);
  await client.query(`DECLARE tokenwatch_load NO SCROLL CURSOR FOR SELECT ${load.selectList} FROM ${runner.stream.spec.table} t${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}`);
  let rows = 0;
  const incomplete: string[] = [];
  for (;;) {
    const { rows: page } = await client.query<Record<string, unknown>>(`FETCH ${LOAD_PAGE} FROM tokenwatch_load`);
    if (page.length === 0) break;
    for (const row of page) if (row.__complete === false) incomplete.push(runner.stream.rowId(row));
    await handle(page.filter((r) => r.__complete !== false));
    rows += page.length;
  }
  await client.query('CLOSE tokenwatch_load');
  return { rows, incomplete };
}

/** Logs the rows loaded so far at most every PROGRESS_LOG_MS (a first load of a large table takes minutes). */
function progressLog(load: StreamLoad): (rows: number) => void {
  let total = 0;
  let logged = performance.now();
  return (rows) => {
    total += rows;
    if (performance.now() - logged < PROGRESS_LOG_MS) return;
    logged = performance.now();
    load.logger.info({ stream: load.runner.id, rows: total, bulk: load.bulk !== undefined }, 'initial load in progress');
  };
}
