// `mode: replication`: a source's incremental tables read through PostgreSQL logical
// replication instead of polls (docs/replication.md).
//
// Start: the publication over the source's tables and its slot (both "tokenwatch_<source>").
// Without a slot (or a stream without a replication position in its checkpoint), the slot is
// created with an exported snapshot and every table is loaded under that snapshot, so the load
// and the stream meet with no gap and no overlap. Then each committed transaction, in commit
// order: the ids it inserted or updated are read again with the stream's own select list (the
// adapters map them as a poll's rows) and delivered as row versions; each touched stream's
// checkpoint is saved with the transaction's LSN and its counters; only then is the LSN
// confirmed to the server. A restart streams again what was not confirmed, and a stream skips
// what its checkpoint says it handled: nothing is lost or counted twice.
//
// A row of a table written in steps (a proxy request before its response) is delivered once
// complete. One still incomplete maxCommitDelay after it was first seen is delivered as it is,
// as a poll would (its completion later arrives as a revision); the ids waiting are kept in
// the stream's checkpoint, so a restart does not forget them. Transactions and these
// deliveries run one at a time.
//
// Beside this module: the initial load (replication-load.ts) and each stream's position in its
// checkpoint (replication-positions.ts). A slot lost after the first start is loaded again, or
// with onSlotLost: polling, the source is polled from there on.
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import type { CheckpointStore } from '../reader/checkpoint-store.ts';
import type { NamedSource } from '../sources/adapter.ts';
import { unquoteIdent } from '../reader/sql.ts';
import { ChangeStream, lsnValue, type CommittedTransaction } from '../reader/replication/change-stream.ts';
import { changeStreamApplicationName, createSlot, dropSlot, ensurePublication, replicationName, slotStatus, withoutReplicaIdentity } from '../reader/replication/slot.ts';
import { idTypeOf } from './reconcile.ts';
import { withReadTransaction } from '../db/postgres.ts';
import type { StreamRunner } from './stream-runner.ts';
import type { BulkPollDeps } from './bulk-poll.ts';
import { loadStream } from './replication-load.ts';
import { readByIds, readByXids } from './replication-rows.ts';
import { ReplicationPositions } from './replication-positions.ts';
import type { ReplicationStatus } from './status.ts';

const STATUS_INTERVAL_MS = 5000;
const RETRY_MS = 5000;
const OVERDUE_CHECK_MS = 1000;
/** Rows (inserted or updated) a batch of transactions holds before the stream waits for it. */
const MAX_BATCH_IDS = 20_000;

/** Transactions gathered to be handled together, of one run of the stream. */
interface Batch {
  generation: number;
  transactions: CommittedTransaction[];
  /** Rows they inserted or updated. */
  ids: number;
  /** Set once the batch's handling is scheduled. */
  flushing: Promise<void> | undefined;
}

export interface ReplicationOptions {
  store: CheckpointStore;
  logger: Logger;
  /** Called once when the slot is lost and the source is to be polled instead (onSlotLost: polling). */
  onFallback(): void;
  /** The bulk path's dependencies for a stream's initial load, or undefined for row by row. */
  bulkFor(runner: StreamRunner): Promise<BulkPollDeps | undefined>;
}

export interface ReplicationSource {
  config: NamedSource;
  pool: pg.Pool;
  streams: StreamRunner[];
}

/** "schema.table" of a stream's qualified, quoted table name. */
function tableKey(qualified: string): string {
  const match = /^("(?:[^"]|"")*"|[^.]+)\.("(?:[^"]|"")*"|.+)$/.exec(qualified);
  return match ? `${unquoteIdent(match[1]!)}.${unquoteIdent(match[2]!)}` : `public.${unquoteIdent(qualified)}`;
}

