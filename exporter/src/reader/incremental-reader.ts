// Reads an append-only table incrementally: every committed row exactly once, even when rows
// commit late and out of order, using only the index the source already has on its
// timestamp column and read-only access.
//
// How it works (docs/how-rows-are-read.md has the long form):
//  - A poll is one REPEATABLE READ, READ ONLY transaction. Its snapshot S_new is recorded with
//    txid_current_snapshot().
//  - Rows visible in the previous poll's snapshot S_prev were emitted by that poll. A row is new
//    when the transaction that wrote its current version (xmin) is not visible in S_prev. That
//    test is exact for late commits and out-of-order commits alike: no clock or sequence guess
//    is involved. txid_current_snapshot() lists top-level transactions only, so an xmin at or
//    above the snapshot's xmin may be a subtransaction (a savepoint) of a transaction still
//    open then; visibility there is decided by the set of such xids whose rows were handed over
//    (`committed`, kept with the snapshot), never by the in-progress list (visibleIn()).
//  - A table written in steps (insert, then update with the response) declares when a row is
//    complete: a poll skips incomplete rows until their update commits (a new version, hence
//    new), and hands over a row still incomplete when it falls below the watermark as it is.
//  - The xmin test alone would need a full scan, so the scan is bounded by a watermark on the
//    indexed timestamp column: rows with a timestamp below it are final. The watermark trails
//    the database clock by maxCommitDelay, the longest a row may take to commit after its
//    timestamp. That bound is the one assumption; rows that commit later are missed (and the
//    docs/how-rows-are-read.md says so).
//  - Inside a poll, pages follow keyset order (timestamp, id) so a page never rescans the
//    previous ones. After each page the checkpoint records how far the poll got, so a long
//    backfill resumes after a crash rather than starting over.
//  - Rows that commit later than maxCommitDelay are not lost: the checkpoint keeps a compact
//    history of what the polls read below the watermark (read-history.ts), and a periodic
//    straggler sweep reads the last sweepWindow of the table through the same index, handing
//    over exactly the rows none of those polls could see.
import type { PoolClient } from 'pg';
import type { CheckpointStore, Checkpoint } from './checkpoint-store.ts';
import { beginRead } from '../db/postgres.ts';
import { MAX_RANGES, afterPoll, afterSweep, type ReadHistory } from './read-history.ts';
import { cursorTime, readInChunks, type ChunkStages } from './chunked-read.ts';

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
  /**
   * For a table whose rows are written in steps (inserted, then updated with the outcome): SQL
   * over alias `t` that is true once a row is complete. A poll hands a row over when it is
   * complete, or as it is once its timestamp falls below the watermark (maxCommitDelay after
   * it); rows carry `__complete`. Absent: every row is complete when it commits.
   */
  complete?: string;
  maxCommitDelayMs: number;
  batchSize: number;
  startFrom: string;
  /** Progress inside a long poll is checkpointed at most this often (default 1 s). */
  progressSaveIntervalMs?: number;
  /** How far back the straggler sweep reads (0 or absent: no sweep, and no history kept). */
  sweepWindowMs?: number;
  /** How often the straggler sweep runs. */
  sweepIntervalMs?: number;
}

/** What a poll's pages handed over. */
interface PageResult {
  rows: number;
  incomplete: number;
  pages: number;
  /** The lowest cursor handed over (or a lower bound of it); null when none. */
  emittedMin: string | null;
  /** The xmins of the rows handed over (32-bit, as text). */
  xmins: ReadonlySet<string>;
}

/** Rows a straggler sweep handed over. */
export interface SweepResult {
  /** Rows that committed after the polls that covered their timestamp had passed. */
  rows: number;
  /** Of those, rows whose timestamp was already older than the sweep window. */
  beyondWindow: number;
  /** Largest time from a late row's timestamp to the sweep that found it (an upper bound of its commit delay). */
  maxDelayMs: number;
}

/** A poll stopped between two pages because its signal was aborted; its progress is saved. */
export class PollAborted extends Error {
  constructor() {
    super('poll stopped: shutting down');
  }
}

