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
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { errorText } from '../log.ts';
import type { CheckpointStore } from '../reader/checkpoint-store.ts';
import type { NamedSource } from '../sources/adapter.ts';
import { unquoteIdent } from '../reader/sql.ts';
import { ChangeStream, lsnValue, type CommittedTransaction } from '../reader/replication/change-stream.ts';
import { createSlot, dropSlot, ensurePublication, replicationName, slotStatus, withoutReplicaIdentity } from '../reader/replication/slot.ts';
import { idTypeOf } from './reconcile.ts';
import { withReadTransaction } from '../db/postgres.ts';
import type { StreamRunner } from './stream-runner.ts';
import type { ReplicationStatus } from './status.ts';

const LOAD_PAGE = 5000;
const STATUS_INTERVAL_MS = 5000;
const RETRY_MS = 5000;
const OVERDUE_CHECK_MS = 1000;
/** Rows (inserted, updated or deleted) a batch of transactions holds before the stream waits for it. */
const MAX_BATCH_IDS = 20_000;

/** Transactions gathered to be handled together, of one run of the stream. */
interface Batch {
  generation: number;
  transactions: CommittedTransaction[];
  /** Rows they inserted, updated or deleted. */
  ids: number;
  /** Set once the batch's handling is scheduled. */
  flushing: Promise<void> | undefined;
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
  private readonly store: CheckpointStore;
  private readonly logger: Logger;
  private readonly name: string;
  private readonly byTable = new Map<string, StreamRunner>();
  private readonly idTypes = new Map<StreamRunner, string>();
  private readonly positions = new Map<StreamRunner, { lsn: string | null; rowsEmitted: number }>();
  /** Per stream: ids of rows seen incomplete, and when they were first seen (epoch ms). */
  private readonly incomplete = new Map<StreamRunner, Map<string, number>>();
  private serial: Promise<unknown> = Promise.resolve();
  /** The run of the stream (a failure starts the next), and its transactions received and not handled yet. */
  private generation = 0;
  private batch: Batch = { generation: 0, transactions: [], ids: 0, flushing: undefined };
  private overdueTimer: NodeJS.Timeout | undefined;
  private readonly status: ReplicationStatus;
  private stream: ChangeStream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(source: ReplicationSource, store: CheckpointStore, logger: Logger) {
    this.source = source;
    this.store = store;
    this.logger = logger;
    this.name = replicationName(source.config.name);
    for (const runner of source.streams) this.byTable.set(tableKey(runner.stream.spec.table), runner);
    this.status = { slot: this.name, lagBytes: 0, retainedBytes: 0, lastMessageAt: null };
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
      const positioned = this.source.streams.every((r) => this.lsnOf(r) !== null);
      if (!slot.exists || !positioned || slot.walStatus === 'lost') {
        if (slot.exists) {
          this.logger.warn({ slot: this.name, walStatus: slot.walStatus }, 'replication slot unusable or streams without a position: loading again from a new slot');
          await dropSlot(this.source.pool, this.name);
        }
        await this.initialLoad();
      }
      if (this.stopped) return;
      const keys = new Map([...this.byTable].map(([table, runner]) => [table, unquoteIdent(runner.stream.spec.idColumn)]));
      const connection = { connectionString: this.source.config.databaseUrl!, application_name: `tokenwatch/${this.source.config.name}/replication` };
      const confirmed = (await slotStatus(this.source.pool, this.name)).confirmedLsn ?? undefined;
      this.stream = new ChangeStream({
        connection, slot: this.name, publication: this.name, keys, confirmed,
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

  /** The position a stream's checkpoint says it has handled (read from disk once, then kept). */
  private lsnOf(runner: StreamRunner): string | null {
    if (!this.positions.has(runner)) {
      const saved = this.store.load(runner.id);
      const extra = saved?.extra as { replication?: { lsn?: string; incomplete?: [string, number][] } } | undefined;
      this.positions.set(runner, { lsn: extra?.replication?.lsn ?? null, rowsEmitted: saved?.rowsEmitted ?? 0 });
      if (!this.incomplete.has(runner)) this.incomplete.set(runner, new Map(extra?.replication?.incomplete ?? []));
    }
    return this.positions.get(runner)!.lsn;
  }

  /** The stream's checkpoint with its counters and the position it has handled, saved atomically. */
  private checkpoint(runner: StreamRunner, lsn: string, rows: number): void {
    this.lsnOf(runner);
    const position = this.positions.get(runner)!;
    const state = runner.companion.save() as Record<string, unknown>;
    const checkpoint = {
      version: 1 as const, watermark: null, snapshot: null, inProgress: null, rowsEmitted: position.rowsEmitted + rows,
      updatedAt: new Date().toISOString(), extra: { ...state, replication: { slot: this.name, lsn, incomplete: [...this.waiting(runner)] } },
    };
    this.store.save(runner.id, checkpoint);
    this.positions.set(runner, { lsn, rowsEmitted: checkpoint.rowsEmitted });
    runner.companion.saved(state, checkpoint);
  }

  /** The stream's select list, with its completeness where it declares one. */
  private selectList(runner: StreamRunner): string {
    const { selectList, complete } = runner.stream.spec;
    return complete === undefined ? selectList : `${selectList}, (${complete}) AS "__complete"`;
  }

  private waiting(runner: StreamRunner): Map<string, number> {
    let found = this.incomplete.get(runner);
    if (!found) this.incomplete.set(runner, (found = new Map()));
    return found;
  }

  /**
   * Rows of a table written in steps are delivered once complete (their completing UPDATE is
   * streamed too); an incomplete one waits, remembered with when it was first seen.
   */
  private complete(runner: StreamRunner, rows: Record<string, unknown>[]): Record<string, unknown>[] {
    const waiting = this.waiting(runner);
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
      const lsn = this.lsnOf(runner);
      const waiting = this.waiting(runner);
      if (lsn === null || waiting.size === 0) continue;
      const due = [...waiting].filter(([, first]) => now - first >= runner.stream.spec.maxCommitDelayMs).map(([id]) => id);
      if (due.length === 0) continue;
      const client = await this.source.pool.connect();
      try {
        await this.readByIds(client, runner, due, (rows) => rows);
      } finally {
        client.release();
      }
      for (const id of due) waiting.delete(id);
      this.checkpoint(runner, lsn, due.length);
    }
  }

  /** Reads rows of `ids` with the stream's select list and delivers what `keep` keeps of each batch. */
  private async readByIds(client: pg.PoolClient, runner: StreamRunner, ids: readonly string[], keep: (rows: Record<string, unknown>[]) => Record<string, unknown>[]): Promise<void> {
    const { table: qualified, idColumn, filter } = runner.stream.spec;
    let idType = this.idTypes.get(runner);
    if (idType === undefined) this.idTypes.set(runner, (idType = await idTypeOf(client, runner.stream)));
    const handle = runner.pageHandler();
    // Pages of the source's batchSize, as a poll reads them.
    const size = runner.stream.spec.batchSize;
    for (let i = 0; i < ids.length; i += size) {
      const params: unknown[] = [ids.slice(i, i + size)];
      const param = (value: unknown) => `$${params.push(value)}`;
      const where = [`t.${idColumn} = ANY($1::${idType}[])`, ...(filter ? [filter(param)] : [])].join(' AND ');
      const { rows } = await client.query<Record<string, unknown>>(`SELECT ${this.selectList(runner)} FROM ${qualified} t WHERE ${where}`, params);
      await handle(keep(rows));
    }
  }

  /** Every table under the new slot's exported snapshot, delivered page by page. */
  private async initialLoad(): Promise<void> {
    const created = await createSlot({ connectionString: this.source.config.databaseUrl! }, this.name);
    this.logger.info({ source: this.source.config.name, slot: this.name, consistentPoint: created.consistentPoint }, 'replication slot created: loading the tables under its snapshot');
    try {
      await withReadTransaction(this.source.pool, (client) => this.loadUnder(client, created.consistentPoint), { exportedSnapshot: created.snapshotName });
    } finally {
      await created.close();
    }
  }

  private async loadUnder(client: pg.PoolClient, consistentPoint: string): Promise<void> {
    for (const runner of this.source.streams) {
      const { table, idColumn, filter } = runner.stream.spec;
      const handle = runner.pageHandler();
      let after: string | null = null;
      let rows = 0;
      for (;;) {
        const params: unknown[] = [];
        const param = (value: unknown) => `$${params.push(value)}`;
        const where: string[] = [...(filter ? [filter(param)] : []), ...(after === null ? [] : [`t.${idColumn}::text > ${param(after)}`])];
        const { rows: page }: { rows: Record<string, unknown>[] } = await client.query<Record<string, unknown>>(
          `SELECT ${this.selectList(runner)}, t.${idColumn}::text AS "__key" FROM ${table} t ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY t.${idColumn}::text LIMIT ${LOAD_PAGE}`,
          params,
        );
        if (page.length === 0) break;
        after = String(page[page.length - 1]!.__key);
        await handle(this.complete(runner, page));
        rows += page.length;
      }
      this.checkpoint(runner, consistentPoint, rows);
      this.logger.info({ stream: runner.id, rows }, 'initial load done');
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
    for (const changes of transaction.tables.values()) batch.ids += changes.upserted.size + changes.deleted.size;
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
      for (const [table, runner] of this.byTable) {
        const handled = this.lsnOf(runner);
        const upserted = new Set<string>();
        let deleted = 0;
        let touched = false;
        for (const transaction of batch) {
          const changes = transaction.tables.get(table);
          if (!changes || (handled !== null && lsnValue(transaction.lsn) <= lsnValue(handled))) continue;
          touched = true;
          if (changes.truncated) this.logger.warn({ stream: runner.id }, 'table truncated at the source: its rows stay in the event store and the counters');
          for (const id of changes.deleted) {
            upserted.delete(id);
            this.waiting(runner).delete(id);
          }
          deleted += changes.deleted.size;
          // Re-added at the end: the order of each id's last change.
          for (const id of changes.upserted) {
            upserted.delete(id);
            upserted.add(id);
          }
        }
        if (!touched) continue;
        runner.status.rowsDeleted += deleted;
        const delivering = performance.now();
        await this.readByIds(client, runner, [...upserted], (rows) => this.complete(runner, rows));
        const checkpointing = performance.now();
        this.checkpoint(runner, last, upserted.size);
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