export class ReplicationRunner {
  private readonly source: ReplicationSource;
  private readonly logger: Logger;
  private readonly name: string;
  private readonly byTable = new Map<string, StreamRunner>();
  private readonly idTypes = new Map<StreamRunner, string>();
  /**
   * Streams whose table this process has seen rows deleted from (or truncated): an id inserted
   * there may be one deleted before and still in the event store, so none is taken as new.
   */
  private readonly deleting = new Set<StreamRunner>();
  private readonly positions: ReplicationPositions;
  private serial: Promise<unknown> = Promise.resolve();
  /** The run of the stream (a failure starts the next), and its transactions received and not handled yet. */
  private generation = 0;
  private batch: Batch = { generation: 0, transactions: [], ids: 0, flushing: undefined };
  private overdueTimer: NodeJS.Timeout | undefined;
  private readonly status: ReplicationStatus;
  private stream: ChangeStream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  private readonly options: ReplicationOptions;

  constructor(source: ReplicationSource, options: ReplicationOptions) {
    this.source = source;
    this.options = options;
    this.logger = options.logger;
    this.name = replicationName(source.config.name);
    this.positions = new ReplicationPositions(options.store, this.name);
    for (const runner of source.streams) this.byTable.set(tableKey(runner.stream.spec.table), runner);
    this.status = { slot: this.name, lagBytes: 0, retainedBytes: 0, lastMessageAt: null, pollingFallback: false };
    for (const runner of source.streams) runner.status.replication = this.status;
  }

  /** Starts reading; failures are logged and retried (the streams show them as their last error). */
  start(): void {
    void this.run();
    this.timer = setInterval(() => void this.refreshStatus(), STATUS_INTERVAL_MS);
    // A failure here (the database down) is the stream's own failure too, which handles it;
    // the next tick tries again.
    this.overdueTimer = setInterval(() => {
      void this.inTurn(() => this.deliverOverdue()).catch((error: unknown) => this.logger.warn({ source: this.source.config.name, error: errorText(error) }, 'incomplete rows not delivered yet'));
    }, OVERDUE_CHECK_MS);
  }