export interface ReadPage {
  rows: Record<string, unknown>[];
  /** Checkpoint that becomes durable once the page is handled. */
  checkpoint: Checkpoint;
}

export interface PollResult {
  rows: number;
  /** Of those, rows handed over incomplete (their timestamp fell below the watermark first). */
  incomplete: number;
  pages: number;
  checkpoint: Checkpoint;
}

export type PoolConnect = () => Promise<PoolClient>;

/**
 * State that is saved in the same atomic checkpoint write as the reader's position, so that
 * it always describes exactly the pages handled (the metrics registry's counters).
 */
export interface CheckpointCompanion {
  save(): unknown;
  /** The checkpoint holding `state` is durable. */
  saved(state: unknown, checkpoint: Checkpoint): void;
}

const DEFAULT_PROGRESS_SAVE_INTERVAL_MS = 1000;

const XID_SPACE = 4294967296n;

/** A snapshot as the reader keeps it: txid_current_snapshot() text, plus the `committed` xids. */
export interface ReadSnapshot {
  /** Oldest transaction still running when it was taken (64-bit, as text). */
  xmin: string;
  /**
   * 32-bit xids at or above xmin whose rows the reader had handed over by then: transactions
   * that had committed. Any other xid at or above xmin counts as not visible (it may be a
   * savepoint of a transaction still open: txid_current_snapshot() does not list those).
   */
  committed: string[];
}

/**
 * Parses a kept snapshot: "xmin:xmax:xip" as txid_current_snapshot() prints it, optionally
 * followed by ":committed" (a comma list). A snapshot kept by an older version has no
 * committed list: its band is read again once, and the row versions make that harmless.
 */
export function parseSnapshot(text: string): ReadSnapshot {
  const [xmin = '0', , , committed = ''] = text.split(':');
  return { xmin, committed: committed === '' ? [] : committed.split(',') };
}

export function formatSnapshot(pgSnapshot: string, committed: readonly string[]): string {
  const [xmin, xmax, xip = ''] = pgSnapshot.split(':');
  return `${xmin}:${xmax}:${xip}:${committed.join(',')}`;
}

/** The low 32 bits of a 64-bit txid, as t.xmin shows it. */
export function xid32(txid: string): string {
  return (BigInt(txid) % XID_SPACE).toString();
}

/** Whether 32-bit xid `x` is at or after 64-bit `xmin` (in the 2^31 window VACUUM guarantees). */
export function xidAtOrAfter(x: string, xmin: string): boolean {
  const diff = (BigInt(x) - BigInt(xid32(xmin)) + XID_SPACE) % XID_SPACE;
  return diff < XID_SPACE / 2n;
}

/**
 * The committed list of a snapshot taken now (`pgSnapshot`): the xids of `kept` (earlier lists,
 * and the xmins of rows handed over since) that are at or above its xmin. Below it every
 * transaction has finished, so the list stays as long as the oldest open transaction is old.
 */
export function committedSince(pgSnapshot: string, ...kept: Iterable<string>[]): string[] {
  const xmin = pgSnapshot.split(':')[0]!;
  const out = new Set<string>();
  for (const list of kept) for (const x of list) if (xidAtOrAfter(x, xmin)) out.add(x);
  return [...out].sort((a, b) => Number(a) - Number(b));
}

/**
 * SQL that is true when the version of row `t` is visible in `snapshot` (a kept ReadSnapshot
 * text): written by a transaction older than every transaction open then (so finished, and
 * committed since the row exists), or by one of the snapshot's committed xids. Written with
 * age(), which compares 32-bit transaction ids as integers (a 2^31 window, which VACUUM's
 * wraparound protection guarantees), rather than widening xmin to 64 bits through text: the
 * poll evaluates this for every row of its window, and the casts cost as much as the row.
 */
export function visibleIn(snapshot: string, param: (value: unknown) => string): string {
  const { xmin, committed } = parseSnapshot(snapshot);
  const older = `age(t.xmin) > age(${param(xid32(xmin))}::xid)`;
  return committed.length === 0 ? `(${older})` : `(${older} OR t.xmin = ANY(${param(committed)}::xid[]))`;
}

