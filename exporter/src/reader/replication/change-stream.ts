// The changes of a replication slot, one committed transaction at a time, in commit order
// (pgoutput through pg-logical-replication). A transaction is reduced to which rows of which
// table it touched: the ids it inserted or updated (their newest content is read by id with
// the stream's own select list, so the adapters map them as a poll does), the ids it deleted,
// and the tables it truncated. Rows of a rolled-back savepoint never appear: PostgreSQL
// decodes committed work only.
//
// Nothing is confirmed to the server until the handler's promise resolves (the caller makes the
// transaction's events durable first) and the caller calls confirm(): the slot keeps every
// transaction not confirmed, and a restart streams it again. At least once from the server,
// exactly once with the caller's checkpoint of the last LSN it handled.
//
// Large transactions (PostgreSQL 14 and later, `streaming`): the server sends a transaction's
// changes in blocks while it runs, once it exceeds logical_decoding_work_mem, instead of
// decoding it from disk after its commit; the ids are gathered per (sub)transaction, a
// subtransaction rolled back is dropped, and at the commit the transaction is handed over like
// any other (pgoutput-ids.ts). Memory stays bounded: once a streamed transaction has
// inserted or updated more than `largeTransactionRows` rows, its ids are dropped and only the
// ids of its (sub)transactions are kept, table by table. Every row version such a transaction
// wrote carries one of them as its xmin, so the reader finds its rows in one scan of the table
// (replication-rows.ts). A transaction not streamed is bounded by the server: it arrives whole
// only if it stayed under logical_decoding_work_mem.
//
// Keepalives. The server sends one when it has nothing for us, with the end of its WAL. If
// every transaction received is handled and confirmed, that position is confirmed too:
// otherwise a slot on a database busy with tables we do not publish (pgoutput sends no empty
// transactions) would never advance and would keep all that WAL. A keepalive that asks for a
// reply while work is pending gets the last confirmed position, so the server does not end
// the connection after wal_sender_timeout.
//
import type pg from 'pg';
import { LogicalReplicationService, type Pgoutput } from 'pg-logical-replication';
import { PgoutputIdsPlugin, type StreamMessage, type StreamedChange } from './pgoutput-ids.ts';

export interface TableChanges {
  /** Ids (the primary key's text) inserted or updated, in the order of their last change. */
  upserted: Set<string>;
  /**
   * Of those, the ids the transaction inserted (a row that did not exist before it), as long as
   * it deleted or truncated nothing of the table first: a delete and a re-insert of the same id
   * is not a new row. The reader skips the event store's lookup for them (replication-runner.ts).
   */
  inserted: Set<string>;
  /**
   * Rows deleted: counted, not kept (a retention job deletes millions of rows in one
   * transaction); a deleted row read by id is simply not found.
   */
  deleted: number;
  truncated: boolean;
  /**
   * A streamed transaction past largeTransactionRows: the ids of its (sub)transactions, not
   * rolled back, that inserted or updated rows of the table (read by xmin, not by id); and how
   * many row changes they made (the reader's batching weighs them).
   */
  xids: Set<number>;
  unlistedRows: number;
}

export interface CommittedTransaction {
  xid: number;
  /** Where the transaction's commit ends: confirm() this once it is handled. */
  lsn: string;
  commitTime: Date;
  /** By "schema.table". */
  tables: Map<string, TableChanges>;
}

export interface ChangeStreamOptions {
  connection: pg.ClientConfig;
  slot: string;
  publication: string;
  /** The primary-key column of each table ("schema.table" -> column), to read ids from changes. */
  keys: ReadonlyMap<string, string>;
  /**
   * Takes one transaction; the stream waits for the promise (backpressure) before decoding the
   * next. The caller may handle transactions in batches and confirm the last of a batch.
   */
  onTransaction(transaction: CommittedTransaction): Promise<void>;
  onError(error: Error): void;
  /** Any message from the server, a change or a keepalive (the stream is alive). */
  onActivity?(): void;
  /** The slot's confirmed position when the stream starts: what a keepalive reply repeats until more is confirmed. */
  confirmed?: string;
  /** Large transactions streamed while they run (protocol version 2: PostgreSQL 14 and later). */
  streaming?: boolean;
  /** Rows a streamed transaction inserts or updates before its ids give way to its xids (default 100,000). */
  largeTransactionRows?: number;
}