  /** Runs `work` after every transaction and delivery queued before it. */
  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.serial.then(work);
    this.serial = turn.catch(() => undefined);
    return turn;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.overdueTimer);
    await this.stream?.stop().catch(() => undefined);
  }

  /**
   * The run of `generation` failed: its batches not handled are dropped (they are streamed
   * again), and a new run starts in RETRY_MS. A failure of an earlier run is ignored.
   */
  private failed(error: unknown, generation: number): void {
    if (generation !== this.generation) return;
    this.generation += 1;
    this.batch = { generation: this.generation, transactions: [], ids: 0, flushing: undefined };
    const message = errorText(error);
    for (const runner of this.source.streams) {
      runner.status.polls += 1;
      runner.status.lastError = message;
    }
    this.logger.error({ source: this.source.config.name, slot: this.name, error: message, retryInMs: RETRY_MS }, 'replication failed; retrying');
    void this.stream?.stop().catch(() => undefined);
    this.stream = undefined;
    if (!this.stopped) setTimeout(() => void this.run(), RETRY_MS);
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const generation = this.generation;
    try {
      // Writes a crash cut short (a request stored without its rollup) are repaired first.
      for (const runner of this.source.streams) await runner.repairIfResumed();
      const tables = this.source.streams.map((r) => r.stream.spec.table);
      const unsafe = await withoutReplicaIdentity(this.source.pool, tables);
      if (unsafe.length > 0) throw new Error(`${unsafe.join(', ')} has no primary key (replica identity): publishing it would make the application's UPDATE and DELETE statements fail; read this source with mode: polling`);
      await ensurePublication(this.source.pool, this.name, tables);
      const slot = await slotStatus(this.source.pool, this.name);
      const positioned = this.source.streams.every((r) => this.positions.lsnOf(r) !== null);
      // After the first start (a stream has a checkpoint), a slot gone or invalidated means
      // changes were lost from it: reload, or poll where configured.
      const started = this.positions.started(this.source.streams);
      if (this.source.config.onSlotLost === 'polling' && started && (!slot.exists || slot.walStatus === 'lost')) {
        this.fallBackToPolling(slot.exists ? `slot ${this.name} is invalidated (wal_status lost)` : `slot ${this.name} does not exist`);
        return;
      }
      if (!slot.exists || !positioned || slot.walStatus === 'lost') {
        if (slot.exists) {
          this.logger.warn({ slot: this.name, walStatus: slot.walStatus }, 'replication slot unusable or streams without a position: loading again from a new slot');
          await dropSlot(this.source.pool, this.name);
        }
        await this.initialLoad();
      }
      if (this.stopped) return;
      const keys = new Map([...this.byTable].map(([table, runner]) => [table, unquoteIdent(runner.stream.spec.idColumn)]));
      const connection = { connectionString: this.source.config.databaseUrl!, application_name: changeStreamApplicationName(this.source.config.name) };
      const confirmed = (await slotStatus(this.source.pool, this.name)).confirmedLsn ?? undefined;
      // Large transactions streamed while they run where the server can (PostgreSQL 14).
      const { rows: [version] } = await this.source.pool.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
      this.stream = new ChangeStream({
        connection, slot: this.name, publication: this.name, keys, confirmed, streaming: Number(version!.v) >= 140000,
        largeTransactionRows: this.source.config.largeTransactionRows,
        onTransaction: (t) => this.receive(t, generation),
        onError: (error) => this.failed(error, generation),
        onActivity: () => {
          this.status.lastMessageAt = Date.now();
          for (const runner of this.source.streams) {
            runner.status.polls += 1;
            runner.status.lastSuccessAt = this.status.lastMessageAt;
            runner.status.lastSuccessStartedAt = this.status.lastMessageAt;
            runner.status.lastError = null;
          }
        },
      });
      this.stream.start();
      this.logger.info({ source: this.source.config.name, slot: this.name }, 'replication started');
    } catch (error) {
      this.failed(error, generation);
    }
  }

  /**
   * The slot is lost (onSlotLost: polling): each stream's checkpoint becomes a poll's
   * (ReplicationPositions.toPolling), then the source is polled, logged as an error and shown
   * on /metrics.
   */
  private fallBackToPolling(reason: string): void {
    for (const runner of this.source.streams) {
      const watermark = this.positions.toPolling(runner);
      if (watermark !== undefined) this.logger.warn({ stream: runner.id, watermark }, 'replication position turned into a poll checkpoint');
    }
    this.status.pollingFallback = true;
    this.stopped = true;
    clearInterval(this.overdueTimer);
    this.logger.error({ source: this.source.config.name, slot: this.name, reason }, 'replication slot lost: polling this source from the last change handled (onSlotLost: polling); to read by replication again, set onSlotLost: reload and restart (a new slot, the tables loaded again, nothing counted twice)');
    this.options.onFallback();
  }

  /** The stream's select list, with its completeness where it declares one. */
  private selectList(runner: StreamRunner): string {
    const { selectList, complete } = runner.stream.spec;
    return complete === undefined ? selectList : `${selectList}, (${complete}) AS "__complete"`;
  }

  /**
   * Rows of a table written in steps are delivered once complete (their completing UPDATE is
   * streamed too); an incomplete one waits, remembered with when it was first seen.
   */
  private complete(runner: StreamRunner, rows: Record<string, unknown>[]): Record<string, unknown>[] {
    const waiting = this.positions.waiting(runner);
    const now = Date.now();
    return rows.filter((r) => {
      const id = runner.stream.rowId(r);
      if (r.__complete !== false) {
        waiting.delete(id);
        return true;
      }
      if (!waiting.has(id)) waiting.set(id, now);
      return false;
    });
  }

  /** Rows still incomplete maxCommitDelay after they were first seen, delivered as they are. */
  private async deliverOverdue(): Promise<void> {
    if (this.stopped) return;
    const now = Date.now();
    for (const runner of this.source.streams) {
      const lsn = this.positions.lsnOf(runner);
      const waiting = this.positions.waiting(runner);
      if (lsn === null || waiting.size === 0) continue;
      const due = [...waiting].filter(([, first]) => now - first >= runner.stream.spec.maxCommitDelayMs).map(([id]) => id);
      if (due.length === 0) continue;
      const client = await this.source.pool.connect();
      try {
        await readByIds({ client, runner, selectList: this.selectList(runner), keep: (rows) => rows }, await this.idType(client, runner), due);
      } finally {
        client.release();
      }
      for (const id of due) waiting.delete(id);
      this.positions.save(runner, lsn, due.length);
    }
  }

  /** The id column's SQL type of a stream (for = ANY($1::type[])), looked up once. */
  private async idType(client: pg.PoolClient, runner: StreamRunner): Promise<string> {
    let idType = this.idTypes.get(runner);
    if (idType === undefined) this.idTypes.set(runner, (idType = await idTypeOf(client, runner.stream)));
    return idType;
  }

  /** Every table under the new slot's exported snapshot, delivered page by page. */
  private async initialLoad(): Promise<void> {
    const createdAt = new Date();
    const created = await createSlot({ connectionString: this.source.config.databaseUrl! }, this.name);
    this.logger.info({ source: this.source.config.name, slot: this.name, consistentPoint: created.consistentPoint }, 'replication slot created: loading the tables under its snapshot');
    try {
      await withReadTransaction(this.source.pool, (client) => this.loadUnder(client, created.consistentPoint, createdAt), { exportedSnapshot: created.snapshotName });
    } finally {
      await created.close();
    }
  }

  private async loadUnder(client: pg.PoolClient, consistentPoint: string, createdAt: Date): Promise<void> {
    for (const runner of this.source.streams) {
      const bulk = await this.options.bulkFor(runner);
      const { rows, incomplete } = await loadStream({
        client, runner, selectList: this.selectList(runner), bulk, logger: this.logger,
        // The counters, without a position: a restart loads again, and finds these rows stored.
        chunkCommitted: (loaded) => this.positions.saveCounters(runner, loaded),
      });
      const waiting = this.positions.waiting(runner);
      for (const id of incomplete) if (!waiting.has(id)) waiting.set(id, Date.now());
      this.positions.save(runner, consistentPoint, rows, createdAt);
      this.logger.info({ stream: runner.id, rows, bulk: bulk !== undefined, waitingIncomplete: incomplete.length }, 'initial load done');
    }
  }

  /**
   * Takes a transaction into the batch being gathered. Everything the stream has decoded by the
   * time the batch is handled goes into one batch (its rows read once, one checkpoint, one
   * confirmation); a batch past MAX_BATCH_IDS rows holds the stream until it is handled.
   */
  private receive(transaction: CommittedTransaction, generation: number): Promise<void> {
    const batch = this.batch;
    if (generation !== batch.generation) return Promise.resolve();
    batch.transactions.push(transaction);
    for (const changes of transaction.tables.values()) batch.ids += changes.upserted.size + changes.unlistedRows;
    // Handled after the batches before it: what arrives meanwhile joins this batch, so batches
    // grow when handling falls behind (one checkpoint and one confirmation for all of them).
    batch.flushing ??= this.inTurn(async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.batch === batch) this.batch = { generation, transactions: [], ids: 0, flushing: undefined };
      await this.handle(batch.transactions, generation);
    }).catch((error: unknown) => this.failed(error, generation));
    return batch.ids >= MAX_BATCH_IDS ? batch.flushing : Promise.resolve();
  }

  /**
   * Committed transactions, in commit order: for each stream the rows they inserted or updated,
   * read again once and delivered, its checkpoint saved with the last position; then that
   * position confirmed. A transaction a stream's checkpoint says it handled is skipped.
   */
  private async handle(batch: readonly CommittedTransaction[], generation: number): Promise<void> {
    // A batch of a stream that failed since: a later run streams it again.
    if (generation !== this.generation || batch.length === 0) return;
    const last = batch[batch.length - 1]!.lsn;
    const started = performance.now();
    let deliverMs = 0;
    let checkpointMs = 0;
    const client = await this.source.pool.connect();
    try {
      await this.refuseUnknownTables(client, batch);
      // Transactions above the mark were never handed to the event store: a row one of them
      // inserted is new there, and its lookup is skipped (unless rows of its table were deleted:
      // the id may be one of theirs). The mark then moves past this batch, before anything of
      // it is written, so a batch streamed again (after a failure or a crash) is looked up in
      // full.
      const written = this.positions.writtenUpTo();
      this.positions.willWrite(lsnValue(last));
      for (const [table, runner] of this.byTable) {
        const handled = this.positions.lsnOf(runner);
        const upserted = new Set<string>();
        /** Ids whose first change in the batch inserted them. */
        const fresh = new Set<string>();
        /** The (sub)transactions of large transactions, whose rows are read by xmin. */
        const xids = new Set<number>();
        let deleted = 0;
        let touched = false;
        for (const transaction of batch) {
          const changes = transaction.tables.get(table);
          if (!changes || (handled !== null && lsnValue(transaction.lsn) <= lsnValue(handled))) continue;
          touched = true;
          if (changes.truncated) this.logger.warn({ stream: runner.id }, 'table truncated at the source: its rows stay in the event store and the counters');
          // A deleted row is not kept (a retention job deletes millions at once): read by id
          // below, or when overdue, it is simply not found.
          deleted += changes.deleted;
          if (changes.deleted > 0 || changes.truncated) this.deleting.add(runner);
          for (const xid of changes.xids) xids.add(xid);
          const unwritten = lsnValue(transaction.lsn) > written;
          // Re-added at the end: the order of each id's last change.
          for (const id of changes.upserted) {
            if (upserted.has(id)) upserted.delete(id);
            else if (unwritten && changes.inserted.has(id)) fresh.add(id);
            upserted.add(id);
          }
        }
        if (!touched) continue;
        runner.status.rowsDeleted += deleted;
        if (this.deleting.has(runner)) fresh.clear();
        const delivering = performance.now();
        const read = { client, runner, selectList: this.selectList(runner), keep: (rows: Record<string, unknown>[]) => this.complete(runner, rows) };
        let rows = await readByIds(read, await this.idType(client, runner), [...upserted], fresh);
        if (xids.size > 0) {
          rows += await readByXids(read, xids, upserted);
          runner.status.xminScans += 1;
        }
        const checkpointing = performance.now();
        this.positions.save(runner, last, rows, batch[batch.length - 1]!.commitTime);
        deliverMs += checkpointing - delivering;
        checkpointMs += performance.now() - checkpointing;
      }
    } finally {
      client.release();
    }
    if (generation === this.generation) await this.stream?.confirm(last);
    this.logger.debug({
      source: this.source.config.name, transactions: batch.length, lsn: last, deliverMs: Math.round(deliverMs), checkpointMs: Math.round(checkpointMs),
      totalMs: Math.round(performance.now() - started), lagMs: Date.now() - batch[0]!.commitTime.getTime(),
    }, 'replication batch');
  }

  /**
   * Changes of a table no stream reads: the publication holds only the source's tables, so one
   * of them was renamed (the publication follows a table by its OID) or a table was added to the
   * publication. Never skipped in silence: the run fails with what to do, and nothing after it
   * is confirmed.
   */
  private async refuseUnknownTables(client: pg.PoolClient, batch: readonly CommittedTransaction[]): Promise<void> {
    const unknown = new Set<string>();
    for (const transaction of batch) for (const table of transaction.tables.keys()) if (!this.byTable.has(table)) unknown.add(table);
    if (unknown.size === 0) return;
    const gone: string[] = [];
    for (const [table, runner] of this.byTable) {
      const { rows } = await client.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [runner.stream.spec.table]);
      if (rows[0]!.found === null) gone.push(table);
    }
    throw new Error(`the publication ${this.name} sends changes of ${[...unknown].join(', ')}, which no stream of this source reads`
      + (gone.length > 0 ? `, and ${gone.join(', ')} no longer exists: renamed at the source? Name the new table under tables: on the source (or rename it back) and restart` : ': remove it from the publication')
      + '; nothing from this change on is confirmed until then');
  }

  private async refreshStatus(): Promise<void> {
    try {
      const slot = await slotStatus(this.source.pool, this.name);
      this.status.lagBytes = slot.lagBytes;
      this.status.retainedBytes = slot.retainedBytes;
    } catch (error) {
      this.logger.debug({ slot: this.name, error: errorText(error) }, 'replication slot status unavailable');
    }
  }
}