/**
 * Orders two cursor values (timestamps as PostgreSQL prints them, or ISO), to the
 * microsecond; 'infinity' and '-infinity' sort last and first.
 */
export function compareCursor(a: string, b: string): number {
  const key = (text: string): [number, number] => {
    if (text === 'infinity') return [Infinity, 0];
    if (text === '-infinity') return [-Infinity, 0];
    const fraction = /\.(\d+)/.exec(text)?.[1] ?? '';
    return [cursorTime(text), Number(fraction.slice(3, 6).padEnd(3, '0'))];
  };
  const [am, au] = key(a);
  const [bm, bu] = key(b);
  return am !== bm ? (am < bm ? -1 : 1) : au - bu;
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
    const saved = extra === undefined ? checkpoint : { ...checkpoint, extra };
    this.store.save(this.spec.id, saved);
    if (extra !== undefined) this.companion!.saved(extra, saved);
  }

  /**
   * Reads every row committed since the last poll, page by page. `handle` is awaited for each
   * page before the page's checkpoint is saved: a crash re-delivers at most the pages whose
   * handling had not finished (at-least-once towards sinks, which are idempotent).
   */
  async poll(handle: (rows: Record<string, unknown>[]) => Promise<void>, signal?: AbortSignal): Promise<PollResult> {
    const client = await this.connect();
    try {
      const { snapshot, now: dbNow } = await beginRead(client);
      const start = this.store.load(this.spec.id) ?? (await this.initialCheckpoint(client, snapshot, dbNow));
      const watermark = await this.nextWatermark(client, start);
      const result = await this.readPages(client, start, { snapshot, watermark }, handle, signal);
      return await this.complete(client, start, { snapshot, watermark }, result);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * Where this poll leaves the watermark: maxCommitDelay before the transaction's start (now()
   * is fixed for the transaction, so computing it first gives the value the end would).
   */
  private async nextWatermark(client: PoolClient, start: Checkpoint): Promise<string> {
    const advanced = await client.query<{ watermark: string }>(
      `SELECT greatest($1::timestamptz, now() - make_interval(secs => $2::double precision / 1000))::text AS watermark`,
      [start.watermark, this.spec.maxCommitDelayMs],
    );
    return advanced.rows[0]!.watermark;
  }

  /**
   * Poll complete: every row visible in `snapshot` above the watermark has been handled, the
   * lowest of them at `result.emittedMin` (or a lower bound of it; null when none).
   */
  private async complete(client: PoolClient, start: Checkpoint, read: { snapshot: string; watermark: string }, result: PageResult): Promise<PollResult> {
    await client.query('COMMIT');
    const { watermark } = read;
    // The xids at or above the new snapshot's xmin whose rows are handed over: the previous
    // snapshot's, an interrupted poll's, this poll's.
    const snapshot = formatSnapshot(read.snapshot, committedSince(
      read.snapshot,
      start.snapshot === null ? [] : parseSnapshot(start.snapshot).committed,
      start.inProgress === null ? [] : parseSnapshot(start.inProgress.snapshot).committed,
      result.xmins,
    ));
    // An interrupted poll handed over rows above the start watermark that this one does not
    // see again: count them as handed over at the lowest point they could have.
    const emittedMin = start.inProgress !== null ? (start.watermark ?? result.emittedMin) : result.emittedMin;
    const history = this.sweeps()
      ? afterPoll(start.history, { fromWatermark: start.watermark, toWatermark: watermark, snapshot, emittedMin }, compareCursor)
      : undefined;
    const done: Checkpoint = {
      version: 1,
      extra: start.extra,
      ...(history ? { history } : {}),
      watermark,
      snapshot,
      inProgress: null,
      rowsEmitted: start.rowsEmitted + result.rows,
      updatedAt: new Date().toISOString(),
    };
    this.save(done);
    return { rows: result.rows, incomplete: result.incomplete, pages: result.pages, checkpoint: done };
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
      // Skipped rows count as handed over: those of transactions at or above the snapshot's
      // xmin are named, or the first poll would take them for savepoint rows.
      checkpoint.snapshot = formatSnapshot(snapshot, await this.visibleBand(client, snapshot, checkpoint.watermark));
    } else if (this.spec.startFrom !== 'earliest') {
      checkpoint.watermark = this.spec.startFrom;
    }
    return checkpoint;
  }

  /**
   * The distinct xmins, at or above `snapshot`'s xmin, of the rows visible to this transaction
   * with a cursor at or above `from` (null: all): what a snapshot's committed list must name
   * when its rows were handed over (or skipped) without being read one by one. Empty, with no
   * query, when no transaction was open at the snapshot.
   */
  private async visibleBand(client: PoolClient, snapshot: string, from: string | null): Promise<string[]> {
    const [xmin, xmax] = snapshot.split(':');
    if (xmin === xmax) return [];
    const { params, param } = paramList();
    const where = [`age(t.xmin) <= age(${param(xid32(xmin!))}::xid)`];
    if (from !== null) where.push(`t.${this.spec.cursorColumn} >= ${param(from)}::timestamptz`);
    if (this.spec.filter) where.push(this.spec.filter(param));
    const { rows } = await client.query<{ x: string }>(`SELECT DISTINCT t.xmin::text AS x FROM ${this.spec.table} t WHERE ${where.join(' AND ')}`, params);
    return rows.map((r) => r.x);
  }

  private sweeps(): boolean {
    return (this.spec.sweepWindowMs ?? 0) > 0;
  }

  private async readPages(
    client: PoolClient,
    start: Checkpoint,
    read: { snapshot: string; watermark: string },
    handle: (rows: Record<string, unknown>[]) => Promise<void>,
    signal: AbortSignal | undefined,
  ): Promise<PageResult> {
    const { snapshot, watermark } = read;
    let page: { cursor: string; id: string } | null = null;
    let emittedMin: string | null = null;
    let rowsTotal = 0;
    let incomplete = 0;
    let pages = 0;
    let emitted = start.rowsEmitted;
    let lastSave = 0;
    const xmins = new Set<string>();
    for (;;) {
      const { sql, params } = this.pageQuery(start, page, watermark);
      const { rows } = await client.query(sql, params);
      if (rows.length === 0) break;
      await handle(rows);
      for (const row of rows) {
        xmins.add(String(row.__xmin));
        if (row.__complete === false) incomplete += 1;
      }
      // Pages are in cursor order: the first row of the first page is the lowest.
      emittedMin ??= String(rows[0]!.__cursor);
      const last = rows[rows.length - 1]!;
      page = { cursor: String(last.__cursor), id: String(last.__id) };
      rowsTotal += rows.length;
      emitted += rows.length;
      pages += 1;
      if (rows.length < this.spec.batchSize) break;
      // Record progress inside the poll (at once when stopping). A checkpoint left by an
      // earlier, interrupted poll stays in force until this poll has passed the point that
      // one reached.
      const previous = start.inProgress;
      const stopping = signal?.aborted === true;
      const due = stopping || Date.now() - lastSave >= (this.spec.progressSaveIntervalMs ?? DEFAULT_PROGRESS_SAVE_INTERVAL_MS);
      if (due && (previous === null || keyAtOrAfter(page.cursor, page.id, previous.afterCursor, previous.afterId))) {
        lastSave = Date.now();
        const committed = committedSince(snapshot, start.snapshot === null ? [] : parseSnapshot(start.snapshot).committed, xmins);
        this.save({
          ...start,
          inProgress: { snapshot: formatSnapshot(snapshot, committed), afterCursor: page.cursor, afterId: page.id, deadline: watermark },
          rowsEmitted: emitted,
          updatedAt: new Date().toISOString(),
        });
      }
      if (stopping) throw new PollAborted();
    }
    return { rows: rowsTotal, incomplete, pages, emittedMin, xmins };
  }

  /**
   * Whether the straggler sweep is due: sweepInterval has passed since the last one (by this
   * machine's clock), or the history has grown to MAX_RANGES ranges.
   */
  sweepDue(now = Date.now()): boolean {
    if (!this.sweeps()) return false;
    const history = this.store.load(this.spec.id)?.history;
    if (history === undefined || history.ranges.length === 0) return false;
    if (history.lastSweepAt === null || history.ranges.length >= MAX_RANGES) return true;
    return now - Date.parse(history.lastSweepAt) >= (this.spec.sweepIntervalMs ?? 0);
  }

  /**
   * The straggler sweep: one REPEATABLE READ transaction reads the rows below the watermark
   * and inside the sweep window (plus the band that left the window since the last sweep)
   * whose transaction the history says no poll could see, and hands them over page by page,
   * like a poll. Its checkpoint then records that everything there was read with its
   * snapshot. A crash before that repeats the sweep (at least once, like a page).
   */
  async sweep(handle: (rows: Record<string, unknown>[]) => Promise<void>): Promise<SweepResult> {
    const result: SweepResult = { rows: 0, beyondWindow: 0, maxDelayMs: 0 };
    const client = await this.connect();
    try {
      const { snapshot, now: dbNow } = await beginRead(client);
      const start = this.store.load(this.spec.id);
      const history = start?.history;
      if (start === undefined || history === undefined || history.ranges.length === 0 || start.watermark === null) {
        await client.query('COMMIT');
        return result;
      }
      const windowMs = this.spec.sweepWindowMs ?? 0;
      const { rows: bounds } = await client.query<{ window_start: string; lower: string }>(
        `SELECT ($1::timestamptz - make_interval(secs => $2::double precision / 1000))::text AS window_start,
           greatest($3::timestamptz, $1::timestamptz - make_interval(secs => ($2::double precision + $4::double precision) / 1000))::text AS lower`,
        [dbNow, windowMs, history.from, this.spec.sweepIntervalMs ?? 0],
      );
      const { window_start: windowStart, lower } = bounds[0]!;
      const now = cursorTime(dbNow);
      let page: { cursor: string; id: string } | null = null;
      const xmins = new Set<string>();
      for (;;) {
        const { sql, params } = this.sweepQuery(history, { lower, upper: start.watermark }, page);
        const { rows } = await client.query(sql, params);
        if (rows.length === 0) break;
        await handle(rows);
        for (const row of rows) {
          xmins.add(String(row.__xmin));
          const cursor = String(row.__cursor);
          result.maxDelayMs = Math.max(result.maxDelayMs, now - cursorTime(cursor));
          if (compareCursor(cursor, windowStart) < 0) result.beyondWindow += 1;
        }
        result.rows += rows.length;
        const last = rows[rows.length - 1]!;
        page = { cursor: String(last.__cursor), id: String(last.__id) };
        if (rows.length < this.spec.batchSize) break;
      }
      await client.query('COMMIT');
      // Everything visible to the sweep is handed over now: below the watermark what the
      // ranges' snapshots saw (their committed xids) and what the sweep found, above it what
      // the last poll saw (a poll may extend the sweep's range upwards with this snapshot).
      const committed = committedSince(
        snapshot,
        ...history.ranges.map((r) => parseSnapshot(r.snapshot).committed),
        start.snapshot === null ? [] : parseSnapshot(start.snapshot).committed,
        start.inProgress === null ? [] : parseSnapshot(start.inProgress.snapshot).committed,
        xmins,
      );
      this.save({
        ...start,
        history: afterSweep(history, { from: windowStart, snapshot: formatSnapshot(snapshot, committed), at: new Date().toISOString() }),
        rowsEmitted: start.rowsEmitted + result.rows,
        updatedAt: new Date().toISOString(),
      });
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * The SQL of one sweep page: rows in [lower, upper) whose transaction is not visible in the
   * snapshot of the history range their timestamp falls in, after the previous page.
   */
  sweepQuery(
    history: ReadHistory,
    bounds: { lower: string; upper: string },
    page: { cursor: string; id: string } | null,
  ): { sql: string; params: unknown[] } {
    const { cursorColumn: cursor } = this.spec;
    const { params, param } = paramList();
    const handedOver = history.ranges
      .map((r) => `WHEN t.${cursor} < ${param(r.upTo)}::timestamptz THEN ${visibleIn(r.snapshot, param)}`)
      .join(' ');
    const where = [
      `t.${cursor} >= ${param(bounds.lower)}::timestamptz`,
      `t.${cursor} < ${param(bounds.upper)}::timestamptz`,
      // No ELSE: a row above the last range is not the sweep's (NULL excludes it).
      `NOT (CASE ${handedOver} END)`,
    ];
    if (this.spec.filter) where.push(this.spec.filter(param));
    return this.pagedSelect(where, page, param, params);
  }

  /**
   * The SQL of one page: rows above the watermark, not already emitted, after the previous
   * page in keyset order. Public so that tests and `check` can EXPLAIN it.
   */
  pageQuery(start: Checkpoint, page: { cursor: string; id: string } | null, watermark: string | null = null): { sql: string; params: unknown[] } {
    const { params, param } = paramList();
    return this.pagedSelect(this.newRowsWhere(start, param, watermark), page, param, params);
  }

  /** SELECT of one keyset page under `where`, after `page` in (cursor, id) order. */
  private pagedSelect(where: string[], page: { cursor: string; id: string } | null, param: (value: unknown) => string, params: unknown[]): { sql: string; params: unknown[] } {
    const { table, cursorColumn: cursor, selectList, batchSize } = this.spec;
    const id = this.idText();
    if (page !== null) {
      // The plain >= lets the planner start the index scan at the page boundary.
      const c = param(page.cursor);
      where.push(`t.${cursor} >= ${c}`, `(t.${cursor}, ${id}) > (${c}, ${param(page.id)})`);
    }
    const complete = this.spec.complete === undefined ? '' : `, (${this.spec.complete}) AS "__complete"`;
    const sql = `SELECT ${selectList}, t.${cursor}::text AS "__cursor", ${id} AS "__id", t.xmin::text AS "__xmin"${complete} FROM ${table} t` +
      `${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY t.${cursor}, ${id} LIMIT ${batchSize}`;
    return { sql, params };
  }

  private idText(): string {
    return `t.${this.spec.idColumn}::text COLLATE "C"`;
  }

  /**
   * The conditions (over alias `t`) that select the rows a poll starting from `start` has to
   * emit: above the watermark, not emitted by the previous poll, not emitted by an interrupted
   * one, and the stream's own filter. With a completeness condition: a new version when it is
   * complete, and any incomplete row once it falls below `watermark` (the poll's new one;
   * null: no deadline yet). `param(value)` renders a value into the SQL.
   */
  private newRowsWhere(start: Checkpoint, param: (value: unknown) => string, watermark: string | null): string[] {
    const { cursorColumn: cursor, complete } = this.spec;
    const id = this.idText();
    const where: string[] = [];
    if (start.watermark !== null) where.push(`t.${cursor} >= ${param(start.watermark)}::timestamptz`);
    const seen = start.snapshot === null ? null : visibleIn(start.snapshot, param);
    let interrupted: string | null = null;
    if (start.inProgress !== null) {
      const p = start.inProgress;
      interrupted = `((t.${cursor}, ${id}) <= (${param(p.afterCursor)}, ${param(p.afterId)}) AND ${visibleIn(p.snapshot, param)}`;
      // The interrupted poll handed over the rows it selected: with a completeness condition,
      // complete ones and those below its own deadline.
      if (complete !== undefined) interrupted += p.deadline === undefined ? ` AND (${complete})` : ` AND ((${complete}) OR t.${cursor} < ${param(p.deadline)}::timestamptz)`;
      interrupted += ')';
    }
    if (complete === undefined) {
      const done = [seen, interrupted].filter((c): c is string => c !== null);
      if (done.length > 0) where.push(`NOT (${done.join(' OR ')})`);
    } else {
      if (interrupted !== null) where.push(`NOT ${interrupted}`);
      const fresh = seen === null ? `(${complete})` : `(NOT ${seen} AND (${complete}))`;
      where.push(watermark === null ? fresh : `(${fresh} OR (NOT (${complete}) AND t.${cursor} < ${param(watermark)}::timestamptz))`);
    }
    if (this.spec.filter) where.push(this.spec.filter(param));
    return where;
  }

  /**
   * A poll that hands the new rows over in time-range chunks instead of pages, for a bulk
   * backfill. Each chunk goes through four stages (ChunkStages). `copy` runs on the poll's
   * connection, inside its REPEATABLE READ transaction, with the chunk's conditions as SQL
   * with the values inlined (COPY takes no bind parameters), so a chunk sees exactly the rows
   * a page query would; `rest` may use the connection too, through chunk.withClient.
   * The stages overlap: PostgreSQL copies ahead (at most two chunks not yet loaded) while the
   * writer loads one chunk and finishes an earlier one. Loads run in order, and so do finishes.
   * After a chunk's finish the checkpoint records "every row below the chunk's upper bound
   * that is visible in this snapshot is handled" (afterId '' sorts before every id), so a
   * crash repeats at most the chunks in flight. The poll then completes like any other.
   */
  async pollInChunks<C extends { rows: number }, L, R>(stages: ChunkStages<C, L, R>, options: { chunkRows: number; slots: number }): Promise<PollResult> {
    const client = await this.connect();
    try {
      const { snapshot, now: dbNow } = await beginRead(client);
      const start = this.store.load(this.spec.id) ?? (await this.initialCheckpoint(client, snapshot, dbNow));
      const watermark = await this.nextWatermark(client, start);
      const inline = (value: unknown): string => inlineLiteral(client, value);
      const where = this.newRowsWhere(start, inline, watermark);
      const { table, cursorColumn: cursor } = this.spec;
      const read = await readInChunks(client, {
        table, cursor, where, since: start.watermark, after: start.inProgress?.afterCursor ?? null, ...options,
        // No committed list: rows of the chunk are not tracked one by one, so an interrupted
        // bulk poll reads the band of open transactions again (once).
        finished: (upper, rows) => {
          if (upper !== null) this.save({ ...start, inProgress: { snapshot: formatSnapshot(snapshot, []), afterCursor: upper, afterId: '', deadline: watermark }, rowsEmitted: start.rowsEmitted + rows, updatedAt: new Date().toISOString() });
        },
      }, stages);
      // The plan's low is a lower bound of every row the chunks handed over.
      // The chunks' rows are not tracked one by one: the xids at or above the snapshot's xmin
      // of what they covered are read from the table (one pass over xmin), so the next poll
      // does not read those rows again.
      const xmins = new Set(await this.visibleBand(client, snapshot, start.watermark));
      const result = await this.complete(client, start, { snapshot, watermark }, { rows: read.rows, incomplete: 0, pages: read.chunks, emittedMin: read.rows > 0 ? read.low : null, xmins });
      client.release();
      return result;
    } catch (error) {
      // A chunk may have failed in the middle of a COPY, which leaves the connection unusable:
      // close it (that rolls the transaction back) rather than return it to the pool.
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  }
}

/** Bind parameters of one statement: `param(value)` adds a value and returns its placeholder. */
function paramList(): { params: unknown[]; param: (value: unknown) => string } {
  const params: unknown[] = [];
  return {
    params,
    param: (value) => {
      params.push(value);
      return `$${params.length}`;
    },
  };
}

/** A value as a SQL literal: strings and numbers quoted, arrays as a text[] literal. */
export function inlineLiteral(client: PoolClient, value: unknown): string {
  if (Array.isArray(value)) {
    return client.escapeLiteral(`{${value.map((v) => `"${String(v).replace(/["\\]/g, '\\$&')}"`).join(',')}}`);
  }
  return client.escapeLiteral(String(value));
}
