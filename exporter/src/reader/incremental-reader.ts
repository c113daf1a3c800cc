// Reads an append-only table incrementally: every committed row exactly once, even when rows
// commit late and out of order, using only the index the source already has on its
// timestamp column and read-only access.
//
// How it works (README, "How rows are read", has the long form):
//  - A poll is one REPEATABLE READ, READ ONLY transaction. Its snapshot S_new is recorded with
//    txid_current_snapshot().
//  - Rows visible in the previous poll's snapshot S_prev were emitted by that poll. A row is new
//    when its inserting transaction (xmin) is not visible in S_prev. That test is exact for late
//    commits and out-of-order commits alike: no clock or sequence guess is involved.
//  - The xmin test alone would need a full scan, so the scan is bounded by a watermark on the
//    indexed timestamp column: rows with a timestamp below it are final. The watermark trails
//    the database clock by maxCommitDelay, the longest a row may take to commit after its
//    timestamp. That bound is the one assumption; rows that commit later are missed (and the
//    README says so).
//  - Inside a poll, pages follow keyset order (timestamp, id) so a page never rescans the
//    previous ones. After each page the checkpoint records how far the poll got, so a long
//    backfill resumes after a crash rather than starting over.
import type { PoolClient } from 'pg';
import type { CheckpointStore, Checkpoint } from './checkpoint-store.ts';
import { beginRead } from '../db/postgres.ts';

export interface IncrementalStreamSpec {
  /** Stable id, also the checkpoint's name: "<source name>/<table>". */
  id: string;
  /** Qualified, quoted table name. */
  table: string;
  /** Quoted name of the indexed timestamp column the scan is bounded by. */
  cursorColumn: string;
  /** Quoted name of the primary key column (ties between equal timestamps). */
  idColumn: string;
  /** Select list over alias `t`, e.g. `t."domain" AS domain, …`. */
  selectList: string;
  /** Extra filter over alias `t`; `param(value)` returns the placeholder for a bind value. */
  filter?: (param: (value: unknown) => string) => string;
  maxCommitDelayMs: number;
  batchSize: number;
  startFrom: string;
  /** Progress inside a long poll is checkpointed at most this often (default 1 s). */
  progressSaveIntervalMs?: number;
}

export interface ReadPage {
  rows: Record<string, unknown>[];
  /** Checkpoint that becomes durable once the page is handled. */
  checkpoint: Checkpoint;
}

export interface PollResult {
  rows: number;
  pages: number;
  checkpoint: Checkpoint;
}

export { epochOf };

export type PoolConnect = () => Promise<PoolClient>;

/**
 * State that is saved in the same atomic checkpoint write as the reader's position, so that
 * it always describes exactly the pages handled (the metrics registry's counters).
 */
export interface CheckpointCompanion {
  save(): unknown;
  /** The checkpoint holding `state` is durable. */
  saved(state: unknown): void;
}

const DEFAULT_PROGRESS_SAVE_INTERVAL_MS = 1000;

const EPOCH = 4294967296n;

/** The 64-bit "current epoch" base and the low 32 bits of a snapshot's xmax. */
function epochOf(snapshot: string): { epochBase: string; xmaxLow: string } {
  const xmax = BigInt(snapshot.split(':')[1]!);
  return { epochBase: ((xmax / EPOCH) * EPOCH).toString(), xmaxLow: (xmax % EPOCH).toString() };
}

/** Text order of timestamps in UTC and of ids under COLLATE "C" is their SQL order. */
function keyAtOrAfter(cursor: string, id: string, otherCursor: string, otherId: string): boolean {
  return cursor > otherCursor || (cursor === otherCursor && id >= otherId);
}

function emptyCheckpoint(): Checkpoint {
  return { version: 1, watermark: null, snapshot: null, inProgress: null, rowsEmitted: 0, updatedAt: new Date().toISOString() };
}

export class IncrementalReader {
  readonly spec: IncrementalStreamSpec;
  private readonly store: CheckpointStore;
  private readonly connect: PoolConnect;

  private readonly companion: CheckpointCompanion | undefined;

  constructor(spec: IncrementalStreamSpec, store: CheckpointStore, connect: PoolConnect, companion?: CheckpointCompanion) {
    this.spec = spec;
    this.store = store;
    this.connect = connect;
    this.companion = companion;
  }

  private save(checkpoint: Checkpoint): void {
    const extra = this.companion?.save();
    this.store.save(this.spec.id, extra === undefined ? checkpoint : { ...checkpoint, extra });
    if (extra !== undefined) this.companion!.saved(extra);
  }