export const DEFAULT_LARGE_TRANSACTION_ROWS = 100_000;

/** An LSN as PostgreSQL prints it ("16/B374D848") to a number, for comparisons. */
export function lsnValue(lsn: string): bigint {
  const [high, low] = lsn.split('/') as [string, string];
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

function emptyChanges(): TableChanges {
  return { upserted: new Set(), inserted: new Set(), deleted: 0, truncated: false, xids: new Set(), unlistedRows: 0 };
}

/**
 * An insert or update of `id`: re-added at the end of `upserted` (the set keeps the order of
 * each id's last change), and an insert into `inserted` unless the transaction deleted or
 * truncated rows of the table before it.
 */
function upsert(changes: TableChanges, id: string, insert: boolean): void {
  changes.upserted.delete(id);
  changes.upserted.add(id);
  if (insert && changes.deleted === 0 && !changes.truncated) changes.inserted.add(id);
}

/** A transaction streamed while it runs. */
interface StreamedTransaction {
  /** The changes of each of its (sub)transactions by table, in order of appearance. */
  byXid: Map<number, Map<string, TableChanges>>;
  /** Ids held (inserted or updated), until it is past largeTransactionRows. */
  ids: number;
  /** Past largeTransactionRows: no more ids kept, its rows are read by xmin. */
  large: boolean;
}

/** The transaction turns large: each (sub)transaction's ids give way to its xid. */
function dropIds(transaction: StreamedTransaction): void {
  transaction.large = true;
  for (const [xid, tables] of transaction.byXid) {
    for (const changes of tables.values()) {
      if (changes.upserted.size === 0) continue;
      changes.xids.add(xid);
      changes.unlistedRows += changes.upserted.size;
      changes.upserted.clear();
      changes.inserted.clear();
    }
  }
}

export class ChangeStream {
  private readonly options: ChangeStreamOptions;
  private readonly service: LogicalReplicationService;
  private current: CommittedTransaction | undefined;
  /** Streamed transactions not committed yet, by top-level xid. */
  private readonly streamed = new Map<number, StreamedTransaction>();
  /** The top-level xid of the stream block being received. */
  private block: number | undefined;
  private running: Promise<unknown> | undefined;
  /** Commit positions of the transactions handed to onTransaction and not confirmed yet. */
  private readonly unconfirmed: bigint[] = [];
  private confirmed: string | undefined;
  /**
   * A message failed: nothing after it is handed over or confirmed. The library reports the
   * failure and goes on with its queue, so without this a transaction whose change could not
   * be read would be handed over without that change at its commit.
   */
  private broken = false;

  constructor(options: ChangeStreamOptions) {
    this.options = options;
    this.confirmed = options.confirmed;
    this.service = new LogicalReplicationService(options.connection, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    this.service.on('data', async (lsn: string, message: Pgoutput.Message) => {
      if (this.broken) return;
      options.onActivity?.();
      try {
        await this.onMessage(lsn, message);
      } catch (error) {
        this.broken = true;
        throw error;
      }
    });
    this.service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => {
      options.onActivity?.();
      void this.onKeepalive(lsn, shouldRespond).catch((error: unknown) => options.onError(error as Error));
    });
    this.service.on('error', (error: Error) => options.onError(error));
  }

  /** Starts streaming from the slot's confirmed position. */
  start(): void {
    const plugin = new PgoutputIdsPlugin({ publication: this.options.publication, keys: this.options.keys, streaming: this.options.streaming ?? false });
    this.running = this.service.subscribe(plugin, this.options.slot).catch((error: unknown) => {
      if (!this.service.isStop()) this.options.onError(error as Error);
    });
  }

  /** Tells the server every transaction up to `lsn` is handled: the slot may release its WAL. */
  async confirm(lsn: string): Promise<void> {
    const value = lsnValue(lsn);
    while (this.unconfirmed.length > 0 && this.unconfirmed[0]! <= value) this.unconfirmed.shift();
    await this.acknowledge(lsn);
  }

  /** Sends a standby status with `lsn` as flushed, never moving backwards. */
  private async acknowledge(lsn: string): Promise<void> {
    if (this.confirmed !== undefined && lsnValue(lsn) < lsnValue(this.confirmed)) lsn = this.confirmed;
    this.confirmed = lsn;
    await this.sendStatus(lsn);
  }

  /**
   * A standby status update with `lsn` as written and flushed. pg-logical-replication adds 1 to
   * the position it is given ("last byte + 1"), but PostgreSQL's positions are already the end
   * of a record: a walsender whose client confirms its sent position + 1 never sees the two
   * equal, and a fast shutdown of the server waits for it until pg_ctl gives up. So the library
   * is given the position less 1.
   */
  private async sendStatus(lsn: string): Promise<void> {
    const value = lsnValue(lsn);
    if (value === 0n) return;
    const before = value - 1n;
    await this.service.acknowledge(`${(before >> 32n).toString(16).toUpperCase()}/${(before & 0xffffffffn).toString(16).toUpperCase()}`);
  }

  /** Nothing received is waiting: no transaction open, handled or queued in the library (flow control). */
  private idle(): boolean {
    // The queue is pg-logical-replication's own (2.5.0, pinned exactly): messages received and
    // not yet handed to us.
    const queue = (this.service as unknown as { _messageQueue?: unknown[]; _processing?: boolean });
    return this.current === undefined && this.streamed.size === 0 && this.unconfirmed.length === 0 && (queue._messageQueue?.length ?? 0) === 0 && queue._processing !== true;
  }

  private async onKeepalive(lsn: string, shouldRespond: boolean): Promise<void> {
    if (this.broken) return;
    if (this.idle()) await this.acknowledge(lsn);
    else if (shouldRespond && this.confirmed !== undefined) await this.sendStatus(this.confirmed);
  }

  async stop(): Promise<void> {
    await this.service.stop();
    await this.running;
  }

  private idOf(relation: Pgoutput.MessageRelation, row: Record<string, unknown> | null): string | undefined {
    const key = this.options.keys.get(`${relation.schema}.${relation.name}`) ?? relation.keyColumns[0];
    const value = key === undefined || row === null ? undefined : row[key];
    return value === undefined || value === null ? undefined : String(value);
  }

  /** The changes of `relation` in the open transaction. */
  private changes(relation: Pgoutput.MessageRelation): TableChanges {
    const name = `${relation.schema}.${relation.name}`;
    let found = this.current!.tables.get(name);
    if (!found) this.current!.tables.set(name, (found = emptyChanges()));
    return found;
  }

  /**
   * A change inside a stream block, into its (sub)transaction's changes. A later ROLLBACK TO
   * SAVEPOINT may undo another subtransaction's delete, so a delete never removes an id here
   * (a row deleted in the end is simply not found when read by id).
   */
  private streamedChange(message: StreamedChange): void {
    const transaction = this.streamed.get(this.block!)!;
    let tables = transaction.byXid.get(message.streamXid);
    if (!tables) transaction.byXid.set(message.streamXid, (tables = new Map()));
    const relations = message.tag === 'truncate' ? message.relations : 'relation' in message ? [message.relation] : [];
    for (const relation of relations) {
      const name = `${relation.schema}.${relation.name}`;
      let changes = tables.get(name);
      if (!changes) tables.set(name, (changes = emptyChanges()));
      if (message.tag === 'insert' || message.tag === 'update') {
        const id = this.idOf(relation, message.new);
        if (id === undefined) continue;
        if (transaction.large) {
          changes.xids.add(message.streamXid);
          changes.unlistedRows += 1;
          continue;
        }
        const before = changes.upserted.size;
        upsert(changes, id, message.tag === 'insert');
        transaction.ids += changes.upserted.size - before;
        if (transaction.ids > (this.options.largeTransactionRows ?? DEFAULT_LARGE_TRANSACTION_ROWS)) dropIds(transaction);
      } else if (message.tag === 'delete') {
        changes.deleted += 1;
      } else if (message.tag === 'truncate') {
        changes.truncated = true;
      }
    }
  }

  /** A committed streamed transaction's changes: those of its subtransactions not rolled back, together. */
  private mergeStreamed(xid: number): Map<string, TableChanges> {
    const merged = new Map<string, TableChanges>();
    for (const tables of this.streamed.get(xid)?.byXid.values() ?? []) {
      for (const [name, changes] of tables) {
        let into = merged.get(name);
        if (!into) merged.set(name, (into = emptyChanges()));
        for (const id of changes.upserted) {
          into.upserted.delete(id);
          into.upserted.add(id);
        }
        for (const id of changes.inserted) into.inserted.add(id);
        for (const id of changes.xids) into.xids.add(id);
        into.unlistedRows += changes.unlistedRows;
        into.deleted += changes.deleted;
        into.truncated ||= changes.truncated;
      }
    }
    // The order of changes across subtransactions is not kept: with a delete or a truncate
    // anywhere in the transaction, none of its inserts is taken as a new row.
    for (const changes of merged.values()) if (changes.deleted > 0 || changes.truncated) changes.inserted.clear();
    this.streamed.delete(xid);
    return merged;
  }

  private async onMessage(lsn: string, received: Pgoutput.Message): Promise<void> {
    const message = received as Pgoutput.Message | StreamMessage;
    switch (message.tag) {
      case 'stream_start':
        this.block = message.xid;
        if (!this.streamed.has(message.xid)) this.streamed.set(message.xid, { byXid: new Map(), ids: 0, large: false });
        return;
      case 'unreadable':
        throw message.error;
      case 'stream_stop':
        this.block = undefined;
        return;
      case 'stream_abort':
        // The whole transaction, or one subtransaction (ROLLBACK TO SAVEPOINT).
        if (message.subxid === message.xid) this.streamed.delete(message.xid);
        else this.streamed.get(message.xid)?.byXid.delete(message.subxid);
        return;
      case 'stream_commit':
        await this.committed({ xid: message.xid, lsn: message.commitEndLsn, commitTime: new Date(Number(message.commitTime / 1000n)), tables: this.mergeStreamed(message.xid) });
        return;
      case 'begin':
        this.current = { xid: message.xid, lsn, commitTime: new Date(Number(message.commitTime) / 1000), tables: new Map() };
        return;
      case 'insert':
      case 'update': {
        const id = this.idOf(message.relation, message.new);
        if (id === undefined) return;
        if ('streamXid' in message) return this.streamedChange(message as StreamedChange);
        upsert(this.changes(message.relation), id, message.tag === 'insert');
        return;
      }
      case 'delete': {
        const id = this.idOf(message.relation, message.key ?? message.old);
        if (id === undefined) return;
        if ('streamXid' in message) return this.streamedChange(message as StreamedChange);
        const changes = this.changes(message.relation);
        changes.upserted.delete(id);
        changes.inserted.delete(id);
        changes.deleted += 1;
        return;
      }
      case 'truncate':
        if ('streamXid' in message) return this.streamedChange(message as StreamedChange);
        for (const relation of message.relations) {
          const changes = this.changes(relation);
          changes.truncated = true;
          changes.upserted.clear();
          changes.inserted.clear();
        }
        return;
      case 'commit': {
        const transaction = this.current!;
        this.current = undefined;
        transaction.lsn = message.commitEndLsn ?? lsn;
        await this.committed(transaction);
        return;
      }
      default:
        return;
    }
  }

  private async committed(transaction: CommittedTransaction): Promise<void> {
    this.unconfirmed.push(lsnValue(transaction.lsn));
    await this.options.onTransaction(transaction);
  }
}
