// The rows a replicated transaction changed, read again from the source with the stream's own
// select list (the adapters map them as a poll's rows) and delivered page by page.
//
// By id: the ids the change stream listed. By xmin: a streamed transaction too large to list
// its ids (change-stream.ts, largeTransactionRows) is known by the ids of its (sub)transactions
// instead. Every row version a transaction writes carries its (sub)transaction's id as xmin,
// so one scan of the table, through a cursor, finds the rows it left. A row a later
// transaction changed again has that one's xmin instead, and that transaction lists it: it is
// read then. Reading by xmin costs a sequential scan of the table, once per batch holding such
// a transaction, and keeps no ids.
import type pg from 'pg';
import type { StreamRunner } from './stream-runner.ts';

type Row = Record<string, unknown>;

export interface RowRead {
  client: pg.PoolClient;
  runner: StreamRunner;
  /** The stream's select list (with its completeness, replication-runner.ts). */
  selectList: string;
  /** What to deliver of each page read. */
  keep(rows: Row[]): Row[];
}

/**
 * Pages from `next` delivered through the stream's page handler. Three stages overlap: the next
 * page is read from PostgreSQL while this one is mapped and looked up, and while the previous
 * one is written to the event store (a page never holds a row of another page, so two pages in
 * flight never hold the same row; the journal records each page's classification before its
 * rows are written). The caller checkpoints once all are delivered.
 */
async function deliverPages(read: RowRead, next: () => Promise<{ rows: Row[] }> | undefined, fresh?: ReadonlySet<string>): Promise<number> {
  const handle = read.runner.pageHandler(undefined, fresh);
  let reading = next();
  // Awaited in turn; a failure while an earlier page is delivered must not count as unhandled.
  reading?.catch(() => undefined);
  const delivering: Promise<void>[] = [];
  let count = 0;
  try {
    while (reading !== undefined) {
      const { rows } = await reading;
      count += rows.length;
      // A page read ahead is ready at once, and mapping and counting run on the event loop:
      // a turn for the HTTP server between pages, so /metrics answers during a large batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
      reading = next();
      reading?.catch(() => undefined);
      const page = handle(read.keep(rows));
      // Its failure is awaited below; until then it must not count as unhandled.
      page.catch(() => undefined);
      delivering.push(page);
      // At most two pages delivered at once; a failure of any fails the batch.
      if (delivering.length >= 2) await delivering[delivering.length - 2];
    }
    await Promise.all(delivering);
  } finally {
    // After a failure, what is in flight finishes before the connection is used again.
    await Promise.allSettled([reading, ...delivering]);
  }
  return count;
}

/** The stream's WHERE clause: `condition` and the stream's own filter (request types). */
function where(runner: StreamRunner, condition: string, params: unknown[]): string {
  const { filter } = runner.stream.spec;
  const param = (value: unknown) => `$${params.push(value)}`;
  return [condition, ...(filter ? [filter(param)] : [])].join(' AND ');
}

/**
 * The rows of `ids` (distinct), in pages of the source's batchSize; `fresh` are ids known to be
 * new to the event store (not looked up). `idType` is the id column's SQL type.
 */
export async function readByIds(read: RowRead, idType: string, ids: readonly string[], fresh?: ReadonlySet<string>): Promise<number> {
  const { table, idColumn, batchSize } = read.runner.stream.spec;
  let offset = 0;
  return deliverPages(read, () => {
    if (offset >= ids.length) return undefined;
    const params: unknown[] = [ids.slice(offset, (offset += batchSize))];
    return read.client.query<Row>(`SELECT ${read.selectList} FROM ${table} t WHERE ${where(read.runner, `t.${idColumn} = ANY($1::${idType}[])`, params)}`, params);
  }, fresh);
}

/**
 * The rows whose xmin is one of `xids`, less those in `skip` (read by id in the same batch, and
 * counted there), through a cursor: one sequential scan, fetched in pages of the source's
 * batchSize.
 */
export async function readByXids(read: RowRead, xids: ReadonlySet<number>, skip: ReadonlySet<string>): Promise<number> {
  const { client, runner } = read;
  const { table, batchSize } = runner.stream.spec;
  const params: unknown[] = [[...xids].map(String)];
  await client.query('BEGIN READ ONLY');
  try {
    await client.query(`DECLARE tokenwatch_by_xmin NO SCROLL CURSOR FOR SELECT ${read.selectList} FROM ${table} t WHERE ${where(runner, 't.xmin = ANY($1::xid[])', params)}`, params);
    // The cursor is done after a short page: its length before the rows read by id are left out.
    let fetched = batchSize;
    const count = await deliverPages(read, () => {
      if (fetched < batchSize) return undefined;
      return client.query<Row>(`FETCH ${batchSize} FROM tokenwatch_by_xmin`).then(({ rows }) => {
        fetched = rows.length;
        return { rows: rows.filter((r) => !skip.has(runner.stream.rowId(r))) };
      });
    });
    await client.query('COMMIT');
    return count;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