  /**
   * Reads every row committed since the last poll, page by page. `handle` is awaited for each
   * page before the page's checkpoint is saved: a crash re-delivers at most the pages whose
   * handling had not finished (at-least-once towards sinks, which are idempotent).
   */
  async poll(handle: (rows: Record<string, unknown>[]) => Promise<void>): Promise<PollResult> {
    const client = await this.connect();
    try {
      const { snapshot, now: dbNow } = await beginRead(client);
      const start = this.store.load(this.spec.id) ?? (await this.initialCheckpoint(client, snapshot, dbNow));
      const result = await this.readPages(client, start, snapshot, handle);
      // Poll complete: every row visible in `snapshot` above the watermark has been handled.
      const advanced = await client.query<{ watermark: string }>(
        `SELECT greatest($1::timestamptz, now() - make_interval(secs => $2::double precision / 1000))::text AS watermark`,
        [start.watermark, this.spec.maxCommitDelayMs],
      );
      await client.query('COMMIT');
      const done: Checkpoint = {
        version: 1,
        extra: start.extra,
        watermark: advanced.rows[0]!.watermark,
        snapshot,
        inProgress: null,
        rowsEmitted: start.rowsEmitted + result.rows,
        updatedAt: new Date().toISOString(),
      };
      this.save(done);
      return { rows: result.rows, pages: result.pages, checkpoint: done };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private async initialCheckpoint(client: PoolClient, snapshot: string, dbNow: string): Promise<Checkpoint> {
    const checkpoint = emptyCheckpoint();
    if (this.spec.startFrom === 'now') {
      // Rows visible now are skipped; rows still to commit within maxCommitDelay are read.
      const { rows } = await client.query<{ watermark: string }>(
        'SELECT ($1::timestamptz - make_interval(secs => $2::double precision / 1000))::text AS watermark',
        [dbNow, this.spec.maxCommitDelayMs],
      );
      checkpoint.watermark = rows[0]!.watermark;
      checkpoint.snapshot = snapshot;
    } else if (this.spec.startFrom !== 'earliest') {
      checkpoint.watermark = this.spec.startFrom;
    }
    return checkpoint;
  }

  private async readPages(
    client: PoolClient,
    start: Checkpoint,
    snapshot: string,
    handle: (rows: Record<string, unknown>[]) => Promise<void>,
  ): Promise<{ rows: number; pages: number }> {
    const { epochBase, xmaxLow } = epochOf(snapshot);
    let page: { cursor: string; id: string } | null = null;
    let rowsTotal = 0;
    let pages = 0;
    let emitted = start.rowsEmitted;
    let lastSave = 0;
    for (;;) {
      const { sql, params } = this.pageQuery(start, { epochBase, xmaxLow }, page);
      const { rows } = await client.query(sql, params);
      if (rows.length === 0) break;
      await handle(rows);
      const last = rows[rows.length - 1]!;
      page = { cursor: String(last.__cursor), id: String(last.__id) };
      rowsTotal += rows.length;
      emitted += rows.length;
      pages += 1;
      if (rows.length < this.spec.batchSize) break;
      // Record progress inside the poll. A checkpoint left by an earlier, interrupted poll
      // stays in force until this poll has passed the point that one reached.
      const previous = start.inProgress;
      const due = Date.now() - lastSave >= (this.spec.progressSaveIntervalMs ?? DEFAULT_PROGRESS_SAVE_INTERVAL_MS);
      if (due && (previous === null || keyAtOrAfter(page.cursor, page.id, previous.afterCursor, previous.afterId))) {
        lastSave = Date.now();
        this.save({
          ...start,
          inProgress: { snapshot, afterCursor: page.cursor, afterId: page.id },
          rowsEmitted: emitted,
          updatedAt: new Date().toISOString(),
        });
      }
    }
    return { rows: rowsTotal, pages };
  }

  /**
   * The SQL of one page: rows above the watermark, not already emitted, after the previous
   * page in keyset order. Public so that tests and `check` can EXPLAIN it.
   */
  pageQuery(
    start: Checkpoint,
    epoch: { epochBase: string; xmaxLow: string },
    page: { cursor: string; id: string } | null,
  ): { sql: string; params: unknown[] } {
    const { table, cursorColumn: cursor, idColumn, selectList, batchSize } = this.spec;
    const id = `t.${idColumn}::text COLLATE "C"`;
    const params: unknown[] = [];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    // xmin is 32 bits; widen it to the 64-bit txid the snapshot functions take.
    let xidExpr: string | undefined;
    const xid = (): string =>
      (xidExpr ??= `(t.xmin::text::bigint + ${param(epoch.epochBase)}::bigint - CASE WHEN t.xmin::text::bigint >= ${param(epoch.xmaxLow)}::bigint THEN 4294967296 ELSE 0 END)`);
    const where: string[] = [];
    if (start.watermark !== null) where.push(`t.${cursor} >= ${param(start.watermark)}::timestamptz`);
    const done: string[] = [];
    if (start.snapshot !== null) done.push(`txid_visible_in_snapshot(${xid()}, ${param(start.snapshot)}::txid_snapshot)`);
    if (start.inProgress !== null) {
      const p = start.inProgress;
      done.push(`((t.${cursor}, ${id}) <= (${param(p.afterCursor)}, ${param(p.afterId)}) AND txid_visible_in_snapshot(${xid()}, ${param(p.snapshot)}::txid_snapshot))`);
    }
    if (done.length > 0) where.push(`NOT (${done.join(' OR ')})`);
    if (page !== null) {
      // The plain >= lets the planner start the index scan at the page boundary.
      const c = param(page.cursor);
      where.push(`t.${cursor} >= ${c}`, `(t.${cursor}, ${id}) > (${c}, ${param(page.id)})`);
    }
    if (this.spec.filter) where.push(this.spec.filter(param));
    const sql = `SELECT ${selectList}, t.${cursor}::text AS "__cursor", ${id} AS "__id" FROM ${table} t` +
      `${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY t.${cursor}, ${id} LIMIT ${batchSize}`;
    return { sql, params };
  }
}
